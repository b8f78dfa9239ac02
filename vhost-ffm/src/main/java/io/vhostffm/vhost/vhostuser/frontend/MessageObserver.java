package io.vhostffm.vhost.vhostuser.frontend;

import io.vhostffm.vhost.vhostuser.VhostUserRequest;
import java.io.IOException;

/**
 * A hook every request a {@link VhostUserFrontendBackend} sends passes through, as
 * {@link io.vhostffm.vhost.os.IoctlObserver} is for the kernel backend's ioctls: to count requests
 * (how much work a switchover does) and to inject failures (does the caller fall back cleanly?).
 * Null by default; then sending costs one null check.
 *
 * <p>Called on the thread sending, with the backend's lock held: keep it short and do not call
 * back into the backend.
 */
@FunctionalInterface
public interface MessageObserver {

    /**
     * Before {@code request} goes out for virtqueue {@code ring} (-1 for requests of no ring). To
     * inject a failure, throw: the request is then not sent and the caller sees the exception as
     * if the backend had refused it.
     */
    void beforeSend(VhostUserRequest request, int ring) throws IOException;
}

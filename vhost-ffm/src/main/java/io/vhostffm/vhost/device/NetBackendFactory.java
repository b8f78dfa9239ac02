package io.vhostffm.vhost.device;

import io.vhostffm.vhost.device.kernel.VhostNetBackend;

import java.io.IOException;

/**
 * Rebuilds a backend in this process from an endpoint another process handed over
 * ({@link NetBackend#transfer()}, descriptors received with SCM_RIGHTS). Either backend kind can
 * be rebuilt from the same TAP: the destination of a migration may run vhost-net where the source
 * ran the userspace datapath, or fall back to it.
 *
 * <pre>{@code
 * NetBackendFactory kernel = VhostNetBackend::fromTransfer;
 * NetBackend backend = kernel.rebuild(received.withReceivedFds(fds));
 * }</pre>
 */
@FunctionalInterface
public interface NetBackendFactory {

    /**
     * A stopped backend on the received endpoint; it takes ownership of the received descriptors
     * (closing them if it fails).
     *
     * @throws IllegalArgumentException when the transfer is of a kind this factory does not know
     */
    NetBackend rebuild(BackendTransfer received) throws IOException;
}

package io.vhostffm.programs.demo;

import io.vhostffm.vhost.vhostuser.VhostUserRequest;
import io.vhostffm.vhost.vhostuser.frontend.MessageObserver;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * Records the requests a vhost-user primary sends (as {@code IoctlRecorder} records a kernel
 * primary's ioctls): the destination clears it right before the switchover, so what it holds
 * afterwards is the switchover's own work. One request can be made to fail ({@link #failAt}):
 * the frontend then sees it refused, as if the backend process had answered with an error.
 */
public final class VhostUserMessages implements MessageObserver {
    private final List<String> names = new ArrayList<>();
    private VhostUserRequest failing;
    private int occurrence;
    private int seen;
    private String injected;

    @Override
    public synchronized void beforeSend(VhostUserRequest request, int ring) throws IOException {
        if (request == failing && ++seen == occurrence) {
            injected = request + " (ring " + ring + ")";
            throw new IOException("injected failure of " + injected);
        }
        names.add(ring < 0 ? request.name() : request.name() + "(" + ring + ")");
    }

    /** The {@code occurrence}-th (from 1) {@code request} from now on fails, once. */
    public synchronized void failAt(VhostUserRequest request, int occurrence) {
        this.failing = request;
        this.occurrence = occurrence;
        this.seen = 0;
        this.injected = null;
    }

    /** The request whose failure was injected, with its ring, or null while none was. */
    public synchronized String injected() {
        return injected;
    }

    /** Forgets what was recorded. */
    public synchronized void clear() {
        names.clear();
    }

    /** The requests sent since the last {@link #clear()}, {@code NAME(ring)} or {@code NAME}. */
    public synchronized List<String> names() {
        return List.copyOf(names);
    }
}

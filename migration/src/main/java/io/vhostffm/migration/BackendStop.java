package io.vhostffm.migration;

/**
 * The source device's stop at stop-and-copy: stop the backend (NET_SET_BACKEND -1, then
 * GET_VRING_BASE per queue) and return the final indices. Runs inside the measured
 * stop-and-copy window.
 */
@FunctionalInterface
public interface BackendStop {

    /** Stops the backend and returns every queue's final indices. */
    FinalPositions stopAndCollectPositions() throws Exception;
}

package io.vhostffm.migration.internal;

/**
 * Payload of the ACKNOWLEDGEMENT section the destination sends back on the return path.
 *
 * @param started whether the destination device started
 * @param failure why not, empty when started
 * @param earlyLoadNanos destination time spent loading the early state
 * @param switchoverNanos destination switchover work, from the first stop-and-copy frame to
 *        the device started
 * @param bytesReceived bytes of the migration stream the destination read
 */
public record Acknowledgement(boolean started, String failure, long earlyLoadNanos, long switchoverNanos,
        long bytesReceived) {
}

package io.vhostffm.migration.internal;

import io.vhostffm.migration.SwitchoverSteps;
import java.util.List;

/**
 * Payload of the ACKNOWLEDGEMENT section the destination sends back on the return path.
 *
 * @param started whether the destination device started
 * @param failure why not, empty when started
 * @param earlyLoadNanos destination time spent loading the early state
 * @param switchoverNanos destination switchover work, from the first stop-and-copy frame to
 *        the device started
 * @param bytesReceived bytes of the migration stream the destination read
 * @param clockDomain the destination's {@link io.vhostffm.migration.MonotonicClock#domain()}
 * @param firstFrameAt when the first switchover frame arrived (destination clock), -1 unknown
 * @param switchoverMarks the switchover's steps (destination clock), the last the datapath ready
 */
public record Acknowledgement(boolean started, String failure, long earlyLoadNanos, long switchoverNanos,
        long bytesReceived, String clockDomain, long firstFrameAt,
        List<SwitchoverSteps.Mark> switchoverMarks) {
}

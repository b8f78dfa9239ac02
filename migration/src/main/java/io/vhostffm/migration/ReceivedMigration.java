package io.vhostffm.migration;

import java.util.List;
import java.util.Map;

/**
 * Everything the destination received and did, for the caller and for tests.
 *
 * @param earlyState per section id, the state of the setup phase
 * @param precopyDeltas the precopy deltas, in arrival order
 * @param switchover what was handed to {@link DeviceSwitchover}
 * @param earlyLoadNanos time spent decoding and loading the early state (not waiting for bytes)
 * @param switchoverNanos switchover work: from the arrival of the first stop-and-copy frame
 *        to the device started (reading the rest of the switchover message, decode, compare,
 *        apply, {@link DeviceSwitchover}); all of it is guest downtime
 * @param bytesReceived stream bytes read, end marker included
 * @param firstFrameAt when the first switchover frame arrived ({@link MonotonicClock})
 * @param switchoverMarks the switchover's steps ({@link SwitchoverSteps}), the last the device ready
 */
public record ReceivedMigration(Map<Integer, Record> earlyState, List<SectionDelta> precopyDeltas,
        Switchover switchover, long earlyLoadNanos, long switchoverNanos, long bytesReceived, long firstFrameAt,
        List<SwitchoverSteps.Mark> switchoverMarks) {
    public ReceivedMigration {
        earlyState = Map.copyOf(earlyState);
        precopyDeltas = List.copyOf(precopyDeltas);
        switchoverMarks = List.copyOf(switchoverMarks);
    }
}

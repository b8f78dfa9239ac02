package io.vhostffm.migration;

import java.util.List;
import java.util.Map;

/**
 * What the destination knows at the switchover, for {@link DeviceSwitchover} to choose its path.
 *
 * @param noDelta true when the source found no change at stop-and-copy (the QUEUE_INDICES
 *        section carried NO_DATA): the quickstart applies if early start worked
 * @param switchoverDeltas the sections that changed at stop-and-copy, already passed to
 *        {@link DeviceStateSection#applyDelta}
 * @param changedSinceEarly per section id, the fields that differ between the early state and
 *        the final state (precopy and switchover deltas together); absent when unchanged
 * @param finalPositions the final queue indices
 * @param earlyState per section id, the state loaded early
 * @param finalState per section id, the final state
 * @param earlyFailures failures of {@link DeviceStateSection#loadEarly} or of a precopy
 *        {@link DeviceStateSection#applyDelta}, in order: when not empty the early-started
 *        device cannot be trusted and needs the full path
 * @param steps the switchover's timeline: the device marks the end of each of its steps
 *        ({@link SwitchoverSteps#mark}), the last when its datapath is ready on every queue
 */
public record Switchover(boolean noDelta, List<SectionDelta> switchoverDeltas,
        Map<Integer, List<String>> changedSinceEarly, FinalPositions finalPositions, Map<Integer, Record> earlyState,
        Map<Integer, Record> finalState, List<String> earlyFailures, SwitchoverSteps steps) {
    public Switchover {
        switchoverDeltas = List.copyOf(switchoverDeltas);
        changedSinceEarly = Map.copyOf(changedSinceEarly);
        earlyState = Map.copyOf(earlyState);
        finalState = Map.copyOf(finalState);
        earlyFailures = List.copyOf(earlyFailures);
    }

    /**
     * True when the source saw no change at stop-and-copy and every early step (the early
     * load and each precopy delta) was applied without failure: the early-started device is
     * current, so the quickstart applies.
     */
    public boolean quickstartPossible() {
        return noDelta && earlyFailures.isEmpty();
    }
}

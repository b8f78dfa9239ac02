package io.vhostffm.vring;

/**
 * The final positions of a queue, as the source sends them at stop-and-copy when the device state
 * did not change since the early (pre-copy) transfer: split, last_avail_idx, used_idx and inuse;
 * packed, also the wrap counters. Untrusted: {@link DeviceQueue#resync} checks the ranges.
 *
 * @param lastAvailIdx         last avail idx
 * @param lastAvailWrapCounter packed: its wrap counter; split: false
 * @param usedIdx              next used idx
 * @param usedWrapCounter      packed: its wrap counter; split: false
 * @param inuse                chains taken but not yet published
 */
public record FinalIndices(int lastAvailIdx, boolean lastAvailWrapCounter, int usedIdx, boolean usedWrapCounter,
        int inuse) {

    /** Final indices of a split queue. */
    public static FinalIndices split(int lastAvailIdx, int usedIdx, int inuse) {
        return new FinalIndices(lastAvailIdx, false, usedIdx, false, inuse);
    }

    /** Final indices from a decoded vring base plus inuse. */
    public static FinalIndices of(VringBase base, int inuse) {
        return new FinalIndices(base.lastAvailIdx(), base.availWrapCounter(), base.usedIdx(),
                base.usedWrapCounter(), inuse);
    }
}

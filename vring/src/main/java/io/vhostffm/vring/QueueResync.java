package io.vhostffm.vring;

import java.util.List;
import java.util.Objects;

/**
 * The index resync of a device's queues at a migration's switchover: the final positions have
 * arrived from the source; every queue takes its own ({@link DeviceQueue#resync} semantics: last
 * avail idx, used idx, inuse and wrap counters := the final ones, shadow avail idx := last avail
 * idx, signalled_used_valid := false), and the vhost vring base of each is derived in the same
 * pass, ready for {@code VHOST_SET_VRING_BASE} ({@link VhostVringBase#encodeKernel}: split, the
 * 16-bit last avail idx; packed, the kernel packed form).
 *
 * <p>Built once per set of queues, before the switchover (at prestart); {@link #resync} then
 * allocates nothing. The positions go into a compact table (four ints per queue, interleaved) and
 * one loop of one ring format resyncs them ({@link SplitDeviceQueue#resyncAll},
 * {@link PackedDeviceQueue#resyncAll}): no per-queue interface call, no object to follow per queue,
 * the range checks of a queue folded into one branch.
 *
 * <p>Used by both backends' quickstart: the userspace datapath resyncs the queues it will serve;
 * the kernel backend resyncs a device-side view of each queue it hands to vhost-net, which checks
 * the final positions against the queue sizes and gives the vring bases. Not thread-safe.
 */
public final class QueueResync {
    private final SplitDeviceQueue[] split;
    private final PackedDeviceQueue[] packed;
    private final QueuePositionTable table;
    private final int[] vringBases;

    private QueueResync(SplitDeviceQueue[] split, PackedDeviceQueue[] packed, int queues) {
        this.split = split;
        this.packed = packed;
        this.table = new QueuePositionTable(queues);
        this.vringBases = new int[queues];
    }

    /**
     * A resync of {@code queues}, in that order: all split or all packed (vring's
     * {@link SplitDeviceQueue} and {@link PackedDeviceQueue}).
     *
     * @throws IllegalArgumentException when the formats are mixed or a queue is another implementation
     */
    public static QueueResync of(List<? extends DeviceQueue> queues) {
        int n = queues.size();
        boolean packedRings = n > 0 && queues.get(0).isPacked();
        SplitDeviceQueue[] split = packedRings ? null : new SplitDeviceQueue[n];
        PackedDeviceQueue[] packed = packedRings ? new PackedDeviceQueue[n] : null;
        for (int i = 0; i < n; i++) {
            DeviceQueue q = Objects.requireNonNull(queues.get(i), "queue");
            if (packedRings && q instanceof PackedDeviceQueue p) {
                packed[i] = p;
            } else if (!packedRings && q instanceof SplitDeviceQueue s) {
                split[i] = s;
            } else {
                throw new IllegalArgumentException("queue " + i + " (" + q + ") is not a " + (packedRings ? "packed" : "split")
                        + " vring queue like queue 0; a resync covers one ring format");
            }
        }
        return new QueueResync(split, packed, n);
    }

    /** Number of queues. */
    public int queues() {
        return vringBases.length;
    }

    /** Whether the queues are packed rings. */
    public boolean isPacked() {
        return packed != null;
    }

    /**
     * Resyncs queue {@code i} to {@code finalPositions.get(i)} and returns the vhost vring bases,
     * {@code bases[i]} for queue {@code i} ({@link VhostVringBase#encodeKernel} of its position).
     * The array is this object's, overwritten by the next resync.
     *
     * <p>Each position goes through the checks of {@link QueuePosition#check(int, int)}; the
     * queues before a refused one stay resynced, the refused one is broken (split) or unchanged
     * (packed).
     *
     * @throws IllegalArgumentException when the count differs from {@link #queues()}
     * @throws VirtqueueException naming the queue and the field of the first refused position
     */
    public int[] resync(List<QueuePosition> finalPositions) {
        int n = vringBases.length;
        if (finalPositions.size() != n) {
            throw new IllegalArgumentException(finalPositions.size() + " final positions for " + n + " queues");
        }
        boolean packedRings = packed != null;
        QueuePositionTable t = table;
        int[] entries = t.entries;
        for (int i = 0, at = 0; i < n; i++, at += QueuePositionTable.STRIDE) {
            QueuePosition p = finalPositions.get(i);
            boolean availWrap = p.lastAvailWrapCounter();
            boolean usedWrap = p.usedWrapCounter();
            // A position of the other format (or a split one with a wrap counter set) would pass
            // the folded range checks; refuse it here, naming the field. Non-short-circuit: one branch.
            if (p.packed() != packedRings | (!packedRings & (availWrap | usedWrap))) {
                throw formatError(i, p);
            }
            // QueuePositionTable.set without its per-call checks: i < n = the table's queue count.
            entries[at + QueuePositionTable.LAST_AVAIL_IDX] = p.lastAvailIdx();
            entries[at + QueuePositionTable.USED_IDX] = p.usedIdx();
            entries[at + QueuePositionTable.INUSE] = p.inuse();
            entries[at + QueuePositionTable.WRAP_COUNTERS] = (availWrap ? QueuePositionTable.AVAIL_WRAP : 0)
                    | (usedWrap ? QueuePositionTable.USED_WRAP : 0);
        }
        if (packedRings) {
            PackedDeviceQueue.resyncAll(packed, t, vringBases);
        } else {
            SplitDeviceQueue.resyncAll(split, t, vringBases);
        }
        return vringBases;
    }

    private VirtqueueException formatError(int i, QueuePosition p) {
        DeviceQueue queue = packed != null ? packed[i] : split[i];
        if (p.packed() != (packed != null)) {
            return VirtqueueException.state(queue.queueIndex(), "position.packed", p.packed() ? 1 : 0,
                    "a " + (p.packed() ? "packed" : "split") + " position for a " + (packed != null ? "packed" : "split")
                            + " ring");
        }
        try {
            p.check(queue.queueIndex(), queue.size());
        } catch (VirtqueueException e) {
            return e;
        }
        throw new AssertionError("a split position with a wrap counter passed its check: " + p);
    }
}

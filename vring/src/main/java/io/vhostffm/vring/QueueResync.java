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
 * allocates nothing. It is one pass straight over the positions as they were decoded, one loop
 * per ring format over an array of the concrete queue class (no per-queue interface call, no
 * copy of the positions): per queue, every check folded into one branch with a cold error path,
 * the stores, and the vring base into an array allocated here.
 *
 * <p>Used by both backends' quickstart: the userspace datapath resyncs the queues it will serve;
 * the kernel backend resyncs a device-side view of each queue it hands to vhost-net, which checks
 * the final positions against the queue sizes and gives the vring bases. Not thread-safe.
 */
public final class QueueResync {
    private final SplitDeviceQueue[] split;
    private final PackedDeviceQueue[] packed;
    private final int[] vringBases;

    private QueueResync(SplitDeviceQueue[] split, PackedDeviceQueue[] packed, int queues) {
        this.split = split;
        this.packed = packed;
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
        int[] bases = vringBases;
        int n = bases.length;
        if (finalPositions.size() != n) {
            throw new IllegalArgumentException(finalPositions.size() + " final positions for " + n + " queues");
        }
        if (packed != null) {
            resyncPacked(packed, finalPositions, bases);
        } else {
            resyncSplit(split, finalPositions, bases);
        }
        return bases;
    }

    // One loop per format: each call site of resyncToBase sees one concrete class. A single queue
    // takes no counted loop: C2 gives a loop pre/main/post parts and range-check predicates whose
    // set-up costs more than one queue's resync.

    private static void resyncSplit(SplitDeviceQueue[] queues, List<QueuePosition> positions, int[] bases) {
        if (queues.length == 1) {
            bases[0] = queues[0].resyncToBase(positions.get(0));
            return;
        }
        for (int i = 0; i < queues.length; i++) {
            bases[i] = queues[i].resyncToBase(positions.get(i));
        }
    }

    private static void resyncPacked(PackedDeviceQueue[] queues, List<QueuePosition> positions, int[] bases) {
        if (queues.length == 1) {
            bases[0] = queues[0].resyncToBase(positions.get(0));
            return;
        }
        for (int i = 0; i < queues.length; i++) {
            bases[i] = queues[i].resyncToBase(positions.get(i));
        }
    }
}

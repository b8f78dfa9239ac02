package io.vhostffm.vring;

import java.util.Objects;

/**
 * The final indices of many queues at once, held in primitive arrays (one per field) rather than
 * as one {@link FinalIndices} object per queue: the many-queue resync at switchover
 * ({@link SplitDeviceQueue#resyncAll}, {@link PackedDeviceQueue#resyncAll}) then reads them
 * sequentially without a pointer to follow per queue. Untrusted like {@link FinalIndices}: the
 * resync checks the ranges. Mutable and not thread-safe; filled once, from the migration stream.
 */
public final class FinalIndexTable {
    private static final byte AVAIL_WRAP = 1;
    private static final byte USED_WRAP = 2;

    final int[] lastAvailIdx;
    final int[] usedIdx;
    final int[] inuse;
    /** Bit 0: last avail wrap counter; bit 1: used wrap counter (packed only). */
    final byte[] wrapCounters;

    /** A table for {@code queues} queues, all indices 0 and wrap counters false. */
    public FinalIndexTable(int queues) {
        if (queues < 0) {
            throw new IllegalArgumentException("negative queue count " + queues);
        }
        lastAvailIdx = new int[queues];
        usedIdx = new int[queues];
        inuse = new int[queues];
        wrapCounters = new byte[queues];
    }

    /** A table holding {@code indices[i]} for queue {@code i}. */
    public static FinalIndexTable of(FinalIndices... indices) {
        FinalIndexTable table = new FinalIndexTable(indices.length);
        for (int q = 0; q < indices.length; q++) {
            table.set(q, indices[q]);
        }
        return table;
    }

    /** Number of queues. */
    public int queues() {
        return lastAvailIdx.length;
    }

    /** Stores the final indices of queue {@code queue}. */
    public void set(int queue, FinalIndices indices) {
        Objects.requireNonNull(indices, "indices");
        lastAvailIdx[queue] = indices.lastAvailIdx();
        usedIdx[queue] = indices.usedIdx();
        inuse[queue] = indices.inuse();
        wrapCounters[queue] = (byte) ((indices.lastAvailWrapCounter() ? AVAIL_WRAP : 0)
                | (indices.usedWrapCounter() ? USED_WRAP : 0));
    }

    /** The final indices of queue {@code queue}. */
    public FinalIndices get(int queue) {
        return new FinalIndices(lastAvailIdx[queue], lastAvailWrap(queue), usedIdx[queue], usedWrap(queue),
                inuse[queue]);
    }

    boolean lastAvailWrap(int queue) {
        return (wrapCounters[queue] & AVAIL_WRAP) != 0;
    }

    boolean usedWrap(int queue) {
        return (wrapCounters[queue] & USED_WRAP) != 0;
    }

    static void checkLengths(int queues, FinalIndexTable table, int[] vringBases) {
        if (table.queues() != queues || vringBases.length != queues) {
            throw new IllegalArgumentException(queues + " queues but " + table.queues() + " final indices and "
                    + vringBases.length + " vring bases");
        }
    }
}

package io.vhostffm.vring;

import java.util.Objects;

/**
 * The final indices of many queues at once, held in one primitive array (four ints per queue)
 * rather than as one {@link FinalIndices} object per queue: the many-queue resync at switchover
 * ({@link SplitDeviceQueue#resyncAll}, {@link PackedDeviceQueue#resyncAll}) then reads them
 * sequentially without a pointer to follow per queue. Untrusted like {@link FinalIndices}: the
 * resync checks the ranges. Mutable and not thread-safe; filled once, from the migration stream.
 */
public final class FinalIndexTable {
    /** Bit of {@link #WRAP_COUNTERS}: last avail wrap counter (packed only). */
    static final int AVAIL_WRAP = 1;
    /** Bit of {@link #WRAP_COUNTERS}: used wrap counter (packed only). */
    static final int USED_WRAP = 2;

    /** Ints per queue in {@link #entries}. */
    static final int STRIDE = 4;
    /** Offsets of a queue's fields inside its {@link #STRIDE} ints. */
    static final int LAST_AVAIL_IDX = 0;
    static final int USED_IDX = 1;
    static final int INUSE = 2;
    /** {@link #AVAIL_WRAP} | {@link #USED_WRAP}. */
    static final int WRAP_COUNTERS = 3;

    /**
     * Queue {@code q}'s final indices at {@code q * STRIDE + LAST_AVAIL_IDX}, {@code USED_IDX},
     * {@code INUSE} and {@code WRAP_COUNTERS}: interleaved, so the resync reads one sequential
     * stream (one cache line per four queues) and one array's bounds, not four. Every value is
     * kept as the stream sent it (out of range included), for the resync to check.
     */
    final int[] entries;

    /** A table for {@code queues} queues, all indices 0 and wrap counters false. */
    public FinalIndexTable(int queues) {
        if (queues < 0) {
            throw new IllegalArgumentException("negative queue count " + queues);
        }
        if (queues > Integer.MAX_VALUE / STRIDE) {
            throw new IllegalArgumentException("too many queues " + queues);
        }
        entries = new int[queues * STRIDE];
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
        return entries.length / STRIDE;
    }

    /** Stores the final indices of queue {@code queue}. */
    public void set(int queue, FinalIndices indices) {
        Objects.requireNonNull(indices, "indices");
        Objects.checkIndex(queue, queues());
        int at = queue * STRIDE;
        entries[at + LAST_AVAIL_IDX] = indices.lastAvailIdx();
        entries[at + USED_IDX] = indices.usedIdx();
        entries[at + INUSE] = indices.inuse();
        entries[at + WRAP_COUNTERS] = (indices.lastAvailWrapCounter() ? AVAIL_WRAP : 0)
                | (indices.usedWrapCounter() ? USED_WRAP : 0);
    }

    /** The final indices of queue {@code queue}. */
    public FinalIndices get(int queue) {
        Objects.checkIndex(queue, queues());
        int at = queue * STRIDE;
        int wraps = entries[at + WRAP_COUNTERS];
        return new FinalIndices(entries[at + LAST_AVAIL_IDX], (wraps & AVAIL_WRAP) != 0, entries[at + USED_IDX],
                (wraps & USED_WRAP) != 0, entries[at + INUSE]);
    }

    static void checkLengths(int queues, FinalIndexTable table, int[] vringBases) {
        if (table.queues() != queues || vringBases.length != queues) {
            throw new IllegalArgumentException(queues + " queues but " + table.queues() + " final indices and "
                    + vringBases.length + " vring bases");
        }
    }
}

package io.vhostffm.vring;

import java.util.Objects;

/**
 * The positions of many queues of one ring format at once, held in one primitive array (four
 * ints per queue) rather than as one {@link QueuePosition} object per queue: the many-queue resync
 * at switchover ({@link QueueResync}, through {@link SplitDeviceQueue#resyncAll} and
 * {@link PackedDeviceQueue#resyncAll}) then reads them sequentially without a pointer to follow
 * per queue. Every value is kept as given (out of range included), for the resync to check.
 * Mutable and not thread-safe.
 */
final class QueuePositionTable {
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
     * Queue {@code q}'s position at {@code q * STRIDE + LAST_AVAIL_IDX}, {@code USED_IDX},
     * {@code INUSE} and {@code WRAP_COUNTERS}: interleaved, so the resync reads one sequential
     * stream (one cache line per four queues) and one array's bounds, not four.
     */
    final int[] entries;

    /** A table for {@code queues} queues, all indices 0 and wrap counters false. */
    QueuePositionTable(int queues) {
        if (queues < 0) {
            throw new IllegalArgumentException("negative queue count " + queues);
        }
        if (queues > Integer.MAX_VALUE / STRIDE) {
            throw new IllegalArgumentException("too many queues " + queues);
        }
        entries = new int[queues * STRIDE];
    }

    /** A table holding {@code positions[i]} for queue {@code i}. */
    static QueuePositionTable of(QueuePosition... positions) {
        QueuePositionTable table = new QueuePositionTable(positions.length);
        for (int q = 0; q < positions.length; q++) {
            table.set(q, positions[q]);
        }
        return table;
    }

    /** Number of queues. */
    int queues() {
        return entries.length / STRIDE;
    }

    /** Stores the position of queue {@code queue} (its format is the table user's business). */
    void set(int queue, QueuePosition position) {
        Objects.requireNonNull(position, "position");
        Objects.checkIndex(queue, queues());
        int at = queue * STRIDE;
        entries[at + LAST_AVAIL_IDX] = position.lastAvailIdx();
        entries[at + USED_IDX] = position.usedIdx();
        entries[at + INUSE] = position.inuse();
        entries[at + WRAP_COUNTERS] = (position.lastAvailWrapCounter() ? AVAIL_WRAP : 0)
                | (position.usedWrapCounter() ? USED_WRAP : 0);
    }

    /** The position of queue {@code queue}, in the format {@code packed} (the table does not keep it). */
    QueuePosition get(int queue, boolean packed) {
        Objects.checkIndex(queue, queues());
        int at = queue * STRIDE;
        int wraps = entries[at + WRAP_COUNTERS];
        return new QueuePosition(packed, entries[at + LAST_AVAIL_IDX], (wraps & AVAIL_WRAP) != 0,
                entries[at + USED_IDX], (wraps & USED_WRAP) != 0, entries[at + INUSE]);
    }

    static void checkLengths(int queues, QueuePositionTable table, int[] vringBases) {
        if (table.queues() != queues || vringBases.length != queues) {
            throw new IllegalArgumentException(queues + " queues but " + table.queues() + " positions and "
                    + vringBases.length + " vring bases");
        }
    }
}

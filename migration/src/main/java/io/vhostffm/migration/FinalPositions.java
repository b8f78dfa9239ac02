package io.vhostffm.migration;

import io.vhostffm.vring.QueuePosition;
import io.vhostffm.vring.VirtqueueException;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * The payload of the stop-and-copy QUEUE_INDICES section: where every queue stood when the source
 * stopped its datapath, as vring's {@link QueuePosition} with the queue's virtqueue index.
 *
 * <p>Wire format: a count, then per queue its index and the position's components in order
 * (packed, last avail idx, its wrap counter, used idx, its wrap counter, inuse), as
 * {@code StateSchema} encodes nested records. Untrusted when decoded: each entry checks what the
 * ring format allows ({@link QueuePosition#check(int)}, naming the queue and the field); the
 * destination's resync then checks each position against its queue's size.
 *
 * @param queues one entry per virtqueue, each queue number at most once
 */
public record FinalPositions(List<Entry> queues) {

    /**
     * One queue's final position.
     *
     * @param queue    the virtqueue index, 0..65535
     * @param position where the queue stood
     */
    public record Entry(int queue, QueuePosition position) {
        /**
         * @throws IllegalArgumentException when the queue index is out of range
         * @throws VirtqueueException naming the queue and the field when the position does not fit its ring format
         */
        public Entry {
            if (queue < 0 || queue > 0xFFFF) {
                throw new IllegalArgumentException("queue " + queue + " out of 0..65535");
            }
            if (position == null) {
                throw new IllegalArgumentException("queue " + queue + ": no position");
            }
            position.check(queue);
        }
    }

    /** Each queue number at most once. */
    public FinalPositions {
        queues = List.copyOf(queues);
        Set<Integer> seen = new HashSet<>();
        for (Entry q : queues) {
            if (!seen.add(q.queue())) {
                throw new IllegalArgumentException("queue " + q.queue() + " appears twice");
            }
        }
    }

    /** The position of {@code queue}, or null when the source sent none. */
    public QueuePosition of(int queue) {
        for (Entry q : queues) {
            if (q.queue() == queue) {
                return q.position();
            }
        }
        return null;
    }
}

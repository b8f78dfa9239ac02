package io.vhostffm.migration;

import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * The payload of the stop-and-copy QUEUE_INDICES section: the final indices of every queue.
 *
 * @param queues one entry per virtqueue, each queue number at most once
 */
public record FinalIndices(List<QueueIndices> queues) {
    public FinalIndices {
        queues = List.copyOf(queues);
        Set<Integer> seen = new HashSet<>();
        for (QueueIndices q : queues) {
            if (!seen.add(q.queue())) {
                throw new IllegalArgumentException("queue " + q.queue() + " appears twice");
            }
        }
    }

    /** The entry of {@code queue}, or null. */
    public QueueIndices of(int queue) {
        for (QueueIndices q : queues) {
            if (q.queue() == queue) {
                return q;
            }
        }
        return null;
    }
}

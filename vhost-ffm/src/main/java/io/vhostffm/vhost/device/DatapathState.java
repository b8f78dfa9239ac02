package io.vhostffm.vhost.device;

import io.vhostffm.vring.QueueState;
import java.util.List;

/**
 * Where every queue of a device stood when its datapath stopped: what a restarted backend, the
 * other backend (a live switch) or a migration destination resumes from.
 *
 * @param dataQueues the data queues in virtqueue order (rx {@code 2i}, tx {@code 2i+1})
 * @param controlQueue the control queue, or null when CTRL_VQ was not negotiated
 * @param controlQueueIndex the control queue's virtqueue index ({@code 2 * max_virtqueue_pairs}
 *     with MQ, else 2), or -1 without a control queue
 */
public record DatapathState(List<QueueState> dataQueues, QueueState controlQueue, int controlQueueIndex) {
    public DatapathState {
        dataQueues = List.copyOf(dataQueues);
    }
}

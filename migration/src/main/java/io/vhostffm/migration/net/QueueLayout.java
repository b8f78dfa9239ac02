package io.vhostffm.migration.net;

import io.vhostffm.vring.QueueGeometry;
import io.vhostffm.vring.QueueState;

/**
 * Where one virtqueue lives in guest memory, as the transport's queue registers (queue_size,
 * queue_desc, queue_driver, queue_device) say: the part of a queue's state that changes only when
 * the driver sets the queue up again. The runtime indices are deliberately absent: they move with
 * every frame and travel as final indices at stop-and-copy ({@link io.vhostffm.migration.FinalPositions}).
 *
 * @param queue the virtqueue index
 * @param size the queue size
 * @param descTableAddress the descriptor table (split) or ring (packed)
 * @param driverAreaAddress the available ring (split) or driver event suppression (packed)
 * @param deviceAreaAddress the used ring (split) or device event suppression (packed)
 * @param eventIdx VIRTIO_F_EVENT_IDX negotiated
 * @param packed VIRTIO_F_RING_PACKED negotiated
 */
public record QueueLayout(int queue, int size, long descTableAddress, long driverAreaAddress, long deviceAreaAddress,
        boolean eventIdx, boolean packed) {

    /** The layout part of a queue state. */
    public static QueueLayout of(int queue, QueueState state) {
        QueueGeometry g = state.geometry();
        return new QueueLayout(queue, g.size(), g.descTableAddress(), g.driverAreaAddress(), g.deviceAreaAddress(),
                g.eventIdx(), g.packed());
    }

    /** A fresh queue state of this layout (indices at their start: the early, possibly stale, position). */
    public QueueState freshState() {
        return QueueState.fresh(geometry());
    }

    /** The ring geometry this layout describes. */
    public QueueGeometry geometry() {
        return new QueueGeometry(size, descTableAddress, driverAreaAddress, deviceAreaAddress, eventIdx, packed);
    }
}

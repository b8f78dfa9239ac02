package io.vhostffm.migration;

/**
 * The final ring indices of one virtqueue, as read from the stopped backend
 * (VHOST_GET_VRING_BASE) at stop-and-copy and set on the destination (VHOST_SET_VRING_BASE).
 * Untrusted when decoded: the constructor bounds every value by the ring layout.
 *
 * @param queue the virtqueue index, 0..65535
 * @param packed whether the queue is a packed ring (virtio 1.x section 2.8)
 * @param lastAvailIdx split: last_avail_idx, 16 bits; packed: 15 bits
 * @param availWrapCounter packed only: the driver ring wrap counter; false for split rings
 * @param usedIdx split: used_idx, 16 bits; packed: 15 bits
 * @param usedWrapCounter packed only: the device ring wrap counter; false for split rings
 * @param inuse descriptors taken from the ring but not yet used, 0..32768
 */
public record QueueIndices(int queue, boolean packed, int lastAvailIdx, boolean availWrapCounter, int usedIdx,
        boolean usedWrapCounter, int inuse) {

    public QueueIndices {
        if (queue < 0 || queue > 0xFFFF) {
            throw new IllegalArgumentException("queue " + queue + " out of 0..65535");
        }
        int limit = packed ? 0x7FFF : 0xFFFF;
        if (lastAvailIdx < 0 || lastAvailIdx > limit) {
            throw new IllegalArgumentException("queue " + queue + ": lastAvailIdx " + lastAvailIdx + " out of 0.." + limit);
        }
        if (usedIdx < 0 || usedIdx > limit) {
            throw new IllegalArgumentException("queue " + queue + ": usedIdx " + usedIdx + " out of 0.." + limit);
        }
        if (!packed && (availWrapCounter || usedWrapCounter)) {
            throw new IllegalArgumentException("queue " + queue + ": a split ring has no wrap counters");
        }
        if (inuse < 0 || inuse > 32768) {
            throw new IllegalArgumentException("queue " + queue + ": inuse " + inuse + " out of 0..32768");
        }
    }

    /** Indices of a split ring. */
    public static QueueIndices split(int queue, int lastAvailIdx, int usedIdx, int inuse) {
        return new QueueIndices(queue, false, lastAvailIdx, false, usedIdx, false, inuse);
    }

    /** Indices of a packed ring, with its wrap counters. */
    public static QueueIndices packed(int queue, int lastAvailIdx, boolean availWrapCounter, int usedIdx,
            boolean usedWrapCounter, int inuse) {
        return new QueueIndices(queue, true, lastAvailIdx, availWrapCounter, usedIdx, usedWrapCounter, inuse);
    }

    /**
     * The {@code num} of a {@code struct vhost_vring_state} for VHOST_SET_VRING_BASE: split,
     * last_avail_idx; packed, as QEMU and vhost-vdpa encode it: bits 0-14 last avail idx, bit 15
     * avail wrap counter, bits 16-30 used idx, bit 31 used wrap counter.
     */
    public int vringBase() {
        if (!packed) {
            return lastAvailIdx;
        }
        return lastAvailIdx | (availWrapCounter ? 1 << 15 : 0) | (usedIdx << 16) | (usedWrapCounter ? 1 << 31 : 0);
    }
}

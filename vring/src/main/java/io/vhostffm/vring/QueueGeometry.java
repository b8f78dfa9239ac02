package io.vhostffm.vring;

/**
 * Where a virtqueue lies in guest memory and how its rings are laid out: what the transport's
 * queue registers and the negotiated features say, and what changes only when the driver sets the
 * queue up again. Where the device stands in the rings is a {@link QueuePosition}.
 *
 * <p>Untrusted when it comes from elsewhere (another host, a migration stream): building the
 * record checks nothing; {@link #validate} checks everything a queue relies on.
 *
 * @param size              queue size (split: a power of two up to 32768; packed: 1 to 32768)
 * @param descTableAddress  guest address of the descriptor table (split) or ring (packed); 16-aligned
 * @param driverAreaAddress split: the available ring (2-aligned); packed: the driver event
 *                          suppression structure (4-aligned)
 * @param deviceAreaAddress split: the used ring (4-aligned); packed: the device event suppression
 *                          structure (4-aligned)
 * @param eventIdx          VIRTIO_F_EVENT_IDX negotiated
 * @param packed            VIRTIO_F_RING_PACKED negotiated: a packed ring, else a split ring
 */
public record QueueGeometry(int size, long descTableAddress, long driverAreaAddress, long deviceAreaAddress,
        boolean eventIdx, boolean packed) {

    /** Largest queue size of either format. */
    public static final int MAX_SIZE = 32768;

    /** A split ring's geometry. */
    public static QueueGeometry split(int size, long descTableAddress, long availRingAddress, long usedRingAddress,
            boolean eventIdx) {
        return new QueueGeometry(size, descTableAddress, availRingAddress, usedRingAddress, eventIdx, false);
    }

    /** A packed ring's geometry. */
    public static QueueGeometry packed(int size, long descRingAddress, long driverEventAddress,
            long deviceEventAddress, boolean eventIdx) {
        return new QueueGeometry(size, descRingAddress, driverEventAddress, deviceEventAddress, eventIdx, true);
    }

    /** The same ring areas under other negotiated features (the transport knows the areas before FEATURES_OK). */
    public QueueGeometry withFeatures(boolean newEventIdx, boolean newPacked) {
        return new QueueGeometry(size, descTableAddress, driverAreaAddress, deviceAreaAddress, newEventIdx, newPacked);
    }

    /** Bytes of the descriptor table (split) or descriptor ring (packed): 16 per descriptor. */
    public long descTableBytes() {
        return 16L * size;
    }

    /**
     * Bytes of the driver area: split, the available ring {@code flags, idx, ring[size]} plus
     * {@code used_event} under event idx; packed, the 4-byte event suppression structure.
     */
    public long driverAreaBytes() {
        return packed ? 4 : 4 + 2L * size + (eventIdx ? 2 : 0);
    }

    /**
     * Bytes of the device area: split, the used ring {@code flags, idx, ring[size]} (8 bytes per
     * element) plus {@code avail_event} under event idx; packed, the 4-byte event suppression
     * structure.
     */
    public long deviceAreaBytes() {
        return packed ? 4 : 4 + 8L * size + (eventIdx ? 2 : 0);
    }

    /**
     * Checks the size, the alignment of the three areas, and that each area lies whole in one
     * guest memory region.
     *
     * @param queueIndex for the error message
     * @throws VirtqueueException ({@link VirtqueueException.Rule#INVALID_STATE}) naming the field
     */
    public void validate(int queueIndex, GuestMemory memory) {
        if (size < 1 || size > MAX_SIZE) {
            throw VirtqueueException.state(queueIndex, "size", size, "must be in [1, " + MAX_SIZE + "]");
        }
        if (!packed && Integer.bitCount(size) != 1) {
            throw VirtqueueException.state(queueIndex, "size", size, "a split queue size must be a power of two");
        }
        checkArea(queueIndex, memory, "descTableAddress", descTableAddress, 16, descTableBytes());
        checkArea(queueIndex, memory, "driverAreaAddress", driverAreaAddress, packed ? 4 : 2, driverAreaBytes());
        checkArea(queueIndex, memory, "deviceAreaAddress", deviceAreaAddress, 4, deviceAreaBytes());
    }

    private static void checkArea(int queueIndex, GuestMemory memory, String field, long address, int alignment,
            long bytes) {
        if (address < 0 || (address & (alignment - 1)) != 0) {
            throw VirtqueueException.state(queueIndex, field, address,
                    "must be a non-negative guest address aligned to " + alignment);
        }
        if (!memory.contains(address, bytes)) {
            throw VirtqueueException.state(queueIndex, field, address,
                    bytes + " bytes at it are not inside guest memory: " + memory.describeMiss(address, bytes));
        }
    }
}

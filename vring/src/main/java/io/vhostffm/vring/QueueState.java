package io.vhostffm.vring;

/**
 * The state of one device-side virtqueue as plain data, for saving and restoring it (live
 * migration, device reset, handing a queue to the kernel and back).
 *
 * <p>A restored state comes from elsewhere (another host, a migration stream) and is untrusted:
 * building the record checks nothing; {@link #validate} checks everything a queue relies on and
 * every restore calls it. Indices are 16-bit values held in ints; wrap counters are booleans.
 *
 * <p>Which fields are authoritative on restore depends on the format: a split ring's used index,
 * shadow avail index and inuse live in guest memory too and are re-derived from it, as QEMU's
 * {@code virtio_load} does; a packed ring's cannot be, so they are taken from here.
 * {@code signalledUsedValid} is always cleared on restore (one spare notification is harmless, a
 * missed one hangs the guest).
 *
 * @param size                   queue size (split: a power of two up to 32768; packed: 1 to 32768)
 * @param descTableAddress       guest address of the descriptor table (split) or ring (packed); 16-aligned
 * @param driverAreaAddress      split: the available ring (2-aligned); packed: the driver event
 *                               suppression structure (4-aligned)
 * @param deviceAreaAddress      split: the used ring (4-aligned); packed: the device event
 *                               suppression structure (4-aligned)
 * @param lastAvailIdx           the next available entry the device will take ({@code last_avail_idx})
 * @param lastAvailWrapCounter   packed: the wrap counter that goes with {@code lastAvailIdx}
 * @param shadowAvailIdx         the driver's available index as last read by the device
 * @param shadowAvailWrapCounter packed: the wrap counter that goes with {@code shadowAvailIdx}
 * @param usedIdx                the next used entry the device will write ({@code used_idx})
 * @param usedWrapCounter        packed: the device's used wrap counter
 * @param inuse                  chains taken but not yet published
 * @param signalledUsed          used index at the last notification decision ({@code signalled_used})
 * @param signalledUsedValid     whether {@code signalledUsed} may be trusted
 * @param eventIdx               VIRTIO_F_EVENT_IDX negotiated
 * @param packed                 VIRTIO_F_RING_PACKED negotiated: a packed ring, else a split ring
 */
public record QueueState(
        int size,
        long descTableAddress,
        long driverAreaAddress,
        long deviceAreaAddress,
        int lastAvailIdx,
        boolean lastAvailWrapCounter,
        int shadowAvailIdx,
        boolean shadowAvailWrapCounter,
        int usedIdx,
        boolean usedWrapCounter,
        int inuse,
        int signalledUsed,
        boolean signalledUsedValid,
        boolean eventIdx,
        boolean packed) {

    /** Largest queue size of either format. */
    public static final int MAX_SIZE = 32768;

    /** The state of a fresh split queue: all indices 0. */
    public static QueueState split(int size, long descTableAddress, long availRingAddress, long usedRingAddress,
            boolean eventIdx) {
        return new QueueState(size, descTableAddress, availRingAddress, usedRingAddress,
                0, false, 0, false, 0, false, 0, 0, false, eventIdx, false);
    }

    /** The state of a fresh packed queue: indices 0, wrap counters 1 as the spec starts them. */
    public static QueueState packed(int size, long descRingAddress, long driverEventAddress,
            long deviceEventAddress, boolean eventIdx) {
        return new QueueState(size, descRingAddress, driverEventAddress, deviceEventAddress,
                0, true, 0, true, 0, true, 0, 0, false, eventIdx, true);
    }

    /** This state with other last-avail and used positions (shadow := last avail, signalled invalid). */
    public QueueState withIndices(int newLastAvailIdx, boolean newLastAvailWrap, int newUsedIdx,
            boolean newUsedWrap, int newInuse) {
        return new QueueState(size, descTableAddress, driverAreaAddress, deviceAreaAddress,
                newLastAvailIdx, newLastAvailWrap, newLastAvailIdx, newLastAvailWrap, newUsedIdx, newUsedWrap,
                newInuse, newUsedIdx, false, eventIdx, packed);
    }

    /** This state's positions as the vhost vring base ({@code VHOST_GET/SET_VRING_BASE}). */
    public VringBase vringBase() {
        return new VringBase(lastAvailIdx, lastAvailWrapCounter, usedIdx, usedWrapCounter);
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
     * Checks everything a queue relies on: the size, the alignment of the three areas, that each
     * area lies whole in one guest memory region, and the range of every index.
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
        // A split ring's indices are free-running 16-bit counters; a packed ring's are positions
        // in the ring, with the wrap counter carrying the lap.
        int indexLimit = packed ? size : 0x10000;
        checkIndex(queueIndex, "lastAvailIdx", lastAvailIdx, indexLimit);
        checkIndex(queueIndex, "shadowAvailIdx", shadowAvailIdx, indexLimit);
        checkIndex(queueIndex, "usedIdx", usedIdx, indexLimit);
        checkIndex(queueIndex, "signalledUsed", signalledUsed, indexLimit);
        if (inuse < 0 || inuse > size) {
            throw VirtqueueException.state(queueIndex, "inuse", inuse, "must be in [0, size " + size + "]");
        }
    }

    private static void checkIndex(int queueIndex, String field, int value, int limit) {
        if (value < 0 || value >= limit) {
            throw VirtqueueException.state(queueIndex, field, value, "must be in [0, " + limit + ")");
        }
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

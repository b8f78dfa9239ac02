package io.vhostffm.vring;

/**
 * Where a virtqueue stands: the positions the device has reached in the ring, apart from where the
 * ring lies ({@link QueueGeometry}). This is what moves with every frame, what a stopped backend
 * reports, what a migration sends at stop-and-copy and what the vhost vring base carries
 * ({@link VhostVringBase}).
 *
 * <ul>
 *   <li>Split: {@code last_avail_idx} and {@code used_idx} are free-running 16-bit counters
 *       (0-65535); the wrap counters are false.</li>
 *   <li>Packed: both indices are ring positions (below the queue size, so below 32768) and each
 *       has its wrap counter, which starts at 1 and flips every lap.</li>
 * </ul>
 *
 * <p>Untrusted when decoded (from a migration stream, a vhost vring base, another process):
 * building the record checks nothing. {@link #check(int)} checks what the ring format alone
 * allows, {@link #check(int, int)} what a queue of a given size accepts (the checks
 * {@link DeviceQueue#resync} makes); both name the queue and the field.
 *
 * @param packed               VIRTIO_F_RING_PACKED: a packed ring's position, else a split ring's
 * @param lastAvailIdx         the next available entry the device will take ({@code last_avail_idx})
 * @param lastAvailWrapCounter packed: the wrap counter that goes with {@code lastAvailIdx}; split: false
 * @param usedIdx              the next used entry the device will write ({@code used_idx})
 * @param usedWrapCounter      packed: the device's used wrap counter; split: false
 * @param inuse                chains taken but not yet used
 */
public record QueuePosition(boolean packed, int lastAvailIdx, boolean lastAvailWrapCounter, int usedIdx,
        boolean usedWrapCounter, int inuse) {

    /** Most chains a queue can have in use: one per entry of the largest queue. */
    public static final int MAX_INUSE = QueueGeometry.MAX_SIZE;
    /** Largest split index: split indices are free-running 16-bit counters. */
    static final int SPLIT_INDEX_MAX = 0xffff;
    /** Largest packed index: a position below the largest packed queue size. */
    static final int PACKED_INDEX_MAX = PackedRing.MAX_QUEUE_SIZE - 1;

    /** A split ring's position. */
    public static QueuePosition split(int lastAvailIdx, int usedIdx, int inuse) {
        return new QueuePosition(false, lastAvailIdx, false, usedIdx, false, inuse);
    }

    /** A packed ring's position, with its wrap counters. */
    public static QueuePosition packed(int lastAvailIdx, boolean lastAvailWrapCounter, int usedIdx,
            boolean usedWrapCounter, int inuse) {
        return new QueuePosition(true, lastAvailIdx, lastAvailWrapCounter, usedIdx, usedWrapCounter, inuse);
    }

    /** Where a fresh queue starts: indices 0, and a packed ring's wrap counters 1 as the spec starts them. */
    public static QueuePosition initial(boolean packed) {
        return new QueuePosition(packed, 0, packed, 0, packed, 0);
    }

    /**
     * Checks what the ring format alone allows, for a position whose queue size is not known yet
     * (decoding a migration stream): split, both indices in [0, 65535] and no wrap counter set;
     * packed, both indices in [0, 32767]; inuse in [0, {@value #MAX_INUSE}].
     *
     * @param queueIndex the virtqueue, for the message
     * @throws VirtqueueException ({@link VirtqueueException.Rule#INVALID_STATE}) naming the field
     */
    public void check(int queueIndex) {
        int limit = packed ? PACKED_INDEX_MAX : SPLIT_INDEX_MAX;
        checkIndex(queueIndex, "lastAvailIdx", lastAvailIdx, limit);
        checkIndex(queueIndex, "usedIdx", usedIdx, limit);
        checkNoSplitWrap(queueIndex);
        if (inuse < 0 || inuse > MAX_INUSE) {
            throw VirtqueueException.state(queueIndex, "inuse", inuse, "must be in [0, " + MAX_INUSE + "]");
        }
    }

    /**
     * Checks that a queue of {@code size} entries can take this position, as
     * {@link DeviceQueue#resync} does: split, both indices in [0, 65535], no wrap counter set,
     * inuse in [0, size], and the used index at most {@code size} behind the last avail index
     * (16-bit distance); packed, both indices in [0, size) and inuse in [0, size].
     *
     * @param queueIndex the virtqueue, for the message
     * @throws VirtqueueException ({@link VirtqueueException.Rule#INVALID_STATE}) naming the field
     */
    public void check(int queueIndex, int size) {
        checkNoSplitWrap(queueIndex);
        VirtqueueException error = rangeError(queueIndex, size, packed, lastAvailIdx, usedIdx, inuse);
        if (error != null) {
            throw error;
        }
    }

    /**
     * The error for a position a queue of {@code size} refuses, naming the field; null when it
     * accepts it. The cold path of every resync, so that a refused final position reads the same
     * whichever way it arrived.
     */
    static VirtqueueException rangeError(int queueIndex, int size, boolean packed, int last, int used, int inuse) {
        if (packed) {
            if (last < 0 || last >= size) {
                return VirtqueueException.state(queueIndex, "lastAvailIdx", last, "must be in [0, " + size + ")");
            }
            if (used < 0 || used >= size) {
                return VirtqueueException.state(queueIndex, "usedIdx", used, "must be in [0, " + size + ")");
            }
        } else {
            if (last < 0 || last > SPLIT_INDEX_MAX) {
                return VirtqueueException.state(queueIndex, "lastAvailIdx", last, "must be in [0, 65535]");
            }
            if (used < 0 || used > SPLIT_INDEX_MAX) {
                return VirtqueueException.state(queueIndex, "usedIdx", used, "must be in [0, 65535]");
            }
        }
        if (inuse < 0 || inuse > size) {
            return VirtqueueException.state(queueIndex, "inuse", inuse, "must be in [0, size " + size + "]");
        }
        if (!packed && ((last - used) & 0xffff) > size) {
            return VirtqueueException.state(queueIndex, "usedIdx", used,
                    "more than the queue size " + size + " behind lastAvailIdx " + last);
        }
        return null;
    }

    private void checkNoSplitWrap(int queueIndex) {
        if (!packed && lastAvailWrapCounter) {
            throw VirtqueueException.state(queueIndex, "lastAvailWrapCounter", 1, "a split ring has no wrap counters");
        }
        if (!packed && usedWrapCounter) {
            throw VirtqueueException.state(queueIndex, "usedWrapCounter", 1, "a split ring has no wrap counters");
        }
    }

    private static void checkIndex(int queueIndex, String field, int value, int max) {
        if (value < 0 || value > max) {
            throw VirtqueueException.state(queueIndex, field, value, "must be in [0, " + max + "]");
        }
    }

    /** For messages: the format, both indices with their wrap counters (packed), and inuse. */
    @Override
    public String toString() {
        return packed
                ? String.format("packed[last_avail_idx %d wrap %d, used_idx %d wrap %d, inuse %d]", lastAvailIdx,
                        lastAvailWrapCounter ? 1 : 0, usedIdx, usedWrapCounter ? 1 : 0, inuse)
                : String.format("split[last_avail_idx %d, used_idx %d, inuse %d]", lastAvailIdx, usedIdx, inuse);
    }
}

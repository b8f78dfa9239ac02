package io.vhostffm.vring;

/**
 * The device side of one virtqueue, split or packed: takes the chains the driver made available,
 * publishes used elements back, and decides about notifications in both directions.
 *
 * <h2>Typical loop</h2>
 * <pre>{@code
 * DescriptorChain chain = queue.newChain();       // once; reused for every take
 * while (running) {
 *     queue.disableNotifications();               // no kicks while we are busy anyway
 *     while (queue.take(chain)) {
 *         int written = serve(chain);             // read/write the buffers in place
 *         queue.publishUsed(chain.headId(), written);
 *     }
 *     if (queue.needsNotification()) signalGuest();  // e.g. write the call eventfd
 *     if (!queue.enableNotifications()) {         // re-checks for a race with the driver
 *         waitForKick();
 *     }
 * }
 * }</pre>
 *
 * <h2>Ordering</h2>
 * Ring memory is shared with the driver. Implementations read the driver's index with acquire
 * semantics, write used elements and then release-store their own index, and put a full fence
 * before reading the driver's event index or flags (and after writing theirs, before re-checking).
 *
 * <h2>Errors</h2>
 * A malformed chain or an impossible index is a {@link VirtqueueException}; the queue is then
 * broken ({@link #isBroken()}), nothing is published for the chain, and further takes and
 * publishes throw until {@link #restoreState} is called.
 *
 * <h2>Allocation</h2>
 * {@link #take}, {@link #publishUsed}, {@link #publishUsedBatch}, {@link #needsNotification},
 * {@link #enableNotifications} and {@link #disableNotifications} allocate nothing on the normal
 * path; only the error path does.
 *
 * <p>Not thread-safe: one device thread per queue (the driver runs concurrently on the other side).
 */
public interface DeviceQueue {

    /** Index of this queue in its device; named in every error. */
    int queueIndex();

    /** Queue size. */
    int size();

    /** Whether this is a packed ring (VIRTIO_F_RING_PACKED). */
    boolean isPacked();

    /** Whether VIRTIO_F_EVENT_IDX is in use. */
    boolean eventIdx();

    /** A chain holder sized for this queue; create once and reuse. */
    default DescriptorChain newChain() {
        return new DescriptorChain(size());
    }

    /**
     * Takes the next available chain, walking and checking it, into {@code chain}.
     *
     * @return false when the driver has made nothing new available
     * @throws VirtqueueException on a malformed chain or index; the queue is then broken
     * @throws IllegalArgumentException when the holder's capacity is below the queue size
     */
    boolean take(DescriptorChain chain);

    /**
     * Publishes one used element and makes it visible to the driver (release store of the index).
     *
     * @param id            the chain's {@link DescriptorChain#headId()}
     * @param writtenLength bytes the device wrote into the chain's writable buffers (le32, unsigned)
     * @throws IllegalArgumentException when {@code id} is not below the queue size
     * @throws IllegalStateException    when more would be published than was taken
     * @throws VirtqueueException       ({@link VirtqueueException.Rule#QUEUE_BROKEN}) on a broken queue
     */
    void publishUsed(int id, int writtenLength);

    /**
     * Publishes the chain's head with the written length; see {@link #publishUsed(int, int)}.
     *
     * @throws IllegalArgumentException when {@code writtenLength} (unsigned) exceeds the chain's
     *                                  writable length: the used {@code len} must not claim more
     *                                  than the device could write
     */
    default void publishUsed(DescriptorChain chain, int writtenLength) {
        if (Integer.toUnsignedLong(writtenLength) > chain.writableLength()) {
            throw new IllegalArgumentException("virtqueue " + queueIndex() + ": written length "
                    + Integer.toUnsignedLong(writtenLength) + " exceeds the chain's writable "
                    + chain.writableLength() + " bytes (head " + chain.headId() + ")");
        }
        publishUsed(chain.headId(), writtenLength);
    }

    /**
     * Publishes {@code count} used elements and makes them visible to the driver at once: one
     * release store of the index after all elements are written.
     */
    void publishUsedBatch(int[] ids, int[] writtenLengths, int count);

    /**
     * Whether the driver wants a used-buffer notification now, exactly as the spec words it:
     * without event idx, unless the driver set the "no interrupt" flag; with event idx, when the
     * used index moved past the driver's {@code used_event} since the last decision
     * ({@code vring_need_event}, 16-bit wraparound). Records the decision point
     * ({@code signalled_used}); call it once after publishing a batch.
     */
    boolean needsNotification();

    /**
     * Asks the driver not to send available-buffer notifications (kicks). A hint: the driver may
     * still kick.
     */
    void disableNotifications();

    /**
     * Asks the driver for available-buffer notifications again, then (after a full fence) checks
     * whether buffers arrived meanwhile.
     *
     * @return true when chains are available, so the caller must take them instead of sleeping
     */
    boolean enableNotifications();

    /** Whether an earlier violation broke this queue. */
    boolean isBroken();

    /** The queue's state as plain data (the queue keeps working). */
    QueueState saveState();

    /**
     * Replaces this queue's state: validates it ({@link QueueState#validate}), resolves the ring
     * areas in guest memory, and checks the indices found there as {@code mode} says; clears the
     * broken flag. Not a hot-path operation: it may allocate.
     *
     * @throws VirtqueueException naming the field when the state does not hold up; the queue is
     *                            then broken
     */
    void restoreState(QueueState state, RestoreMode mode);

    /**
     * The vring index resync after the final position arrives at stop-and-copy: last avail idx,
     * used idx, inuse and wrap counters := the final ones, shadow avail idx := last avail idx (and
     * its wrap counter), signalled_used_valid := false. Cheap: no guest memory access, no
     * allocation; only the checks of {@link QueuePosition#check(int, int)}. Many queues at once:
     * {@link QueueResync}.
     *
     * @throws VirtqueueException ({@link VirtqueueException.Rule#INVALID_STATE}) naming the field
     */
    void resync(QueuePosition finalPosition);
}

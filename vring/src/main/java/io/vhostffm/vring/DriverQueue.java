package io.vhostffm.vring;

/**
 * The driver (guest) side of one virtqueue, split or packed, for hypervisor test rigs and this
 * library's own tests: a fake guest that makes buffers available and collects used ones, like
 * rust-vmm's {@code MockSplitQueue}. The caller owns guest memory: it passes guest addresses of
 * buffers (and of indirect tables) it placed there itself.
 *
 * <h2>Ordering</h2>
 * Symmetric to the device: descriptors and ring entries are written, then the driver's index is
 * release-stored; the device's index is read with acquire; a full fence precedes reading the
 * device's event index or flags.
 *
 * <p>Not thread-safe: one driver thread per queue.
 */
public interface DriverQueue {

    /** Index of this queue in its device. */
    int queueIndex();

    /** Queue size. */
    int size();

    /** Whether this is a packed ring. */
    boolean isPacked();

    /** Descriptors free for new chains. */
    int freeDescriptors();

    /**
     * Makes one chain available, its buffers in the descriptor table (ring) directly.
     *
     * @param addresses     guest addresses: {@code readableCount} device-readable buffers, then
     *                      {@code writableCount} device-writable ones
     * @param lengths       their lengths (unsigned le32)
     * @return the chain's id (split: head descriptor index; packed: buffer id), or -1 when there
     *         are not enough free descriptors
     * @throws IllegalArgumentException when there is no buffer, or more than the queue size
     */
    int add(long[] addresses, int[] lengths, int readableCount, int writableCount);

    /**
     * Makes one chain available through an indirect table (VIRTIO_F_INDIRECT_DESC) that this call
     * writes at {@code tableAddress}, {@code 16 * (readableCount + writableCount)} bytes; one
     * descriptor of the queue refers to it.
     *
     * @return the chain's id, or -1 when no descriptor is free
     * @throws GuestMemoryException when the table does not lie inside one guest memory region
     */
    int addIndirect(long tableAddress, long[] addresses, int[] lengths, int readableCount, int writableCount);

    /**
     * Whether the device wants an available-buffer notification (a kick) for the chains added
     * since the last call: without event idx, unless the device set its "no notify" flag; with
     * event idx, when the available index moved past the device's {@code avail_event}
     * ({@code vring_need_event}, 16-bit wraparound).
     */
    boolean needsKick();

    /**
     * Collects up to {@code max} used elements in the order the device published them, and frees
     * their descriptors.
     *
     * @return how many were collected into {@code ids} and {@code writtenLengths}
     * @throws VirtqueueException ({@link VirtqueueException.Rule#USED_ID_INVALID}) when the
     *                            device names an id that is not a chain in flight
     */
    int collectUsed(int[] ids, int[] writtenLengths, int max);

    /** Asks the device not to send used-buffer notifications. A hint. */
    void disableUsedNotifications();

    /**
     * Asks the device for used-buffer notifications again, then (after a full fence) checks
     * whether used elements arrived meanwhile.
     *
     * @return true when used elements are waiting, so the caller must collect instead of sleeping
     */
    boolean enableUsedNotifications();

    /** The driver's own state as plain data, to carry a test guest across a migration. */
    DriverState saveState();

    /**
     * Replaces this driver's state with a saved one (the ring memory itself travels with guest
     * memory).
     *
     * @throws IllegalArgumentException naming the field when the state does not fit this queue
     */
    void restoreState(DriverState state);
}

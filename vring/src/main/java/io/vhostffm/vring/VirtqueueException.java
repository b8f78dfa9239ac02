package io.vhostffm.vring;

/**
 * A virtqueue the other side broke: a malformed descriptor, a buffer outside guest memory, a chain
 * too long, a bad index. Names the queue, the chain's head, the offending descriptor, and the
 * guest address and length involved. The queue that throws it is marked broken.
 */
public final class VirtqueueException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final String queue;
    private final int head;
    private final int descriptorIndex;
    private final long address;
    private final long length;

    /**
     * @param queue           the queue's name
     * @param head            ring index of the chain's first descriptor, or -1 when no chain is involved
     * @param descriptorIndex index of the offending descriptor (in the ring, or in the indirect table), or -1
     * @param address         guest address involved, or -1
     * @param length          length involved, or -1
     * @param reason          what is wrong
     */
    public VirtqueueException(String queue, int head, int descriptorIndex, long address, long length, String reason) {
        super(String.format("queue %s: head %d, descriptor %d, address 0x%x, length %d: %s",
                queue, head, descriptorIndex, address, length, reason));
        this.queue = queue;
        this.head = head;
        this.descriptorIndex = descriptorIndex;
        this.address = address;
        this.length = length;
    }

    /** The queue's name. */
    public String queue() {
        return queue;
    }

    /** Ring index of the chain's first descriptor, or -1. */
    public int head() {
        return head;
    }

    /** Index of the offending descriptor, or -1. */
    public int descriptorIndex() {
        return descriptorIndex;
    }

    /** Guest address involved, or -1. */
    public long address() {
        return address;
    }

    /** Length involved, or -1. */
    public long length() {
        return length;
    }
}

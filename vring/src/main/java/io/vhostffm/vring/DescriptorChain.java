package io.vhostffm.vring;

import java.lang.foreign.MemorySegment;

/**
 * One descriptor chain taken from a device queue: its head and its buffers, device-readable ones
 * first, then device-writable ones. A reusable, mutable holder: {@link DeviceQueue#take} fills it
 * in place, so steady-state taking allocates nothing. Create one per queue (capacity = queue size,
 * the longest chain the spec allows) and reuse it.
 *
 * <p>Every buffer was checked while the chain was taken: it lies whole inside one guest memory
 * region, readable buffers precede writable ones, and each direction's total length fits in 32
 * bits. So the accessors below cannot reach outside guest memory.
 *
 * <p>Buffers are never copied. Allocation-free access goes through {@link #regionSegment(int)}
 * and {@link #regionOffset(int)}:
 * <pre>{@code
 * MemorySegment region = chain.regionSegment(i);
 * long at = chain.regionOffset(i);               // buffer i is region[at, at + length(i))
 * byte first = region.get(ValueLayout.JAVA_BYTE, at);
 * }</pre>
 * {@link #buffer(int)} returns a slice of exactly the buffer; it allocates only that slice object.
 *
 * <p>Not thread-safe: one thread fills and reads it.
 */
public final class DescriptorChain {
    /** Largest value of a le32 length field; each direction's total must fit in it. */
    static final long MAX_TOTAL_LENGTH = 0xFFFF_FFFFL;

    private final int capacity;
    private final long[] addresses;
    private final int[] lengths;
    private final int[] regionIndexes;
    private final long[] regionOffsets;

    private GuestMemory memory;
    private int queueIndex;
    private int maxBuffers;
    private int headId = -1;
    private int descriptorCount;
    private int readableCount;
    private int writableCount;
    private long readableLength;
    private long writableLength;

    /**
     * @param capacity the most buffers a chain can hold: the queue size
     * @throws IllegalArgumentException when capacity is not in [1, 32768]
     */
    public DescriptorChain(int capacity) {
        if (capacity < 1 || capacity > 32768) {
            throw new IllegalArgumentException("chain capacity must be in [1, 32768]: " + capacity);
        }
        this.capacity = capacity;
        this.addresses = new long[capacity];
        this.lengths = new int[capacity];
        this.regionIndexes = new int[capacity];
        this.regionOffsets = new long[capacity];
    }

    /** The most buffers this holder can take (the queue size it was made for). */
    public int capacity() {
        return capacity;
    }

    /**
     * The id to publish back in the used element: the head descriptor index for a split ring,
     * the buffer id for a packed ring. -1 before the first take.
     */
    public int headId() {
        return headId;
    }

    /** Index of the queue this chain was taken from. */
    public int queueIndex() {
        return queueIndex;
    }

    /**
     * Ring slots the chain occupies: descriptors in the descriptor table or ring, an indirect
     * table counting as one. A packed ring advances its used index by this much.
     */
    public int descriptorCount() {
        return descriptorCount;
    }

    /** Number of buffers, readable plus writable. */
    public int bufferCount() {
        return readableCount + writableCount;
    }

    /** Number of device-readable buffers; they are buffers {@code 0 .. readableCount() - 1}. */
    public int readableCount() {
        return readableCount;
    }

    /** Number of device-writable buffers; they follow the readable ones. */
    public int writableCount() {
        return writableCount;
    }

    /** Sum of the readable buffers' lengths; at most 2^32 - 1. */
    public long readableLength() {
        return readableLength;
    }

    /** Sum of the writable buffers' lengths; at most 2^32 - 1. */
    public long writableLength() {
        return writableLength;
    }

    /** Guest-physical address of buffer {@code i}. */
    public long address(int i) {
        checkIndex(i);
        return addresses[i];
    }

    /** Length in bytes of buffer {@code i} (the unsigned le32 {@code len} field). */
    public long length(int i) {
        checkIndex(i);
        return Integer.toUnsignedLong(lengths[i]);
    }

    /** Whether buffer {@code i} is device-writable (VIRTQ_DESC_F_WRITE). */
    public boolean isWritable(int i) {
        checkIndex(i);
        return i >= readableCount;
    }

    /** Index in {@link GuestMemory#regions()} of the region holding buffer {@code i}. */
    public int regionIndex(int i) {
        checkIndex(i);
        return regionIndexes[i];
    }

    /** Offset of buffer {@code i} inside its region's segment. */
    public long regionOffset(int i) {
        checkIndex(i);
        return regionOffsets[i];
    }

    /** The whole segment of the region holding buffer {@code i}; no allocation. */
    public MemorySegment regionSegment(int i) {
        checkIndex(i);
        return memory.region(regionIndexes[i]).segment();
    }

    /** Buffer {@code i} in place, as a slice of guest memory; allocates the slice object only. */
    public MemorySegment buffer(int i) {
        checkIndex(i);
        return memory.region(regionIndexes[i]).segment()
                .asSlice(regionOffsets[i], Integer.toUnsignedLong(lengths[i]));
    }

    @Override
    public String toString() {
        return "DescriptorChain[queue " + queueIndex + ", head " + headId + ", " + readableCount + " readable ("
                + readableLength + " bytes), " + writableCount + " writable (" + writableLength + " bytes)]";
    }

    private void checkIndex(int i) {
        if (i < 0 || i >= readableCount + writableCount) {
            throw new IndexOutOfBoundsException("buffer " + i + " of a chain with " + (readableCount + writableCount));
        }
    }

    // ---- filling, for the ring implementations in this package ----

    /** Empties the holder for a new chain of at most {@link #capacity()} buffers. */
    void begin(GuestMemory memory, int queueIndex, int headId) {
        begin(memory, queueIndex, headId, capacity);
    }

    /**
     * Empties the holder for a new chain; {@code headId} may be set later ({@link #setHeadId}).
     *
     * @param maxBuffers the queue size: no chain may hold more buffers (capped at the capacity)
     */
    void begin(GuestMemory memory, int queueIndex, int headId, int maxBuffers) {
        this.maxBuffers = Math.min(maxBuffers, capacity);
        this.memory = memory;
        this.queueIndex = queueIndex;
        this.headId = headId;
        this.descriptorCount = 0;
        this.readableCount = 0;
        this.writableCount = 0;
        this.readableLength = 0;
        this.writableLength = 0;
    }

    /** Sets the id to publish (a packed ring learns it from the chain's last descriptor). */
    void setHeadId(int headId) {
        this.headId = headId;
    }

    /** Sets the number of ring slots the chain occupies. */
    void setDescriptorCount(int descriptorCount) {
        this.descriptorCount = descriptorCount;
    }

    /**
     * Appends one buffer after checking the format-independent rules: chain length, readable
     * before writable, inside one guest memory region, totals within 32 bits. The caller checks
     * the format's own rules (indirect tables, next indices, loops).
     *
     * @param descriptorIndex descriptor table (or ring) index, for the error message
     * @param indirectIndex   entry in the indirect table, or {@link VirtqueueException#NONE}
     * @param length          the raw le32 {@code len} field (unsigned)
     * @throws VirtqueueException naming queue, head, descriptor, address and length
     */
    void append(int descriptorIndex, int indirectIndex, long address, int length, boolean writable) {
        long unsignedLength = Integer.toUnsignedLong(length);
        int count = readableCount + writableCount;
        if (count >= maxBuffers) {
            throw VirtqueueException.chain(VirtqueueException.Rule.CHAIN_TOO_LONG, queueIndex, headId,
                    descriptorIndex, indirectIndex, address, unsignedLength,
                    "more than " + maxBuffers + " buffers");
        }
        if (!writable && writableCount > 0) {
            throw VirtqueueException.chain(VirtqueueException.Rule.READABLE_AFTER_WRITABLE, queueIndex, headId,
                    descriptorIndex, indirectIndex, address, unsignedLength,
                    "after " + writableCount + " writable buffer(s)");
        }
        int region = memory.findRegion(address, unsignedLength);
        if (region < 0) {
            throw VirtqueueException.chain(VirtqueueException.Rule.BUFFER_OUTSIDE_GUEST_MEMORY, queueIndex, headId,
                    descriptorIndex, indirectIndex, address, unsignedLength,
                    memory.describeMiss(address, unsignedLength));
        }
        if (writable) {
            long total = writableLength + unsignedLength;
            if (total > MAX_TOTAL_LENGTH) {
                throw VirtqueueException.chain(VirtqueueException.Rule.TOTAL_LENGTH_OVERFLOW, queueIndex, headId,
                        descriptorIndex, indirectIndex, address, unsignedLength,
                        "writable total would be " + total);
            }
            writableLength = total;
            writableCount++;
        } else {
            long total = readableLength + unsignedLength;
            if (total > MAX_TOTAL_LENGTH) {
                throw VirtqueueException.chain(VirtqueueException.Rule.TOTAL_LENGTH_OVERFLOW, queueIndex, headId,
                        descriptorIndex, indirectIndex, address, unsignedLength,
                        "readable total would be " + total);
            }
            readableLength = total;
            readableCount++;
        }
        addresses[count] = address;
        lengths[count] = length;
        regionIndexes[count] = region;
        regionOffsets[count] = address - memory.region(region).guestAddress();
    }
}

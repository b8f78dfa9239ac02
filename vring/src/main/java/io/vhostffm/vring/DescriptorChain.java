package io.vhostffm.vring;

import java.lang.foreign.MemorySegment;

/**
 * One buffer taken from a virtqueue: its elements as guest ranges, device-readable ones first,
 * then device-writable ones. A reusable holder: a take fills it in place, so the steady state
 * allocates nothing. Nothing is copied: element {@code i} lies at {@link #address(int)} in guest
 * memory, in region {@link #region(int)} at {@link #regionOffset(int)}.
 */
public final class DescriptorChain {
    private final long[] addresses;
    private final int[] lengths;
    private final int[] regions;
    private final long[] regionOffsets;
    private int count;
    private int readableCount;
    private long readableBytes;
    private long writableBytes;
    private int head = -1;
    private int id = -1;
    private int descriptorCount;
    private boolean indirect;

    /** A holder for chains of up to {@code capacity} elements (a queue's size covers any valid chain). */
    public DescriptorChain(int capacity) {
        if (capacity < 1) {
            throw new IllegalArgumentException("capacity must be positive: " + capacity);
        }
        addresses = new long[capacity];
        lengths = new int[capacity];
        regions = new int[capacity];
        regionOffsets = new long[capacity];
    }

    /** Elements this holder can take. */
    public int capacity() {
        return addresses.length;
    }

    void reset(int head) {
        this.head = head;
        this.id = -1;
        this.count = 0;
        this.readableCount = 0;
        this.readableBytes = 0;
        this.writableBytes = 0;
        this.descriptorCount = 0;
        this.indirect = false;
    }

    /** Appends an element; the caller has checked capacity, order and bounds. */
    void add(long address, int length, boolean writable, int region, long regionOffset) {
        addresses[count] = address;
        lengths[count] = length;
        regions[count] = region;
        regionOffsets[count] = regionOffset;
        count++;
        if (writable) {
            writableBytes += Integer.toUnsignedLong(length);
        } else {
            readableCount++;
            readableBytes += Integer.toUnsignedLong(length);
        }
    }

    void finish(int id, int descriptorCount, boolean indirect) {
        this.id = id;
        this.descriptorCount = descriptorCount;
        this.indirect = indirect;
    }

    /** Ring index of the chain's first descriptor. */
    public int head() {
        return head;
    }

    /**
     * The buffer id the driver gave the chain, returned in the used entry. Packed rings take it
     * from the last descriptor of the chain; split rings use the head index.
     */
    public int id() {
        return id;
    }

    /** Ring descriptors the chain occupies (1 for an indirect chain); a packed used entry skips this many. */
    public int descriptorCount() {
        return descriptorCount;
    }

    /** Whether the chain's elements came from an indirect table. */
    public boolean isIndirect() {
        return indirect;
    }

    /** Number of elements. */
    public int count() {
        return count;
    }

    /** Number of device-readable elements; they come first, elements from here on are writable. */
    public int readableCount() {
        return readableCount;
    }

    /** Number of device-writable elements. */
    public int writableCount() {
        return count - readableCount;
    }

    /** Total bytes of the device-readable elements. */
    public long readableBytes() {
        return readableBytes;
    }

    /** Total bytes of the device-writable elements. */
    public long writableBytes() {
        return writableBytes;
    }

    /** Guest address of element {@code i}. */
    public long address(int i) {
        return addresses[check(i)];
    }

    /** Length in bytes of element {@code i} (unsigned 32-bit as the ring says; lengths above 2^31 read negative). */
    public int length(int i) {
        return lengths[check(i)];
    }

    /** Whether element {@code i} is device-writable. */
    public boolean isWritable(int i) {
        return check(i) >= readableCount;
    }

    /** Index in {@link GuestMemory#regions()} of the region holding element {@code i}. */
    public int region(int i) {
        return regions[check(i)];
    }

    /** Offset of element {@code i} inside its region's segment. */
    public long regionOffset(int i) {
        return regionOffsets[check(i)];
    }

    /** Element {@code i} as a slice of guest memory, in place (allocates the slice object; hot paths use region and offset). */
    public MemorySegment segment(GuestMemory memory, int i) {
        return memory.region(region(i)).segment().asSlice(regionOffsets[i], Integer.toUnsignedLong(lengths[i]));
    }

    private int check(int i) {
        if (i < 0 || i >= count) {
            throw new IndexOutOfBoundsException("element " + i + " of a chain of " + count);
        }
        return i;
    }
}

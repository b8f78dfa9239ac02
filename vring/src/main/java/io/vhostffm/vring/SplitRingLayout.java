package io.vhostffm.vring;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemoryLayout.PathElement;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

/**
 * The split virtqueue's memory layout (virtio 1.x section 2.7): the sizes and alignments a driver
 * places its rings by ({@link #descTableBytes}, {@link #availRingBytes}, {@link #usedRingBytes},
 * {@link #place}), and, inside this package, the MemoryLayouts and VarHandles that
 * {@link SplitDeviceQueue} and {@link SplitDriverQueue} share. Everything is little-endian.
 *
 * <pre>
 * struct virtq_desc  { le64 addr; le32 len; le16 flags; le16 next; }          16 bytes, table 16-aligned
 * struct virtq_avail { le16 flags; le16 idx; le16 ring[size]; le16 used_event; }   2-aligned
 * struct virtq_used  { le16 flags; le16 idx; struct { le32 id; le32 len; } ring[size]; le16 avail_event; } 4-aligned
 * </pre>
 *
 * Descriptors are read with unaligned layouts (an indirect table may sit anywhere) and only with
 * plain reads: their visibility comes from the acquire load of avail.idx. The indices, flags and
 * event fields use aligned layouts, which atomic access modes need.
 */
public final class SplitRingLayout {
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    static final ValueLayout.OfShort LE16 = ValueLayout.JAVA_SHORT.withOrder(LE);
    static final ValueLayout.OfInt LE32 = ValueLayout.JAVA_INT.withOrder(LE);

    /** {@code struct virtq_desc}, unaligned members. */
    static final StructLayout DESCRIPTOR = MemoryLayout.structLayout(
            ValueLayout.JAVA_LONG_UNALIGNED.withOrder(LE).withName("addr"),
            ValueLayout.JAVA_INT_UNALIGNED.withOrder(LE).withName("len"),
            ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LE).withName("flags"),
            ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LE).withName("next")).withName("virtq_desc");

    /** {@code struct virtq_used_elem}. */
    static final StructLayout USED_ELEM = MemoryLayout.structLayout(
            LE32.withName("id"), LE32.withName("len")).withName("virtq_used_elem");

    /** The {@code flags, idx} header both the avail and the used ring start with. */
    static final StructLayout RING_HEADER = MemoryLayout.structLayout(
            LE16.withName("flags"), LE16.withName("idx"));

    // Descriptor fields: coordinates (segment, byte offset of the table, descriptor index).
    static final VarHandle DESC_ADDR = DESCRIPTOR.arrayElementVarHandle(PathElement.groupElement("addr"));
    static final VarHandle DESC_LEN = DESCRIPTOR.arrayElementVarHandle(PathElement.groupElement("len"));
    static final VarHandle DESC_FLAGS = DESCRIPTOR.arrayElementVarHandle(PathElement.groupElement("flags"));
    static final VarHandle DESC_NEXT = DESCRIPTOR.arrayElementVarHandle(PathElement.groupElement("next"));

    // Used elements: coordinates (used ring segment, USED_RING_OFFSET, slot).
    static final VarHandle USED_ELEM_ID = USED_ELEM.arrayElementVarHandle(PathElement.groupElement("id"));
    static final VarHandle USED_ELEM_LEN = USED_ELEM.arrayElementVarHandle(PathElement.groupElement("len"));

    /** A le16 at a byte offset: coordinates (segment, offset). Aligned: supports acquire/release. */
    static final VarHandle U16 = LE16.varHandle();

    static final long FLAGS_OFFSET = RING_HEADER.byteOffset(PathElement.groupElement("flags"));
    static final long IDX_OFFSET = RING_HEADER.byteOffset(PathElement.groupElement("idx"));
    /** Offset of {@code ring[0]} in both the avail and the used ring. */
    static final long RING_OFFSET = RING_HEADER.byteSize();
    static final long AVAIL_ELEM_SIZE = LE16.byteSize();

    static final long DESC_SIZE = DESCRIPTOR.byteSize();

    /** Largest split queue size (2^15); a split queue's size is a power of two. */
    public static final int MAX_QUEUE_SIZE = 1 << 15;
    /** Alignment the spec requires of the descriptor table. */
    public static final int DESC_TABLE_ALIGNMENT = 16;
    /** Alignment the spec requires of the available ring. */
    public static final int AVAIL_RING_ALIGNMENT = 2;
    /** Alignment the spec requires of the used ring. */
    public static final int USED_RING_ALIGNMENT = 4;

    private SplitRingLayout() {
    }

    /** Bytes of the descriptor table of a queue of {@code size}: 16 per descriptor. */
    public static long descTableBytes(int size) {
        return DESC_SIZE * checkSize(size);
    }

    /**
     * Bytes of the available ring of a queue of {@code size}: {@code flags, idx, ring[size],
     * used_event}, {@code 6 + 2 * size} (the last two bytes are used only under EVENT_IDX, but a
     * driver reserves them always).
     */
    public static long availRingBytes(int size) {
        return usedEventOffset(checkSize(size)) + AVAIL_ELEM_SIZE;
    }

    /**
     * Bytes of the used ring of a queue of {@code size}: {@code flags, idx, ring[size] (8 bytes
     * each), avail_event}, {@code 6 + 8 * size}.
     */
    public static long usedRingBytes(int size) {
        return availEventOffset(checkSize(size)) + LE16.byteSize();
    }

    /**
     * Places a split queue of {@code size} at the first suitably aligned address from {@code
     * base}: descriptor table, then available ring, then used ring, each at its alignment.
     *
     * @throws IllegalArgumentException when {@code size} is not a power of two in [1, 32768] or
     *     {@code base} is negative
     */
    public static RingAddresses place(long base, int size) {
        if (base < 0) {
            throw new IllegalArgumentException("base address " + base + " is negative");
        }
        long desc = alignUp(base, DESC_TABLE_ALIGNMENT);
        long avail = alignUp(desc + descTableBytes(size), AVAIL_RING_ALIGNMENT);
        long used = alignUp(avail + availRingBytes(size), USED_RING_ALIGNMENT);
        return new RingAddresses(desc, avail, used, used + usedRingBytes(size));
    }

    static long alignUp(long address, long alignment) {
        return (address + alignment - 1) & -alignment;
    }

    private static int checkSize(int size) {
        if (size < 1 || size > MAX_QUEUE_SIZE || Integer.bitCount(size) != 1) {
            throw new IllegalArgumentException("split queue size " + size + " is not a power of two in [1, "
                    + MAX_QUEUE_SIZE + "]");
        }
        return size;
    }

    /** Offset of avail {@code ring[slot]}. */
    static long availRingOffset(int slot) {
        return RING_OFFSET + AVAIL_ELEM_SIZE * slot;
    }

    /** Offset of {@code used_event} (after the avail ring's {@code size} entries). */
    static long usedEventOffset(int size) {
        return RING_OFFSET + AVAIL_ELEM_SIZE * size;
    }

    /** Offset of {@code avail_event} (after the used ring's {@code size} elements). */
    static long availEventOffset(int size) {
        return RING_OFFSET + USED_ELEM.byteSize() * size;
    }

    /** Unsigned 16-bit value of a le16 plain read. */
    static int u16(MemorySegment segment, long offset) {
        return Short.toUnsignedInt((short) U16.get(segment, offset));
    }

    /**
     * The host segment of a ring area, checked for the host alignment that atomic access needs
     * (guest alignment was checked by {@link QueueGeometry#validate}).
     */
    static MemorySegment area(int queueIndex, GuestMemory memory, String field, long guestAddress, long bytes,
            long hostAlignment) {
        MemorySegment segment = memory.slice(guestAddress, bytes);
        if (segment.maxByteAlignment() < hostAlignment) {
            throw VirtqueueException.state(queueIndex, field, guestAddress,
                    "the host memory backing it is not " + hostAlignment + "-byte aligned (a heap segment, or an "
                            + "odd region base), so its indices cannot be accessed atomically");
        }
        return segment;
    }
}

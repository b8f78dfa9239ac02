package io.vhostffm.vring;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemoryLayout.PathElement;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

/**
 * The split virtqueue's memory layout (virtio 1.x section 2.7) as MemoryLayouts and VarHandles,
 * shared by {@link SplitDeviceQueue} and {@link SplitDriverQueue}. Everything is little-endian.
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
final class SplitRingLayout {
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

    private SplitRingLayout() {
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

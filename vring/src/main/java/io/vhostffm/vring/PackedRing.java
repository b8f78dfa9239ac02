package io.vhostffm.vring;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

/**
 * The packed virtqueue's memory layout (virtio 1.x section 2.8) and the arithmetic both sides
 * share: descriptor flags, wrap counters, event suppression, and the notification test.
 *
 * <p>A packed ring has three parts, each physically contiguous in guest memory: the descriptor
 * ring ({@code struct pvirtq_desc[size]}, 16-byte aligned), the driver event suppression
 * structure (written by the driver, read by the device; it governs used-buffer notifications)
 * and the device event suppression structure (written by the device, read by the driver; it
 * governs available-buffer notifications), each {@code struct pvirtq_event_suppress}, 4 bytes,
 * 4-byte aligned.
 *
 * <p>Ring positions: a side's position is a descriptor index in {@code [0, size)} plus its wrap
 * counter. Where positions must be compared (notification decisions) they are folded into one
 * number in {@code [0, 2 * size)}, the <em>lap position</em>: {@code index} while the wrap
 * counter is 1 (the first lap, the counter starts at 1) and {@code index + size} while it is 0.
 * Advancing a lap position modulo {@code 2 * size} is exactly advancing the index and flipping
 * the wrap counter at the ring end.
 */
public final class PackedRing {
    private PackedRing() {}

    /** Largest queue size a packed ring allows (2^15); it need not be a power of two. */
    public static final int MAX_QUEUE_SIZE = 1 << 15;
    /** Bytes per {@code struct pvirtq_desc}. */
    public static final int DESCRIPTOR_SIZE = 16;
    /** Alignment the spec requires of the descriptor ring. */
    public static final int DESCRIPTOR_RING_ALIGNMENT = 16;
    /** Bytes of a {@code struct pvirtq_event_suppress}. */
    public static final int EVENT_SUPPRESSION_SIZE = 4;
    /** Alignment the spec requires of each event suppression structure. */
    public static final int EVENT_SUPPRESSION_ALIGNMENT = 4;

    /** The buffer continues in the next descriptor of the ring. */
    public static final int VIRTQ_DESC_F_NEXT = 1;
    /** The buffer is device-writable (in a used descriptor: the device wrote into the buffer). */
    public static final int VIRTQ_DESC_F_WRITE = 2;
    /** The buffer holds a table of descriptors (VIRTIO_F_INDIRECT_DESC). */
    public static final int VIRTQ_DESC_F_INDIRECT = 4;
    /** Set by the driver to its wrap counter when it makes a descriptor available. */
    public static final int VIRTQ_DESC_F_AVAIL = 1 << 7;
    /** Set by the device to its wrap counter when it marks a descriptor used. */
    public static final int VIRTQ_DESC_F_USED = 1 << 15;

    /** Event suppression flags: notify on every event. */
    public static final int RING_EVENT_FLAGS_ENABLE = 0x0;
    /** Event suppression flags: never notify. */
    public static final int RING_EVENT_FLAGS_DISABLE = 0x1;
    /** Event suppression flags: notify when the descriptor at the event offset/wrap is reached (EVENT_IDX). */
    public static final int RING_EVENT_FLAGS_DESC = 0x2;
    /** Mask of {@code desc_event_flags} in the flags word; the other 14 bits are reserved. */
    public static final int RING_EVENT_FLAGS_MASK = 0x3;
    /** Bit 15 of {@code desc}: {@code desc_event_wrap}; bits 0-14 are {@code desc_event_off}. */
    public static final int EVENT_WRAP_BIT = 1 << 15;

    /** Bytes of the descriptor ring of a packed queue of {@code size}: 16 per descriptor. */
    public static long descriptorRingBytes(int size) {
        if (size < 1 || size > MAX_QUEUE_SIZE) {
            throw new IllegalArgumentException("packed queue size " + size + " is not in [1, " + MAX_QUEUE_SIZE + "]");
        }
        return (long) DESCRIPTOR_SIZE * size;
    }

    /**
     * Places a packed queue of {@code size} at the first suitably aligned address from {@code
     * base}: descriptor ring, then driver, then device event suppression structure.
     *
     * @throws IllegalArgumentException when {@code size} is not in [1, 32768] or {@code base} is
     *     negative
     */
    public static RingAddresses place(long base, int size) {
        if (base < 0) {
            throw new IllegalArgumentException("base address " + base + " is negative");
        }
        long ring = SplitRingLayout.alignUp(base, DESCRIPTOR_RING_ALIGNMENT);
        long driver = SplitRingLayout.alignUp(ring + descriptorRingBytes(size), EVENT_SUPPRESSION_ALIGNMENT);
        long device = driver + EVENT_SUPPRESSION_SIZE;
        return new RingAddresses(ring, driver, device, device + EVENT_SUPPRESSION_SIZE);
    }

    private static final ValueLayout.OfLong LE64 = ValueLayout.JAVA_LONG.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt LE32 = ValueLayout.JAVA_INT.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort LE16 = ValueLayout.JAVA_SHORT.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** {@code struct pvirtq_desc}: le64 addr, le32 len, le16 id, le16 flags. */
    public static final StructLayout PVIRTQ_DESC = MemoryLayout.structLayout(
            LE64.withName("addr"), LE32.withName("len"), LE16.withName("id"), LE16.withName("flags"))
            .withName("pvirtq_desc");

    /**
     * The same descriptor without alignment constraints, for indirect tables: the spec puts no
     * alignment requirement on them, and the device reads them with plain loads only.
     */
    static final StructLayout PVIRTQ_DESC_UNALIGNED = MemoryLayout.structLayout(
            LE64.withByteAlignment(1).withName("addr"), LE32.withByteAlignment(1).withName("len"),
            LE16.withByteAlignment(1).withName("id"), LE16.withByteAlignment(1).withName("flags"))
            .withName("pvirtq_desc");

    /** {@code struct pvirtq_event_suppress}: le16 desc (off:15, wrap:1), le16 flags (flags:2, reserved:14). */
    public static final StructLayout PVIRTQ_EVENT_SUPPRESS = MemoryLayout.structLayout(
            LE16.withName("desc"), LE16.withName("flags")).withName("pvirtq_event_suppress");

    // Ring descriptor accessors: coordinates (ring segment, 0L, descriptor index).
    static final VarHandle DESC_ADDR = PVIRTQ_DESC.arrayElementVarHandle(groupElement("addr"));
    static final VarHandle DESC_LEN = PVIRTQ_DESC.arrayElementVarHandle(groupElement("len"));
    static final VarHandle DESC_ID = PVIRTQ_DESC.arrayElementVarHandle(groupElement("id"));
    static final VarHandle DESC_FLAGS = PVIRTQ_DESC.arrayElementVarHandle(groupElement("flags"));

    // Indirect table accessors: coordinates (region segment, table offset in it, entry index).
    static final VarHandle INDIRECT_ADDR = PVIRTQ_DESC_UNALIGNED.arrayElementVarHandle(groupElement("addr"));
    static final VarHandle INDIRECT_LEN = PVIRTQ_DESC_UNALIGNED.arrayElementVarHandle(groupElement("len"));
    static final VarHandle INDIRECT_ID = PVIRTQ_DESC_UNALIGNED.arrayElementVarHandle(groupElement("id"));
    static final VarHandle INDIRECT_FLAGS = PVIRTQ_DESC_UNALIGNED.arrayElementVarHandle(groupElement("flags"));

    // Event suppression accessors: coordinates (4-byte structure segment, 0L).
    static final VarHandle EVENT_DESC = PVIRTQ_EVENT_SUPPRESS.varHandle(groupElement("desc"));
    static final VarHandle EVENT_FLAGS = PVIRTQ_EVENT_SUPPRESS.varHandle(groupElement("flags"));

    /** Checks a queue size against the packed ring's limits: 1 to 32768, any value. */
    public static void checkQueueSize(int size) {
        if (size < 1 || size > MAX_QUEUE_SIZE) {
            throw new IllegalArgumentException("packed queue size must be 1.." + MAX_QUEUE_SIZE + ": " + size);
        }
    }

    /**
     * The host segment of a ring part, resolved once at set-up: the guest range must lie in one
     * region and be aligned as the spec requires (in guest-physical terms, and in host terms,
     * because acquire/release access needs naturally aligned host addresses).
     *
     * @throws IllegalArgumentException naming the part, address and length otherwise
     */
    static MemorySegment resolvePart(GuestMemory memory, String queue, String part, long guestAddress,
                                     long length, int alignment) {
        if (guestAddress % alignment != 0) {
            throw new IllegalArgumentException(String.format(
                    "queue %s: %s at 0x%x is not %d-byte aligned", queue, part, guestAddress, alignment));
        }
        int region = memory.findRegion(guestAddress, length);
        if (region < 0) {
            throw new IllegalArgumentException(String.format("queue %s: %s [0x%x, +%d) %s", queue, part,
                    guestAddress, length, memory.describeMiss(guestAddress, length)));
        }
        GuestRegion r = memory.region(region);
        MemorySegment segment = r.segment().asSlice(guestAddress - r.guestAddress(), length);
        if (segment.address() % alignment != 0) {
            throw new IllegalArgumentException(String.format(
                    "queue %s: %s at guest 0x%x maps to host 0x%x, not %d-byte aligned", queue, part,
                    guestAddress, segment.address(), alignment));
        }
        return segment;
    }

    /** The avail/used flag bits a driver writes to make a descriptor available on lap {@code wrap}. */
    public static int availFlags(boolean wrap) {
        return wrap ? VIRTQ_DESC_F_AVAIL : VIRTQ_DESC_F_USED;
    }

    /** The avail/used flag bits a device writes to mark a descriptor used on lap {@code wrap}. */
    public static int usedFlags(boolean wrap) {
        return wrap ? VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED : 0;
    }

    /**
     * Whether descriptor flags say "available" to a device whose avail wrap counter is
     * {@code wrap}: AVAIL matches the counter and USED does not.
     */
    public static boolean isAvailable(int flags, boolean wrap) {
        boolean avail = (flags & VIRTQ_DESC_F_AVAIL) != 0;
        boolean used = (flags & VIRTQ_DESC_F_USED) != 0;
        return avail == wrap && used != wrap;
    }

    /**
     * Whether descriptor flags say "used" to a driver whose used wrap counter is {@code wrap}:
     * AVAIL and USED both match the counter.
     */
    public static boolean isUsed(int flags, boolean wrap) {
        boolean avail = (flags & VIRTQ_DESC_F_AVAIL) != 0;
        boolean used = (flags & VIRTQ_DESC_F_USED) != 0;
        return avail == wrap && used == wrap;
    }

    /** The lap position (see the class comment) of descriptor {@code index} on lap {@code wrap}. */
    public static int lapPosition(int index, boolean wrap, int size) {
        return wrap ? index : index + size;
    }

    /** The {@code desc} word of an event suppression structure: offset in bits 0-14, wrap in bit 15. */
    public static int eventOffWrap(int index, boolean wrap) {
        return index | (wrap ? EVENT_WRAP_BIT : 0);
    }

    /**
     * The notification test of EVENT_IDX for a packed ring: whether the side that moved its
     * position from {@code oldLap} to {@code newLap} (lap positions, the range {@code [old, new)}
     * just made available or used) passed the position the other side asked to hear about,
     * {@code eventOffWrap} (the {@code desc} word of the other side's event suppression
     * structure). This is the split ring's {@code vring_need_event} carried over modulo
     * {@code 2 * size}, the period of a packed position: it holds as long as a side moves less
     * than {@code 2 * size} positions between two decisions. A side that can move further (a
     * device that keeps taking while the driver refills) counts its moves and notifies without
     * asking this test once the count reaches the period. An offset at or beyond {@code size} is a guest bug; it
     * never equals a position inside a lap's range so it simply fires rarely or never.
     */
    public static boolean needsEvent(int eventOffWrap, int newLap, int oldLap, int size) {
        int offset = eventOffWrap & ~EVENT_WRAP_BIT;
        int eventLap = lapPosition(offset, (eventOffWrap & EVENT_WRAP_BIT) != 0, size);
        int period = 2 * size;
        return Math.floorMod(newLap - eventLap - 1, period) < Math.floorMod(newLap - oldLap, period);
    }

    /** Descriptor byte offset of ring index {@code index}, for messages. */
    static long descriptorAddress(long ringAddress, int index) {
        return ringAddress + (long) index * DESCRIPTOR_SIZE;
    }
}

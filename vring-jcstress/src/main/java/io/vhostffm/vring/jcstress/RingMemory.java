package io.vhostffm.vring.jcstress;

import io.vhostffm.vring.GuestMemory;
import io.vhostffm.vring.GuestRegion;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;

/**
 * The guest memory of one jcstress state: a small arena-backed region holding one ring of four
 * entries and a few 16-byte payload buffers. jcstress creates many states per run; every one has
 * its own memory, so no state sees another's ring.
 *
 * <p>Fixed guest layout (guest address 0 is the region's start):
 * <ul>
 *   <li>split: descriptor table at {@link #SPLIT_DESC} (4 x 16 bytes), avail ring at
 *       {@link #SPLIT_AVAIL} (flags, idx, ring[4], used_event), used ring at {@link #SPLIT_USED}
 *       (flags, idx, ring[4] of 8 bytes, avail_event);</li>
 *   <li>packed: descriptor ring at {@link #PACKED_DESC} (4 x 16 bytes), driver event suppression
 *       at {@link #PACKED_DRIVER_EVENT}, device event suppression at {@link #PACKED_DEVICE_EVENT};</li>
 *   <li>payload buffers at {@link #buffer(int)}.</li>
 * </ul>
 */
public final class RingMemory {
    /** Queue size of every ring in these tests: small, so states are cheap and slots are reused. */
    public static final int QUEUE_SIZE = 4;
    public static final long SPLIT_DESC = 0x000;
    public static final long SPLIT_AVAIL = 0x040;
    public static final long SPLIT_USED = 0x080;
    public static final long PACKED_DESC = 0x000;
    public static final long PACKED_DRIVER_EVENT = 0x040;
    public static final long PACKED_DEVICE_EVENT = 0x044;
    private static final long BUFFERS = 0x100;
    private static final long BUFFER_SIZE = 16;
    private static final long REGION_SIZE = 0x200;

    /** The host segment behind guest address 0. */
    public final MemorySegment segment;
    /** The guest memory over {@link #segment}. */
    public final GuestMemory memory;

    public RingMemory() {
        // An automatic arena: jcstress drops states by the thousand; the GC frees their memory.
        segment = Arena.ofAuto().allocate(REGION_SIZE, 64);
        memory = GuestMemory.of(List.of(new GuestRegion(0, segment)));
    }

    /** Guest address of payload buffer {@code i} (16 bytes each, 8-aligned). */
    public static long buffer(int i) {
        return BUFFERS + i * BUFFER_SIZE;
    }

    /** Plain store of a payload word at a guest address, as a guest writes its buffers. */
    public void writePayload(long guestAddress, long value) {
        segment.set(ValueLayout.JAVA_LONG, guestAddress, value);
    }

    /** Plain load of a payload word at a guest address. */
    public long readPayload(long guestAddress) {
        return segment.get(ValueLayout.JAVA_LONG, guestAddress);
    }
}

package io.vhostffm.vring;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * Arena-backed guest memory for packed-ring tests: a low region holding the ring parts, indirect
 * tables and payload buffers, a hole, and a high region for more payload.
 */
final class PackedFixture implements AutoCloseable {
    static final long LOW_BASE = 0x0;
    static final long LOW_SIZE = 4L << 20;
    static final long HIGH_BASE = 0x4000_0000L;
    static final long HIGH_SIZE = 1L << 20;
    /** A guest address in no region. */
    static final long HOLE = 0x2000_0000L;

    static final long RING = 0x1000;
    static final long DRIVER_AREA = 0x800;
    static final long DEVICE_AREA = 0x900;
    /** Indirect tables: 4 KiB each from here. */
    static final long TABLES = 0x10_0000;
    /** Payload buffers from here. */
    static final long PAYLOAD = 0x20_0000;

    final Arena arena = Arena.ofShared();
    final MemorySegment low = arena.allocate(LOW_SIZE, 4096);
    final MemorySegment high = arena.allocate(HIGH_SIZE, 4096);
    final GuestMemory memory = GuestMemory.of(List.of(new GuestRegion(LOW_BASE, low), new GuestRegion(HIGH_BASE, high)));
    final int size;
    final QueueState state;
    final PackedDeviceQueue device;
    final PackedDriverQueue driver;
    private final int[] usedId = new int[1];
    private final int[] usedLength = new int[1];
    /** Written length of the buffer {@link #poll()} returned last. */
    int lastLength;

    PackedFixture(int size, boolean eventIdx) {
        this(size, eventIdx, 0, true);
    }

    /** Driver and device both at ring index {@code start} on lap {@code wrap}, nothing in flight. */
    PackedFixture(int size, boolean eventIdx, int start, boolean wrap) {
        this.size = size;
        state = QueueState.of(QueueGeometry.packed(size, RING, DRIVER_AREA, DEVICE_AREA, eventIdx),
                QueuePosition.packed(start, wrap, start, wrap, 0));
        driver = new PackedDriverQueue(7, memory, size, RING, DRIVER_AREA, DEVICE_AREA, eventIdx, start, wrap);
        device = new PackedDeviceQueue(7, memory, state, RestoreMode.CLASSIC);
    }

    /** The next used buffer's id (its written length in {@link #lastLength}), or -1. */
    int poll() {
        if (driver.collectUsed(usedId, usedLength, 1) == 0) {
            return -1;
        }
        lastLength = usedLength[0];
        return usedId[0];
    }

    /** Frees the guest memory; the queues must not be used afterwards. */
    @Override
    public void close() {
        arena.close();
    }

    /** Host view of a guest range. */
    MemorySegment at(long guestAddress, long length) {
        return memory.slice(guestAddress, length);
    }

    /** Raw flags of ring descriptor {@code index}. */
    int ringFlags(int index) {
        return Short.toUnsignedInt(at(RING + 16L * index + 14, 2).get(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, 0));
    }
}

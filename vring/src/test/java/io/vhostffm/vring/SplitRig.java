package io.vhostffm.vring;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.List;

/**
 * Test guest: arena-backed guest memory with two regions and a hole between them, a split ring
 * laid out in the low region, buffers in the high one.
 *
 * <pre>
 * [0x0, RING_REGION_SIZE)             rings (descriptor table at 0x1000, avail, used page-aligned after it)
 * hole
 * [BUFFERS, BUFFERS + BUFFER_SIZE)    buffers and indirect tables
 * </pre>
 */
final class SplitRig implements AutoCloseable {
    static final long BUFFERS = 0x100_0000;
    static final long HOLE = 0x80_0000;
    static final ValueLayout.OfLong LE64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfInt LE32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfShort LE16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    final Arena arena = Arena.ofShared();
    final int queueIndex;
    final int size;
    final boolean eventIdx;
    final long ringRegionSize;
    final long bufferRegionSize;
    final GuestMemory memory;
    final long desc;
    final long avail;
    final long used;

    SplitRig(int queueIndex, int size, boolean eventIdx) {
        this(queueIndex, size, eventIdx, 1 << 20);
    }

    SplitRig(int queueIndex, int size, boolean eventIdx, long bufferRegionSize) {
        this.queueIndex = queueIndex;
        this.size = size;
        this.eventIdx = eventIdx;
        this.desc = 0x1000;
        this.avail = align(desc + 16L * size, 4096);
        this.used = align(avail + 6 + 2L * size, 4096);
        this.ringRegionSize = align(used + 6 + 8L * size, 4096);
        this.bufferRegionSize = bufferRegionSize;
        this.memory = GuestMemory.of(List.of(
                new GuestRegion(0, arena.allocate(ringRegionSize, 4096)),
                new GuestRegion(BUFFERS, arena.allocate(bufferRegionSize, 4096))));
    }

    static long align(long value, long alignment) {
        return (value + alignment - 1) & -alignment;
    }

    SplitDriverQueue driver(int startIndex) {
        return new SplitDriverQueue(queueIndex, memory, size, desc, avail, used, eventIdx, startIndex);
    }

    SplitDeviceQueue device(SplitDriverQueue driver) {
        return new SplitDeviceQueue(queueIndex, memory, driver.initialDeviceState(), RestoreMode.CLASSIC);
    }

    QueueState state() {
        return QueueState.fresh(QueueGeometry.split(size, desc, avail, used, eventIdx));
    }

    MemorySegment slice(long guestAddress, long length) {
        return memory.slice(guestAddress, length);
    }

    // ---- raw ring writes, for malformed input the driver would never produce ----

    void writeDescriptor(long tableAddress, int index, long address, int length, int flags, int next) {
        MemorySegment d = memory.slice(tableAddress + 16L * index, 16);
        d.set(LE64, 0, address);
        d.set(LE32, 8, length);
        d.set(LE16, 12, (short) flags);
        d.set(LE16, 14, (short) next);
    }

    /** Puts {@code head} in the avail ring at the current avail.idx and bumps avail.idx. */
    void pushAvail(int head) {
        int idx = availIdx();
        memory.slice(avail + 4 + 2L * (idx & (size - 1)), 2).set(LE16, 0, (short) head);
        setAvailIdx(idx + 1);
    }

    int availIdx() {
        return Short.toUnsignedInt(memory.slice(avail + 2, 2).get(LE16, 0));
    }

    void setAvailIdx(int idx) {
        memory.slice(avail + 2, 2).set(LE16, 0, (short) idx);
    }

    int usedIdx() {
        return Short.toUnsignedInt(memory.slice(used + 2, 2).get(LE16, 0));
    }

    int usedFlags() {
        return Short.toUnsignedInt(memory.slice(used, 2).get(LE16, 0));
    }

    int availFlags() {
        return Short.toUnsignedInt(memory.slice(avail, 2).get(LE16, 0));
    }

    int usedEvent() {
        return Short.toUnsignedInt(memory.slice(avail + 4 + 2L * size, 2).get(LE16, 0));
    }

    int availEvent() {
        return Short.toUnsignedInt(memory.slice(used + 4 + 8L * size, 2).get(LE16, 0));
    }

    @Override
    public void close() {
        arena.close();
    }
}

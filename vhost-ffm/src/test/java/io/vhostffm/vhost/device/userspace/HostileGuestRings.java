package io.vhostffm.vhost.device.userspace;

import io.vhostffm.vring.GuestMemory;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

/**
 * The driver side of {@link HostileDatapathRig}'s four split rings, breaking their rules on
 * purpose: any descriptor field, any head offered, the available index moved by any amount, a
 * descriptor rewritten whenever, the available ring's flags and {@code used_event} set to
 * anything. Descriptor indices are taken modulo the queue size. (testkit's {@code HostileGuest}
 * does the same over a {@code FakeGuest}, which this module's tests cannot use.)
 *
 * <p>Ordering: descriptors and ring entries first, then the available index after a release
 * fence, as a driver must (the device reads the index with acquire); the used index is read
 * with an acquire fence after it (the device's elements before its index). The device runs on
 * the same thread here, but the fences keep the driver honest.
 */
final class HostileGuestRings {
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final GuestMemory memory;
    private final int[] sizes = new int[4];

    HostileGuestRings(GuestMemory memory) {
        this.memory = memory;
    }

    /** New sizes for pair 0's queues (pair 1's are {@link HostileDatapathRig#MAX_SIZE}); the rings were cleared. */
    void reset(int rxSize, int txSize) {
        sizes[0] = rxSize;
        sizes[1] = txSize;
        sizes[2] = HostileDatapathRig.MAX_SIZE;
        sizes[3] = HostileDatapathRig.MAX_SIZE;
    }

    int size(int queue) {
        return sizes[queue];
    }

    private MemorySegment descriptor(int queue, int index) {
        return memory.slice(HostileDatapathRig.descAddress(queue) + 16L * Math.floorMod(index, sizes[queue]), 16);
    }

    /** Writes descriptor {@code index} of {@code queue}: any address, length, flags and next. */
    void writeDescriptor(int queue, int index, long address, int length, int flags, int next) {
        writeAt(HostileDatapathRig.descAddress(queue) + 16L * Math.floorMod(index, sizes[queue]), address, length,
                flags, next);
    }

    /** Writes a descriptor at guest address {@code at} (a table entry or an indirect table's). */
    void writeAt(long at, long address, int length, int flags, int next) {
        MemorySegment d = memory.slice(at, 16);
        d.set(U64, 0, address);
        d.set(U32, 8, length);
        d.set(U16, 12, (short) flags);
        d.set(U16, 14, (short) next);
    }

    long address(int queue, int index) {
        return descriptor(queue, index).get(U64, 0);
    }

    int length(int queue, int index) {
        return descriptor(queue, index).get(U32, 8);
    }

    int flags(int queue, int index) {
        return descriptor(queue, index).get(U16, 12) & 0xffff;
    }

    int next(int queue, int index) {
        return descriptor(queue, index).get(U16, 14) & 0xffff;
    }

    /** Overwrites only the address field, whether or not the device took the descriptor already. */
    void rewriteAddress(int queue, int index, long address) {
        descriptor(queue, index).set(U64, 0, address);
    }

    private MemorySegment avail(int queue) {
        return memory.slice(HostileDatapathRig.availAddress(queue), 6 + 2L * HostileDatapathRig.MAX_SIZE);
    }

    int availIndex(int queue) {
        return avail(queue).get(U16, 2) & 0xffff;
    }

    /** Makes {@code heads} available after the current index, whatever they are, then moves the index. */
    void offer(int queue, int... heads) {
        int idx = availIndex(queue);
        for (int head : heads) {
            avail(queue).set(U16, 4 + 2L * (idx % sizes[queue]), (short) head);
            idx = (idx + 1) & 0xffff;
        }
        publishAvailIndex(queue, idx);
    }

    /** Moves the available index by {@code by} (16-bit wraparound) without writing entries. */
    void moveAvailIndex(int queue, int by) {
        publishAvailIndex(queue, (availIndex(queue) + by) & 0xffff);
    }

    private void publishAvailIndex(int queue, int idx) {
        VarHandle.releaseFence(); // descriptors and entries before the index the device acquires
        avail(queue).set(U16, 2, (short) idx);
    }

    /** {@code avail->flags} and {@code used_event} (after the ring's entries), any values. */
    void writeAvailFlags(int queue, int flags, int usedEvent) {
        avail(queue).set(U16, 0, (short) flags);
        avail(queue).set(U16, 4 + 2L * sizes[queue], (short) usedEvent);
    }

    private MemorySegment used(int queue) {
        return memory.slice(HostileDatapathRig.usedAddress(queue), 6 + 8L * HostileDatapathRig.MAX_SIZE);
    }

    /** {@code used->idx} as the device last published it. */
    int usedIndex(int queue) {
        short idx = used(queue).get(U16, 2);
        VarHandle.acquireFence(); // the device's used elements before its index
        return idx & 0xffff;
    }

    /** The length of used element {@code position}. */
    int usedLength(int queue, int position) {
        return used(queue).get(U32, 4 + 8L * (position % sizes[queue]) + 4);
    }
}

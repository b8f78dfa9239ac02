package io.vhostffm.vring;

import static io.vhostffm.vring.SplitRingLayout.DESC_ADDR;
import static io.vhostffm.vring.SplitRingLayout.DESC_FLAGS;
import static io.vhostffm.vring.SplitRingLayout.DESC_LEN;
import static io.vhostffm.vring.SplitRingLayout.DESC_NEXT;
import static io.vhostffm.vring.SplitRingLayout.DESC_SIZE;
import static io.vhostffm.vring.SplitRingLayout.FLAGS_OFFSET;
import static io.vhostffm.vring.SplitRingLayout.IDX_OFFSET;
import static io.vhostffm.vring.SplitRingLayout.RING_OFFSET;
import static io.vhostffm.vring.SplitRingLayout.U16;
import static io.vhostffm.vring.SplitRingLayout.USED_ELEM_ID;
import static io.vhostffm.vring.SplitRingLayout.USED_ELEM_LEN;
import static io.vhostffm.vring.SplitRingLayout.u16;
import static io.vhostffm.vring.VirtqFlags.VIRTQ_AVAIL_F_NO_INTERRUPT;
import static io.vhostffm.vring.VirtqFlags.VIRTQ_DESC_F_INDIRECT;
import static io.vhostffm.vring.VirtqFlags.VIRTQ_DESC_F_NEXT;
import static io.vhostffm.vring.VirtqFlags.VIRTQ_DESC_F_WRITE;
import static io.vhostffm.vring.VirtqFlags.VIRTQ_USED_F_NO_NOTIFY;
import static io.vhostffm.vring.VirtqueueException.NONE;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;
import java.util.Objects;

/**
 * The driver (guest) side of a split virtqueue, for test rigs: it lays out the rings in guest
 * memory, makes chains available (direct or through an indirect table), decides about kicks and
 * collects used elements, as a guest kernel's virtio_ring does.
 *
 * <p>Free descriptors form a list through their {@code next} fields, as in Linux: a chain takes
 * descriptors off its head in list order (so the chain's own {@code next} links are already in
 * place) and gives them back as a whole when the device returns the chain. Adding and collecting
 * allocate nothing.
 */
public final class SplitDriverQueue implements DriverQueue {
    private final int queueIndex;
    private final GuestMemory memory;
    private final int size;
    private final int mask;
    private final boolean eventIdx;
    private final long descTableAddress;
    private final long availRingAddress;
    private final long usedRingAddress;
    private final MemorySegment descTable;
    private final MemorySegment availRing;
    private final MemorySegment usedRing;
    private final long usedEventOffset;
    private final long availEventOffset;
    /** Per head in flight: descriptors its chain holds in the table (0 = not in flight). */
    private final int[] descriptorsPerHead;

    /** The index the rings started at when this object created them; -1 when restored. */
    private int startIndex = -1;
    private int availIdx;
    private int lastUsedIdx;
    private int freeHead;
    private int freeCount;
    private int addedSinceKickCheck;
    private boolean usedNotificationsEnabled = true;

    /**
     * A fresh queue: writes the rings' initial contents into guest memory (all descriptors free,
     * flags 0, both indices and both event indices {@code startIndex}).
     *
     * @param startIndex the 16-bit index both rings start at; 0 as a real driver does, near 65535
     *                   to test wraparound (the device must then restore with
     *                   {@code lastAvailIdx = startIndex})
     * @throws VirtqueueException ({@link VirtqueueException.Rule#INVALID_STATE}) naming the bad
     *                            size or address
     */
    public SplitDriverQueue(int queueIndex, GuestMemory memory, int size, long descTableAddress,
            long availRingAddress, long usedRingAddress, boolean eventIdx, int startIndex) {
        this(queueIndex, memory, QueueGeometry.split(size, descTableAddress, availRingAddress, usedRingAddress, eventIdx));
        if (startIndex < 0 || startIndex > 0xffff) {
            throw new IllegalArgumentException("start index must be in [0, 65535]: " + startIndex);
        }
        // Plain stores of the initial contents: published by the release store of avail.idx below
        // (a device is not running yet anyway).
        for (int i = 0; i < size; i++) {
            DESC_ADDR.set(descTable, 0L, (long) i, 0L);
            DESC_LEN.set(descTable, 0L, (long) i, 0);
            DESC_FLAGS.set(descTable, 0L, (long) i, (short) 0);
            DESC_NEXT.set(descTable, 0L, (long) i, (short) ((i + 1) & mask));
        }
        this.startIndex = startIndex;
        availIdx = startIndex;
        lastUsedIdx = startIndex;
        freeHead = 0;
        freeCount = size;
        U16.set(availRing, FLAGS_OFFSET, (short) 0);
        U16.set(usedRing, FLAGS_OFFSET, (short) 0);
        U16.set(usedRing, IDX_OFFSET, (short) startIndex);
        if (eventIdx) {
            U16.set(availRing, usedEventOffset, (short) startIndex);
            U16.set(usedRing, availEventOffset, (short) startIndex);
        }
        // Release: publishes the initialised rings together with our index.
        U16.setRelease(availRing, IDX_OFFSET, (short) startIndex);
    }

    /**
     * A driver carried across a migration: takes over rings that already hold its chains, with
     * the private state it saved.
     *
     * @throws IllegalArgumentException naming the field when the state is inconsistent
     */
    public SplitDriverQueue(int queueIndex, GuestMemory memory, DriverState state) {
        this(queueIndex, memory, QueueGeometry.split(state.size(), state.descTableAddress(), state.driverAreaAddress(),
                state.deviceAreaAddress(), state.eventIdx()));
        restoreState(state);
    }

    private SplitDriverQueue(int queueIndex, GuestMemory memory, QueueGeometry geometry) {
        this.queueIndex = queueIndex;
        this.memory = Objects.requireNonNull(memory, "memory");
        geometry.validate(queueIndex, memory);
        this.size = geometry.size();
        this.mask = size - 1;
        this.eventIdx = geometry.eventIdx();
        this.descTableAddress = geometry.descTableAddress();
        this.availRingAddress = geometry.driverAreaAddress();
        this.usedRingAddress = geometry.deviceAreaAddress();
        this.descTable = SplitRingLayout.area(queueIndex, memory, "descTableAddress", descTableAddress,
                geometry.descTableBytes(), 1);
        this.availRing = SplitRingLayout.area(queueIndex, memory, "driverAreaAddress", availRingAddress,
                geometry.driverAreaBytes(), 2);
        this.usedRing = SplitRingLayout.area(queueIndex, memory, "deviceAreaAddress", usedRingAddress,
                geometry.deviceAreaBytes(), 4);
        this.usedEventOffset = SplitRingLayout.usedEventOffset(size);
        this.availEventOffset = SplitRingLayout.availEventOffset(size);
        this.descriptorsPerHead = new int[size];
    }

    @Override
    public int queueIndex() {
        return queueIndex;
    }

    @Override
    public int size() {
        return size;
    }

    @Override
    public boolean isPacked() {
        return false;
    }

    @Override
    public int freeDescriptors() {
        return freeCount;
    }

    /**
     * The state of a device that has taken nothing from this ring yet (last_avail_idx and used
     * idx at the start index), whatever the driver added since.
     *
     * @throws IllegalStateException for a driver restored from a {@link DriverState}: only the
     *                               device knows how far it got
     */
    public QueueState initialDeviceState() {
        if (startIndex < 0) {
            throw new IllegalStateException("virtqueue " + queueIndex
                    + ": a restored driver does not know the device's start; restore the device's own state");
        }
        return QueueState.of(QueueGeometry.split(size, descTableAddress, availRingAddress, usedRingAddress, eventIdx),
                QueuePosition.split(startIndex, startIndex, 0));
    }

    // ---------------------------------------------------------------- adding

    @Override
    public int add(long[] addresses, int[] lengths, int readableCount, int writableCount) {
        int count = checkBuffers(addresses, lengths, readableCount, writableCount);
        if (count > freeCount) {
            return -1;
        }
        int head = freeHead;
        int index = head;
        for (int k = 0; k < count; k++) {
            int flags = (k >= readableCount ? VIRTQ_DESC_F_WRITE : 0) | (k < count - 1 ? VIRTQ_DESC_F_NEXT : 0);
            // Plain stores: made visible by the release store of avail.idx in publishAvailable.
            DESC_ADDR.set(descTable, 0L, (long) index, addresses[k]);
            DESC_LEN.set(descTable, 0L, (long) index, lengths[k]);
            DESC_FLAGS.set(descTable, 0L, (long) index, (short) flags);
            // The next field already links to the next free descriptor: the chain follows the list.
            // Plain read: the descriptor table is ours; the device only reads it.
            int next = Short.toUnsignedInt((short) DESC_NEXT.get(descTable, 0L, (long) index));
            if (k == count - 1) {
                freeHead = next;
            } else {
                index = next;
            }
        }
        freeCount -= count;
        descriptorsPerHead[head] = count;
        publishAvailable(head);
        return head;
    }

    @Override
    public int addIndirect(long tableAddress, long[] addresses, int[] lengths, int readableCount, int writableCount) {
        int count = checkBuffers(addresses, lengths, readableCount, writableCount);
        if (freeCount < 1) {
            return -1;
        }
        long tableBytes = DESC_SIZE * count;
        int regionIndex = memory.findRegion(tableAddress, tableBytes);
        if (regionIndex < 0) {
            throw new GuestMemoryException(tableAddress, tableBytes, memory.describeMiss(tableAddress, tableBytes));
        }
        GuestRegion region = memory.region(regionIndex);
        MemorySegment table = region.segment();
        long base = tableAddress - region.guestAddress();
        for (int k = 0; k < count; k++) {
            int flags = (k >= readableCount ? VIRTQ_DESC_F_WRITE : 0) | (k < count - 1 ? VIRTQ_DESC_F_NEXT : 0);
            // Plain stores: made visible by the release store of avail.idx in publishAvailable.
            DESC_ADDR.set(table, base, (long) k, addresses[k]);
            DESC_LEN.set(table, base, (long) k, lengths[k]);
            DESC_FLAGS.set(table, base, (long) k, (short) flags);
            DESC_NEXT.set(table, base, (long) k, (short) (k < count - 1 ? k + 1 : 0));
        }
        int head = freeHead;
        // Plain read and stores: our descriptor table, published by the release in publishAvailable.
        freeHead = Short.toUnsignedInt((short) DESC_NEXT.get(descTable, 0L, (long) head));
        freeCount--;
        DESC_ADDR.set(descTable, 0L, (long) head, tableAddress);
        DESC_LEN.set(descTable, 0L, (long) head, (int) tableBytes);
        DESC_FLAGS.set(descTable, 0L, (long) head, (short) VIRTQ_DESC_F_INDIRECT);
        descriptorsPerHead[head] = 1;
        publishAvailable(head);
        return head;
    }

    private int checkBuffers(long[] addresses, int[] lengths, int readableCount, int writableCount) {
        int count = readableCount + writableCount;
        if (readableCount < 0 || writableCount < 0 || count < 1 || count > size) {
            throw new IllegalArgumentException("a chain needs 1 to " + size + " buffers: " + readableCount
                    + " readable + " + writableCount + " writable");
        }
        if (addresses.length < count || lengths.length < count) {
            throw new IllegalArgumentException(count + " buffers but " + addresses.length + " addresses and "
                    + lengths.length + " lengths");
        }
        return count;
    }

    private void publishAvailable(int head) {
        // Plain store of the ring entry: made visible by the release store below.
        U16.set(availRing, SplitRingLayout.availRingOffset(availIdx & mask), (short) head);
        availIdx = (availIdx + 1) & 0xffff;
        addedSinceKickCheck++;
        // Release: our index. Descriptors, indirect table and ring entry written above must be
        // visible to the device before the avail.idx that covers them; pairs with the device's
        // acquire load of avail.idx.
        U16.setRelease(availRing, IDX_OFFSET, (short) availIdx);
    }

    @Override
    public boolean needsKick() {
        // Full fence: our avail.idx store must be visible before we read the device's
        // avail_event or used.flags (a store followed by a load, which release/acquire do not
        // order); otherwise device and driver can each miss the other's update.
        VarHandle.fullFence();
        int added = addedSinceKickCheck;
        addedSinceKickCheck = 0;
        if (added == 0) {
            return false;
        }
        if (added >= 0x10000) {
            return true; // the 16-bit window cannot tell any more; a spare kick is harmless
        }
        if (!eventIdx) {
            // Plain read after the fence: the device's used.flags.
            return (u16(usedRing, FLAGS_OFFSET) & VIRTQ_USED_F_NO_NOTIFY) == 0;
        }
        // Plain read after the fence: the device's avail_event.
        int availEvent = u16(usedRing, availEventOffset);
        return VirtqFlags.needEvent(availEvent, availIdx, (availIdx - added) & 0xffff);
    }

    // ---------------------------------------------------------------- collecting

    @Override
    public int collectUsed(int[] ids, int[] writtenLengths, int max) {
        if (max < 0 || max > ids.length || max > writtenLengths.length) {
            throw new IllegalArgumentException("max " + max + " for arrays of " + ids.length + " and "
                    + writtenLengths.length);
        }
        // Acquire: the device's index. Pairs with the device's release store of used.idx, so
        // the used elements before it are visible to the plain reads below.
        int deviceUsedIdx = Short.toUnsignedInt((short) U16.getAcquire(usedRing, IDX_OFFSET));
        if (((deviceUsedIdx - lastUsedIdx) & 0xffff) > size) {
            throw VirtqueueException.indexJump(queueIndex, "used.idx", deviceUsedIdx, lastUsedIdx, size);
        }
        int n = 0;
        while (n < max && lastUsedIdx != deviceUsedIdx) {
            long slot = lastUsedIdx & mask;
            // Plain reads: this element lies before the used.idx we acquired above.
            int id = (int) USED_ELEM_ID.get(usedRing, RING_OFFSET, slot);
            int length = (int) USED_ELEM_LEN.get(usedRing, RING_OFFSET, slot);
            if (id < 0 || id >= size || descriptorsPerHead[id] == 0) {
                throw VirtqueueException.chain(VirtqueueException.Rule.USED_ID_INVALID, queueIndex, id, NONE, NONE,
                        0, Integer.toUnsignedLong(length), "used ring slot " + slot + " of used.idx " + deviceUsedIdx);
            }
            freeChain(id);
            ids[n] = id;
            writtenLengths[n] = length;
            n++;
            lastUsedIdx = (lastUsedIdx + 1) & 0xffff;
        }
        if (n > 0 && eventIdx && usedNotificationsEnabled) {
            // Plain store of our used_event: a hint; enableUsedNotifications() fences and
            // re-checks before the driver waits.
            U16.set(availRing, usedEventOffset, (short) lastUsedIdx);
        }
        return n;
    }

    /** Returns the chain at {@code head} to the free list: its tail now links to the old free head. */
    private void freeChain(int head) {
        int count = descriptorsPerHead[head];
        descriptorsPerHead[head] = 0;
        int tail = head;
        // Plain reads and store: the descriptor table is ours; the device is done with this chain.
        for (int k = 1; k < count; k++) {
            tail = Short.toUnsignedInt((short) DESC_NEXT.get(descTable, 0L, (long) tail));
        }
        DESC_NEXT.set(descTable, 0L, (long) tail, (short) freeHead);
        freeHead = head;
        freeCount += count;
    }

    @Override
    public void disableUsedNotifications() {
        usedNotificationsEnabled = false;
        if (eventIdx) {
            // Plain store: used_event just behind what we consumed, the furthest the device can
            // go before it notifies (event idx has no off switch; it is a hint anyway).
            U16.set(availRing, usedEventOffset, (short) (lastUsedIdx - 1));
        } else {
            // Plain store of our flags: a hint.
            U16.set(availRing, FLAGS_OFFSET, (short) VIRTQ_AVAIL_F_NO_INTERRUPT);
        }
    }

    @Override
    public boolean enableUsedNotifications() {
        usedNotificationsEnabled = true;
        // Plain store of our used_event or flags; the fence below orders it before the re-check.
        if (eventIdx) {
            U16.set(availRing, usedEventOffset, (short) lastUsedIdx);
        } else {
            U16.set(availRing, FLAGS_OFFSET, (short) 0);
        }
        // Full fence: the store above must be visible before we read used.idx again; otherwise
        // the device could publish, read our stale flag or event, skip the notification, and we
        // would wait with used elements pending.
        VarHandle.fullFence();
        // Acquire: the device's index.
        return Short.toUnsignedInt((short) U16.getAcquire(usedRing, IDX_OFFSET)) != lastUsedIdx;
    }

    // ---------------------------------------------------------------- state

    @Override
    public DriverState saveState() {
        return new DriverState(size, descTableAddress, availRingAddress, usedRingAddress, eventIdx, false,
                availIdx, false, lastUsedIdx, false, freeHead, freeCount, addedSinceKickCheck,
                usedNotificationsEnabled, descriptorsPerHead);
    }

    @Override
    public void restoreState(DriverState state) {
        requireSame("packed", state.packed() ? 1 : 0, 0);
        requireSame("size", state.size(), size);
        requireSame("descTableAddress", state.descTableAddress(), descTableAddress);
        requireSame("driverAreaAddress", state.driverAreaAddress(), availRingAddress);
        requireSame("deviceAreaAddress", state.deviceAreaAddress(), usedRingAddress);
        requireSame("eventIdx", state.eventIdx() ? 1 : 0, eventIdx ? 1 : 0);
        requireRange("availIdx", state.availIdx(), 0, 0xffff);
        requireRange("lastUsedIdx", state.lastUsedIdx(), 0, 0xffff);
        requireRange("freeHead", state.freeHead(), 0, size - 1);
        requireRange("freeCount", state.freeCount(), 0, size);
        requireRange("addedSinceKickCheck", state.addedSinceKickCheck(), 0, Integer.MAX_VALUE);
        int[] perHead = state.descriptorsPerId();
        requireSame("descriptorsPerId.length", perHead.length, size);
        long inFlight = 0;
        for (int i = 0; i < size; i++) {
            requireRange("descriptorsPerId[" + i + "]", perHead[i], 0, size);
            inFlight += perHead[i];
        }
        requireSame("freeCount + descriptors in flight", state.freeCount() + inFlight, size);
        availIdx = state.availIdx();
        lastUsedIdx = state.lastUsedIdx();
        freeHead = state.freeHead();
        freeCount = state.freeCount();
        addedSinceKickCheck = state.addedSinceKickCheck();
        usedNotificationsEnabled = state.usedNotificationsEnabled();
        System.arraycopy(perHead, 0, descriptorsPerHead, 0, size);
    }

    private void requireSame(String field, long value, long expected) {
        if (value != expected) {
            throw new IllegalArgumentException("virtqueue " + queueIndex + ": driver state " + field + " = " + value
                    + ", this queue has " + expected);
        }
    }

    private void requireRange(String field, long value, long min, long max) {
        if (value < min || value > max) {
            throw new IllegalArgumentException("virtqueue " + queueIndex + ": driver state " + field + " = " + value
                    + " not in [" + min + ", " + max + "]");
        }
    }

    @Override
    public String toString() {
        return "SplitDriverQueue[" + queueIndex + ", size " + size + ", avail_idx " + availIdx + ", last_used_idx "
                + lastUsedIdx + ", free " + freeCount + "]";
    }
}

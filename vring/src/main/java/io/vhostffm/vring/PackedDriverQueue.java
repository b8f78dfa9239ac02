package io.vhostffm.vring;

import static io.vhostffm.vring.PackedRing.DESC_ADDR;
import static io.vhostffm.vring.PackedRing.DESC_FLAGS;
import static io.vhostffm.vring.PackedRing.DESC_ID;
import static io.vhostffm.vring.PackedRing.DESC_LEN;
import static io.vhostffm.vring.PackedRing.EVENT_DESC;
import static io.vhostffm.vring.PackedRing.EVENT_FLAGS;
import static io.vhostffm.vring.PackedRing.INDIRECT_ADDR;
import static io.vhostffm.vring.PackedRing.INDIRECT_FLAGS;
import static io.vhostffm.vring.PackedRing.INDIRECT_ID;
import static io.vhostffm.vring.PackedRing.INDIRECT_LEN;
import static io.vhostffm.vring.PackedRing.RING_EVENT_FLAGS_DESC;
import static io.vhostffm.vring.PackedRing.RING_EVENT_FLAGS_DISABLE;
import static io.vhostffm.vring.PackedRing.RING_EVENT_FLAGS_ENABLE;
import static io.vhostffm.vring.PackedRing.RING_EVENT_FLAGS_MASK;
import static io.vhostffm.vring.PackedRing.VIRTQ_DESC_F_INDIRECT;
import static io.vhostffm.vring.PackedRing.VIRTQ_DESC_F_NEXT;
import static io.vhostffm.vring.PackedRing.VIRTQ_DESC_F_WRITE;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;

/**
 * The driver side of a packed virtqueue, as a guest would run it: for hypervisor test rigs and
 * this library's own tests (what rust-vmm's mock queue is to its users). Adds chains, direct or
 * through an indirect table, decides whether to kick the device, collects used descriptors, and
 * enables or disables used-buffer notifications. {@link #addRaw} writes descriptors verbatim, to
 * feed a device malformed chains.
 *
 * <p>Buffer ids are handed out from a free list of {@code size} ids; the driver remembers how many
 * ring descriptors each id's chain occupies, to skip them when the id comes back used (spec
 * 2.8.6, "Next Flag: Descriptor Chaining"). Steady-state add and collect allocate nothing. Not
 * thread-safe: one driver thread.
 */
public final class PackedDriverQueue implements DriverQueue {
    private final int queueIndex;
    private final GuestMemory memory;
    private int size;
    private long descRingAddress;
    private long driverAreaAddress;
    private long deviceAreaAddress;
    private boolean eventIdx;
    private MemorySegment ring;
    /** Driver event suppression: written here, read by the device. */
    private MemorySegment driverEvent;
    /** Device event suppression: written by the device, read here. */
    private MemorySegment deviceEvent;

    private int nextAvail;
    private boolean availWrap;
    private int nextUsed;
    private boolean usedWrap;
    private int freeDescriptors;
    /** Free buffer ids, a stack: the next one handed out is {@code freeIds[freeIdCount - 1]}. */
    private int[] freeIds;
    private int freeIdCount;
    /** Ring descriptors of the chain behind each id in flight; 0 for a free id. */
    private int[] chainDescriptors;
    /** Lap position of the avail index at the last kick decision. */
    private int kickedLap;
    /**
     * Ring descriptors made available since the last kick decision, saturating: from
     * {@code 2 * size} on, the modular test cannot tell whether the device's offset was crossed
     * (it was), so the decision kicks.
     */
    private int availSinceKick;
    private boolean usedNotificationsEnabled = true;

    /**
     * A driver over the ring parts {@code layout} names, starting at its last avail index and
     * avail wrap counter as if every earlier descriptor had been made available and used (a
     * device restored from the same state with nothing in flight continues from there). It
     * formats the ring accordingly: descriptors before the start marked used on this lap, the
     * others used on the previous lap, so neither side mistakes one for available or used; both
     * event suppression structures are zeroed (ENABLE).
     *
     * @throws VirtqueueException ({@link VirtqueueException.Rule#INVALID_STATE}) when the layout does not hold up
     */
    public PackedDriverQueue(int queueIndex, GuestMemory memory, QueueState layout) {
        QueueGeometry g = layout.geometry();
        if (!g.packed()) {
            throw VirtqueueException.state(queueIndex, "packed", 0, "a packed driver needs a packed layout");
        }
        layout.validate(queueIndex, memory);
        this.queueIndex = queueIndex;
        this.memory = memory;
        int start = layout.position().lastAvailIdx();
        boolean wrap = layout.position().lastAvailWrapCounter();
        resolve(g.size(), g.descTableAddress(), g.driverAreaAddress(), g.deviceAreaAddress(), g.eventIdx());
        // plain stores: the formatted ring is published by the release fence at the end.
        ring.fill((byte) 0);
        for (int i = 0; i < size; i++) {
            DESC_FLAGS.set(ring, 0L, (long) i, (short) PackedRing.usedFlags(i < start ? wrap : !wrap));
        }
        driverEvent.fill((byte) 0);
        deviceEvent.fill((byte) 0);
        nextAvail = start;
        availWrap = wrap;
        nextUsed = start;
        usedWrap = wrap;
        kickedLap = PackedRing.lapPosition(start, wrap, size);
        freeDescriptors = size;
        for (int i = 0; i < size; i++) {
            freeIds[i] = size - 1 - i;
        }
        freeIdCount = size;
        // release: the formatted ring is ordered before anything published later.
        VarHandle.releaseFence();
    }

    /**
     * A driver carried across a migration: takes over a ring that already holds its chains (the
     * ring travels with guest memory), with the private state it saved.
     *
     * @throws IllegalArgumentException naming the field when the state does not hold up
     */
    public PackedDriverQueue(int queueIndex, GuestMemory memory, DriverState state) {
        this.queueIndex = queueIndex;
        this.memory = memory;
        restoreState(state);
    }

    /**
     * A fresh driver starting at ring index {@code startIndex} on lap {@code startWrap}: 0 and
     * true as a real driver starts, near the ring end to test wrapping (restore the device with
     * the same last avail and used positions). See {@link #PackedDriverQueue(int, GuestMemory, QueueState)}.
     */
    public PackedDriverQueue(int queueIndex, GuestMemory memory, int size, long descRingAddress, long driverAreaAddress,
                             long deviceAreaAddress, boolean eventIdx, int startIndex, boolean startWrap) {
        this(queueIndex, memory, QueueState.of(
                QueueGeometry.packed(size, descRingAddress, driverAreaAddress, deviceAreaAddress, eventIdx),
                QueuePosition.packed(startIndex, startWrap, startIndex, startWrap, 0)));
    }

    private void resolve(int newSize, long desc, long driverArea, long deviceArea, boolean newEventIdx) {
        String queue = Integer.toString(queueIndex);
        MemorySegment newRing = PackedRing.resolvePart(memory, queue, "descriptor ring", desc,
                (long) newSize * PackedRing.DESCRIPTOR_SIZE, PackedRing.DESCRIPTOR_RING_ALIGNMENT);
        MemorySegment newDriverEvent = PackedRing.resolvePart(memory, queue, "driver event suppression", driverArea,
                PackedRing.EVENT_SUPPRESSION_SIZE, PackedRing.EVENT_SUPPRESSION_ALIGNMENT);
        MemorySegment newDeviceEvent = PackedRing.resolvePart(memory, queue, "device event suppression", deviceArea,
                PackedRing.EVENT_SUPPRESSION_SIZE, PackedRing.EVENT_SUPPRESSION_ALIGNMENT);
        size = newSize;
        descRingAddress = desc;
        driverAreaAddress = driverArea;
        deviceAreaAddress = deviceArea;
        eventIdx = newEventIdx;
        ring = newRing;
        driverEvent = newDriverEvent;
        deviceEvent = newDeviceEvent;
        freeIds = new int[newSize];
        chainDescriptors = new int[newSize];
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
        return true;
    }

    @Override
    public int freeDescriptors() {
        return freeDescriptors;
    }

    /**
     * {@inheritDoc}
     *
     * <p>Packed: {@code readableCount + writableCount} ring descriptors linked by NEXT, the buffer
     * id in the last one (the others keep whatever id they held), the head's flags written last
     * with release (spec "Placing Available Buffers Into The Descriptor Ring").
     */
    @Override
    public int add(long[] addresses, int[] lengths, int readableCount, int writableCount) {
        int count = checkCounts(readableCount, writableCount, size);
        if (count > freeDescriptors || freeIdCount == 0) {
            return -1;
        }
        int id = freeIds[--freeIdCount];
        int head = nextAvail;
        int headFlags = 0;
        int last = head;
        for (int i = 0; i < count; i++) {
            int idx = nextAvail;
            // plain stores: published by the release store of the head's flags below.
            DESC_ADDR.set(ring, 0L, (long) idx, addresses[i]);
            DESC_LEN.set(ring, 0L, (long) idx, lengths[i]);
            int flags = PackedRing.availFlags(availWrap)
                    | (i >= readableCount ? VIRTQ_DESC_F_WRITE : 0)
                    | (i < count - 1 ? VIRTQ_DESC_F_NEXT : 0);
            if (i == 0) {
                headFlags = flags;
            } else {
                DESC_FLAGS.set(ring, 0L, (long) idx, (short) flags);
            }
            last = idx;
            advanceAvail();
        }
        // plain store: published by the release store of the head's flags below.
        DESC_ID.set(ring, 0L, (long) last, (short) id);
        chainDescriptors[id] = count;
        freeDescriptors -= count;
        // release: the chain's descriptors (and the payload the caller wrote) are visible before
        // the device can see the head available.
        DESC_FLAGS.setRelease(ring, 0L, (long) head, (short) headFlags);
        return id;
    }

    /**
     * {@inheritDoc}
     *
     * <p>Packed: one ring descriptor with VIRTQ_DESC_F_INDIRECT and the buffer id; the table's
     * entries carry only VIRTQ_DESC_F_WRITE (ids 0).
     */
    @Override
    public int addIndirect(long tableAddress, long[] addresses, int[] lengths, int readableCount, int writableCount) {
        int count = checkCounts(readableCount, writableCount, Integer.MAX_VALUE / PackedRing.DESCRIPTOR_SIZE);
        long tableLength = (long) count * PackedRing.DESCRIPTOR_SIZE;
        int region = memory.findRegion(tableAddress, tableLength);
        if (region < 0) {
            throw new GuestMemoryException(tableAddress, tableLength, memory.describeMiss(tableAddress, tableLength));
        }
        if (freeDescriptors == 0 || freeIdCount == 0) {
            return -1;
        }
        GuestRegion r = memory.region(region);
        MemorySegment segment = r.segment();
        long base = tableAddress - r.guestAddress();
        for (int i = 0; i < count; i++) {
            // plain stores: published by the release store of the ring descriptor's flags below.
            INDIRECT_ADDR.set(segment, base, (long) i, addresses[i]);
            INDIRECT_LEN.set(segment, base, (long) i, lengths[i]);
            INDIRECT_ID.set(segment, base, (long) i, (short) 0);
            INDIRECT_FLAGS.set(segment, base, (long) i, (short) (i >= readableCount ? VIRTQ_DESC_F_WRITE : 0));
        }
        int id = freeIds[--freeIdCount];
        int idx = nextAvail;
        // plain stores: published by the release store of the flags below.
        DESC_ADDR.set(ring, 0L, (long) idx, tableAddress);
        DESC_LEN.set(ring, 0L, (long) idx, (int) tableLength);
        DESC_ID.set(ring, 0L, (long) idx, (short) id);
        int flags = PackedRing.availFlags(availWrap) | VIRTQ_DESC_F_INDIRECT;
        advanceAvail();
        chainDescriptors[id] = 1;
        freeDescriptors -= 1;
        // release: the table and the descriptor are visible before the device sees it available.
        DESC_FLAGS.setRelease(ring, 0L, (long) idx, (short) flags);
        return id;
    }

    /**
     * Writes {@code count} ring descriptors verbatim (their avail/used bits replaced by the
     * current lap's), the first one's flags last with release, and advances the avail position
     * past them. For test rigs that feed the device malformed chains: nothing is checked and no
     * id is accounted, so no used descriptor is expected for them.
     *
     * @return the ring index of the first descriptor
     * @throws IllegalArgumentException when fewer than {@code count} descriptors are free
     */
    public int addRaw(long[] addresses, int[] lengths, int[] ids, int[] flags, int count) {
        if (count < 1 || count > freeDescriptors) {
            throw new IllegalArgumentException("raw chain of " + count + " with " + freeDescriptors + " free");
        }
        int head = nextAvail;
        int headFlags = 0;
        for (int i = 0; i < count; i++) {
            int idx = nextAvail;
            // plain stores: published by the release store of the head's flags below.
            DESC_ADDR.set(ring, 0L, (long) idx, addresses[i]);
            DESC_LEN.set(ring, 0L, (long) idx, lengths[i]);
            DESC_ID.set(ring, 0L, (long) idx, (short) ids[i]);
            int f = (flags[i] & ~(PackedRing.VIRTQ_DESC_F_AVAIL | PackedRing.VIRTQ_DESC_F_USED))
                    | PackedRing.availFlags(availWrap);
            if (i == 0) {
                headFlags = f;
            } else {
                DESC_FLAGS.set(ring, 0L, (long) idx, (short) f);
            }
            advanceAvail();
        }
        freeDescriptors -= count;
        // release: as in add.
        DESC_FLAGS.setRelease(ring, 0L, (long) head, (short) headFlags);
        return head;
    }

    private static int checkCounts(int readableCount, int writableCount, int max) {
        if (readableCount < 0 || writableCount < 0 || readableCount + writableCount < 1
                || readableCount + writableCount > max) {
            throw new IllegalArgumentException("chain of " + readableCount + " readable and " + writableCount
                    + " writable buffers; 1 to " + max + " allowed");
        }
        return readableCount + writableCount;
    }

    private void advanceAvail() {
        if (availSinceKick < Integer.MAX_VALUE) {
            availSinceKick++;
        }
        if (++nextAvail == size) {
            nextAvail = 0;
            availWrap = !availWrap;
        }
    }

    /**
     * {@inheritDoc}
     *
     * <p>Packed: reads the device event suppression structure. DISABLE: no. DESC under EVENT_IDX:
     * when the avail position moved past the device's offset on the lap its wrap counter names
     * ({@link PackedRing#needsEvent}). Otherwise yes.
     */
    @Override
    public boolean needsKick() {
        // full fence: the flags stores that made our chains available are ordered before the load
        // of the device's event suppression (spec "Sending Available Buffer Notifications": a
        // barrier before reading the Device Area).
        VarHandle.fullFence();
        // acquire: the device writes desc before flags; seeing DESC makes its offset visible.
        int flags = Short.toUnsignedInt((short) EVENT_FLAGS.getAcquire(deviceEvent, 0L)) & RING_EVENT_FLAGS_MASK;
        int offWrap = Short.toUnsignedInt((short) EVENT_DESC.get(deviceEvent, 0L));
        int newLap = PackedRing.lapPosition(nextAvail, availWrap, size);
        int oldLap = kickedLap;
        int moved = availSinceKick;
        kickedLap = newLap;
        availSinceKick = 0;
        if (flags == RING_EVENT_FLAGS_DISABLE) {
            return false;
        }
        if (flags == RING_EVENT_FLAGS_DESC && eventIdx) {
            return moved >= 2 * size || PackedRing.needsEvent(offWrap, newLap, oldLap, size);
        }
        return true;
    }

    /**
     * {@inheritDoc}
     *
     * <p>Packed: a used descriptor has AVAIL and USED both equal to the driver's used wrap
     * counter; its id tells how many ring descriptors to skip. Lengths of used descriptors
     * without VIRTQ_DESC_F_WRITE are reported as 0 (the field is reserved then).
     */
    @Override
    public int collectUsed(int[] ids, int[] writtenLengths, int max) {
        int n = 0;
        int limit = Math.min(max, Math.min(ids.length, writtenLengths.length));
        while (n < limit) {
            // acquire: pairs with the device's release store of the flags; id, length and the
            // payload the device wrote are visible after it.
            int flags = Short.toUnsignedInt((short) DESC_FLAGS.getAcquire(ring, 0L, (long) nextUsed));
            if (!PackedRing.isUsed(flags, usedWrap)) {
                break;
            }
            // plain loads: ordered after the acquire load of the flags.
            int id = Short.toUnsignedInt((short) DESC_ID.get(ring, 0L, (long) nextUsed));
            int len = (int) DESC_LEN.get(ring, 0L, (long) nextUsed);
            if (id >= size || chainDescriptors[id] == 0) {
                throw VirtqueueException.chain(VirtqueueException.Rule.USED_ID_INVALID, queueIndex, id, nextUsed,
                        VirtqueueException.NONE, 0, Integer.toUnsignedLong(len),
                        "used descriptor names buffer id " + id + ", not in flight");
            }
            int descriptors = chainDescriptors[id];
            chainDescriptors[id] = 0;
            freeIds[freeIdCount++] = id;
            freeDescriptors += descriptors;
            nextUsed += descriptors;
            if (nextUsed >= size) {
                nextUsed -= size;
                usedWrap = !usedWrap;
            }
            ids[n] = id;
            writtenLengths[n] = (flags & VIRTQ_DESC_F_WRITE) != 0 ? len : 0;
            n++;
        }
        return n;
    }

    /** Whether a used descriptor waits at the next used position. */
    public boolean hasUsed() {
        // acquire: as in collectUsed.
        int flags = Short.toUnsignedInt((short) DESC_FLAGS.getAcquire(ring, 0L, (long) nextUsed));
        return PackedRing.isUsed(flags, usedWrap);
    }

    @Override
    public void disableUsedNotifications() {
        usedNotificationsEnabled = false;
        // release: our store to the driver event suppression structure.
        EVENT_FLAGS.setRelease(driverEvent, 0L, (short) RING_EVENT_FLAGS_DISABLE);
    }

    /**
     * {@inheritDoc}
     *
     * <p>Packed: with EVENT_IDX, for the descriptor at the next used position on the lap of the
     * used wrap counter (DESC); else ENABLE.
     */
    @Override
    public boolean enableUsedNotifications() {
        usedNotificationsEnabled = true;
        if (eventIdx) {
            // plain store: published by the release store of the flags.
            EVENT_DESC.set(driverEvent, 0L, (short) PackedRing.eventOffWrap(nextUsed, usedWrap));
            // release: the offset is visible before DESC is.
            EVENT_FLAGS.setRelease(driverEvent, 0L, (short) RING_EVENT_FLAGS_DESC);
        } else {
            // release: our store.
            EVENT_FLAGS.setRelease(driverEvent, 0L, (short) RING_EVENT_FLAGS_ENABLE);
        }
        // full fence: the enable is visible before we re-read the ring.
        VarHandle.fullFence();
        return hasUsed();
    }

    /**
     * Under EVENT_IDX, asks for a used-buffer notification only once the device's used position
     * passes ring index {@code index} on lap {@code wrap} (Linux's delayed callback does this to
     * batch interrupts).
     */
    public void requestUsedEventAt(int index, boolean wrap) {
        if (index < 0 || index >= size) {
            throw new IllegalArgumentException("event index " + index + " outside a queue of " + size);
        }
        usedNotificationsEnabled = true;
        // plain store: published by the release store of the flags.
        EVENT_DESC.set(driverEvent, 0L, (short) PackedRing.eventOffWrap(index, wrap));
        // release: the offset is visible before DESC is.
        EVENT_FLAGS.setRelease(driverEvent, 0L, (short) RING_EVENT_FLAGS_DESC);
    }

    /**
     * {@inheritDoc}
     *
     * <p>Packed: {@code freeHead} is the next buffer id handed out (-1 when none is free),
     * {@code addedSinceKickCheck} counts ring descriptors made available since the last
     * {@link #needsKick()}.
     */
    @Override
    public DriverState saveState() {
        int added = Math.floorMod(PackedRing.lapPosition(nextAvail, availWrap, size) - kickedLap, 2 * size);
        return new DriverState(size, descRingAddress, driverAreaAddress, deviceAreaAddress, eventIdx, true,
                nextAvail, availWrap, nextUsed, usedWrap, freeIdCount == 0 ? -1 : freeIds[freeIdCount - 1],
                freeDescriptors, added, usedNotificationsEnabled, chainDescriptors);
    }

    @Override
    public void restoreState(DriverState state) {
        int n = state.size();
        if (!state.packed()) {
            throw new IllegalArgumentException("packed: a packed driver needs a packed state");
        }
        PackedRing.checkQueueSize(n);
        checkRange("availIdx", state.availIdx(), n);
        checkRange("lastUsedIdx", state.lastUsedIdx(), n);
        int[] perId = state.descriptorsPerId();
        if (perId.length != n) {
            throw new IllegalArgumentException("descriptorsPerId: " + perId.length + " entries for a queue of " + n);
        }
        long inFlight = 0;
        for (int i = 0; i < n; i++) {
            if (perId[i] < 0 || perId[i] > n) {
                throw new IllegalArgumentException("descriptorsPerId[" + i + "] = " + perId[i] + " outside [0, " + n + "]");
            }
            inFlight += perId[i];
        }
        if (inFlight + state.freeCount() != n) {
            throw new IllegalArgumentException("freeCount: " + state.freeCount() + " free and " + inFlight
                    + " in flight in a queue of " + n);
        }
        int distance = Math.floorMod(PackedRing.lapPosition(state.availIdx(), state.availWrapCounter(), n)
                - PackedRing.lapPosition(state.lastUsedIdx(), state.usedWrapCounter(), n), 2 * n);
        if (distance != inFlight) {
            throw new IllegalArgumentException("availIdx: " + distance + " descriptors between used and avail, "
                    + inFlight + " in flight");
        }
        if (state.addedSinceKickCheck() < 0 || state.addedSinceKickCheck() > n) {
            throw new IllegalArgumentException("addedSinceKickCheck: " + state.addedSinceKickCheck());
        }
        if (state.freeHead() != -1 && (state.freeHead() < 0 || state.freeHead() >= n || perId[state.freeHead()] != 0)) {
            throw new IllegalArgumentException("freeHead: " + state.freeHead() + " is not a free id");
        }
        resolve(n, state.descTableAddress(), state.driverAreaAddress(), state.deviceAreaAddress(), state.eventIdx());
        System.arraycopy(perId, 0, chainDescriptors, 0, n);
        freeIdCount = 0;
        for (int id = n - 1; id >= 0; id--) {
            if (perId[id] == 0 && id != state.freeHead()) {
                freeIds[freeIdCount++] = id;
            }
        }
        if (state.freeHead() >= 0) {
            freeIds[freeIdCount++] = state.freeHead();
        }
        nextAvail = state.availIdx();
        availWrap = state.availWrapCounter();
        nextUsed = state.lastUsedIdx();
        usedWrap = state.usedWrapCounter();
        freeDescriptors = state.freeCount();
        kickedLap = Math.floorMod(PackedRing.lapPosition(nextAvail, availWrap, n) - state.addedSinceKickCheck(), 2 * n);
        availSinceKick = state.addedSinceKickCheck();
        usedNotificationsEnabled = state.usedNotificationsEnabled();
    }

    private static void checkRange(String field, int value, int size) {
        if (value < 0 || value >= size) {
            throw new IllegalArgumentException(field + ": " + value + " outside [0, " + size + ")");
        }
    }

    /** Ring index the next chain goes to. */
    public int nextAvail() {
        return nextAvail;
    }

    /** Driver ring wrap counter. */
    public boolean availWrapCounter() {
        return availWrap;
    }

    /** Ring index of the next used descriptor expected. */
    public int nextUsed() {
        return nextUsed;
    }

    /** Wrap counter of the next used position. */
    public boolean usedWrapCounter() {
        return usedWrap;
    }
}

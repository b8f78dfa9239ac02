package io.vhostffm.vring;

import static io.vhostffm.vring.PackedRing.DESC_ADDR;
import static io.vhostffm.vring.PackedRing.DESC_FLAGS;
import static io.vhostffm.vring.PackedRing.DESC_ID;
import static io.vhostffm.vring.PackedRing.DESC_LEN;
import static io.vhostffm.vring.PackedRing.EVENT_DESC;
import static io.vhostffm.vring.PackedRing.EVENT_FLAGS;
import static io.vhostffm.vring.PackedRing.INDIRECT_ADDR;
import static io.vhostffm.vring.PackedRing.INDIRECT_FLAGS;
import static io.vhostffm.vring.PackedRing.INDIRECT_LEN;
import static io.vhostffm.vring.PackedRing.RING_EVENT_FLAGS_DESC;
import static io.vhostffm.vring.PackedRing.RING_EVENT_FLAGS_DISABLE;
import static io.vhostffm.vring.PackedRing.RING_EVENT_FLAGS_ENABLE;
import static io.vhostffm.vring.PackedRing.RING_EVENT_FLAGS_MASK;
import static io.vhostffm.vring.PackedRing.VIRTQ_DESC_F_INDIRECT;
import static io.vhostffm.vring.PackedRing.VIRTQ_DESC_F_NEXT;
import static io.vhostffm.vring.PackedRing.VIRTQ_DESC_F_WRITE;

import io.vhostffm.vring.VirtqueueException.Rule;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;

/**
 * The device side of a packed virtqueue (virtio 1.x section 2.8) over guest memory: takes
 * available chains in ring order, publishes used descriptors one at a time or in batches,
 * decides whether to notify the driver, and enables or disables the driver's notifications
 * through the two event suppression structures, wrap counters included.
 *
 * <p>Everything the guest wrote is untrusted. A malformed chain throws {@link VirtqueueException}
 * naming the queue, the head (for a packed ring: the ring index of the chain's first descriptor,
 * since the buffer id is only known at its last), the descriptor (ring index, and indirect table
 * entry), address and length; the queue is then broken and nothing is published for the chain.
 *
 * <p>The ring parts are resolved to host segments once, at restore; take and publish then go
 * through static {@link VarHandle}s over those segments and allocate nothing. The buffer id is
 * taken from the last descriptor of a chain; the device remembers per id how many ring
 * descriptors the chain occupied, so that its used descriptor skips them (spec 2.8.6, "Next
 * Flag: Descriptor Chaining").
 */
public final class PackedDeviceQueue implements DeviceQueue {
    /** Bit of {@link #wrapState}: the avail wrap counter that goes with {@link #lastAvailIdx}. */
    private static final int AVAIL_WRAP = 1;
    /** Bit of {@link #wrapState}: the used wrap counter that goes with {@link #usedIdx}. */
    private static final int USED_WRAP = 2;
    /** Bit of {@link #wrapState}: the wrap counter that goes with {@link #shadowAvailIdx}. */
    private static final int SHADOW_AVAIL_WRAP = AVAIL_WRAP << 2;
    /** Bit of {@link #wrapState}: whether {@link #signalledUsed} holds a decision (QEMU's signalled_used_valid). */
    private static final int SIGNALLED_USED_VALID = 8;

    // Field order is for the resync of many queues at once, which for each queue reads size and
    // writes the next five: HotSpot lays out an object's fields by size (longs, ints, booleans,
    // references), same-size fields in declaration order, the first int in the header's gap. With
    // no long field these six are the first ints, 24 adjacent bytes, so a queue's resync mostly
    // touches one cache line; the three wrap counters and signalled_used_valid are bits of one
    // int, so it is one store rather than four.
    private int size;
    private int lastAvailIdx;
    private int shadowAvailIdx;
    private int usedIdx;
    /** Chains taken and not yet published. */
    private int inuse;
    /** {@link #AVAIL_WRAP} | {@link #USED_WRAP} | {@link #SHADOW_AVAIL_WRAP} | {@link #SIGNALLED_USED_VALID}. */
    private int wrapState;
    /** Lap position (see {@link PackedRing}) of the used index at the last notification decision. */
    private int signalledUsed;
    /**
     * Ring descriptors used since the last notification decision, saturating. A lap position
     * repeats every {@code 2 * size}: past that many, the modular test of
     * {@link PackedRing#needsEvent} can no longer tell whether the driver's offset was crossed
     * (it was: every position was), so the decision notifies.
     */
    private int usedSinceDecision;
    private final int queueIndex;
    private final GuestMemory memory;
    /** The restored geometry: ring addresses (for {@link #saveState}), size and event idx. */
    private QueueGeometry geometry;
    private boolean eventIdx;
    private MemorySegment ring;
    /** Driver event suppression: written by the driver, read here; governs our used notifications. */
    private MemorySegment driverEvent;
    /** Device event suppression: written here, read by the driver; governs its available notifications. */
    private MemorySegment deviceEvent;
    /** Ring descriptors of the chain taken under each buffer id; 0 when the id is not in flight. */
    private int[] descriptorsPerId;
    private VirtqueueException brokenBy;

    /**
     * A queue over the ring parts {@code state} names, restored from it.
     *
     * @param queueIndex index of the queue in its device, named in every error
     * @throws VirtqueueException ({@link Rule#INVALID_STATE}) naming the field when the state does
     *                            not hold up, or when it is not a packed state
     */
    public PackedDeviceQueue(int queueIndex, GuestMemory memory, QueueState state, RestoreMode mode) {
        this.queueIndex = queueIndex;
        this.memory = memory;
        restoreState(state, mode);
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
    public boolean eventIdx() {
        return eventIdx;
    }

    @Override
    public boolean isBroken() {
        return brokenBy != null;
    }

    /**
     * {@inheritDoc}
     *
     * <p>Packed rules checked besides the common ones ({@link DescriptorChain}): every descriptor
     * after the head carries the avail bits of its lap, a NEXT chain ends within the queue size,
     * an indirect descriptor stands alone (no NEXT, not inside a NEXT chain), its table is a
     * non-zero multiple of 16 bytes, at most the queue size entries, inside guest memory, with no
     * indirect descriptor in it; the buffer id is below the queue size and not in flight already.
     */
    @Override
    public boolean take(DescriptorChain chain) {
        checkUsable();
        if (chain.capacity() < size) {
            throw new IllegalArgumentException("chain holder of " + chain.capacity() + " buffers for a queue of " + size);
        }
        int head = lastAvailIdx;
        // acquire: pairs with the driver's release store of the head's flags; every descriptor of
        // the chain, its indirect table and the payload written before are visible after it.
        int headFlags = Short.toUnsignedInt((short) DESC_FLAGS.getAcquire(ring, 0L, (long) head));
        if (!PackedRing.isAvailable(headFlags, lastAvailWrapCounter())) {
            return false;
        }
        try {
            int descriptors = walk(chain, head, headFlags);
            commitTake(chain, descriptors);
            return true;
        } catch (VirtqueueException e) {
            brokenBy = e;
            throw e;
        }
    }

    /** Walks the chain at {@code head} into {@code chain}; returns the ring descriptors it occupies. */
    private int walk(DescriptorChain chain, int head, int headFlags) {
        chain.begin(memory, queueIndex, head, size);
        int idx = head;
        boolean wrap = lastAvailWrapCounter();
        int flags = headFlags;
        int descriptors = 0;
        while (true) {
            // plain loads: ordered after the acquire load of the head's flags in take.
            long addr = (long) DESC_ADDR.get(ring, 0L, (long) idx);
            int len = (int) DESC_LEN.get(ring, 0L, (long) idx);
            if (descriptors > 0) {
                flags = Short.toUnsignedInt((short) DESC_FLAGS.get(ring, 0L, (long) idx));
                if (!PackedRing.isAvailable(flags, wrap)) {
                    throw chainError(Rule.DESCRIPTOR_NOT_AVAILABLE, head, idx, VirtqueueException.NONE, addr, len,
                            String.format("flags 0x%04x in a NEXT chain, wrap counter %d", flags, wrap ? 1 : 0));
                }
            }
            descriptors++;
            if ((flags & VIRTQ_DESC_F_INDIRECT) != 0) {
                if ((flags & VIRTQ_DESC_F_NEXT) != 0) {
                    throw chainError(Rule.INDIRECT_WITH_NEXT, head, idx, VirtqueueException.NONE, addr, len, "");
                }
                if (descriptors > 1) {
                    throw chainError(Rule.INDIRECT_WITH_NEXT, head, idx, VirtqueueException.NONE, addr, len,
                            "an indirect descriptor ends a NEXT chain of " + descriptors);
                }
                walkIndirectTable(chain, head, idx, addr, len);
            } else {
                chain.append(idx, VirtqueueException.NONE, addr, len, (flags & VIRTQ_DESC_F_WRITE) != 0);
                if ((flags & VIRTQ_DESC_F_NEXT) != 0) {
                    if (descriptors == size) {
                        throw chainError(Rule.CHAIN_TOO_LONG, head, idx, VirtqueueException.NONE, addr, len,
                                "VIRTQ_DESC_F_NEXT on descriptor " + size + " of a queue of " + size);
                    }
                    if (++idx == size) {
                        idx = 0;
                        wrap = !wrap;
                    }
                    continue;
                }
            }
            // The buffer id travels in the last descriptor of the chain (spec 2.8.6, "Next Flag:
            // Descriptor Chaining"); an indirect chain has only the one.
            // plain load: ordered after the acquire load of the head's flags in take.
            int id = Short.toUnsignedInt((short) DESC_ID.get(ring, 0L, (long) idx));
            if (id >= size) {
                throw chainError(Rule.BUFFER_ID_INVALID, head, idx, VirtqueueException.NONE, addr, len,
                        "buffer id " + id + " not below the queue size " + size);
            }
            if (descriptorsPerId[id] != 0) {
                throw chainError(Rule.BUFFER_ID_INVALID, head, idx, VirtqueueException.NONE, addr, len,
                        "buffer id " + id + " is already in flight");
            }
            chain.setHeadId(id);
            chain.setDescriptorCount(descriptors);
            return descriptors;
        }
    }

    private void walkIndirectTable(DescriptorChain chain, int head, int idx, long tableAddress, int tableLength) {
        long length = Integer.toUnsignedLong(tableLength);
        if (length == 0 || length % PackedRing.DESCRIPTOR_SIZE != 0) {
            throw chainError(Rule.INDIRECT_TABLE_LENGTH, head, idx, VirtqueueException.NONE, tableAddress, tableLength, "");
        }
        long entries = length / PackedRing.DESCRIPTOR_SIZE;
        if (entries > size) {
            throw chainError(Rule.CHAIN_TOO_LONG, head, idx, VirtqueueException.NONE, tableAddress, tableLength,
                    "indirect table of " + entries + " descriptors in a queue of " + size);
        }
        int region = memory.findRegion(tableAddress, length);
        if (region < 0) {
            throw chainError(Rule.INDIRECT_TABLE_OUTSIDE_GUEST_MEMORY, head, idx, VirtqueueException.NONE,
                    tableAddress, tableLength, memory.describeMiss(tableAddress, length));
        }
        GuestRegion r = memory.region(region);
        MemorySegment segment = r.segment();
        long base = tableAddress - r.guestAddress();
        for (int i = 0; i < entries; i++) {
            // plain loads: the table was written before the driver's release store of the ring
            // descriptor's flags, which take read with acquire.
            long addr = (long) INDIRECT_ADDR.get(segment, base, (long) i);
            int len = (int) INDIRECT_LEN.get(segment, base, (long) i);
            int flags = Short.toUnsignedInt((short) INDIRECT_FLAGS.get(segment, base, (long) i));
            if ((flags & VIRTQ_DESC_F_INDIRECT) != 0) {
                throw chainError(Rule.INDIRECT_IN_INDIRECT, head, idx, i, addr, len,
                        "in the table at 0x" + Long.toHexString(tableAddress));
            }
            // NEXT and the id are reserved in an indirect table: its entries are sequential.
            chain.append(idx, i, addr, len, (flags & VIRTQ_DESC_F_WRITE) != 0);
        }
    }

    private void commitTake(DescriptorChain chain, int descriptors) {
        descriptorsPerId[chain.headId()] = descriptors;
        int idx = lastAvailIdx + descriptors;
        int wraps = wrapState;
        if (idx >= size) {
            idx -= size;
            wraps ^= AVAIL_WRAP;
        }
        lastAvailIdx = idx;
        shadowAvailIdx = idx;
        // shadow avail wrap := avail wrap
        wrapState = (wraps & ~SHADOW_AVAIL_WRAP) | (wraps & AVAIL_WRAP) << 2;
        inuse++;
    }

    private VirtqueueException chainError(Rule rule, int head, int descriptor, int entry, long addr, int len, String detail) {
        return VirtqueueException.chain(rule, queueIndex, head, descriptor, entry, addr, Integer.toUnsignedLong(len), detail);
    }

    /** Whether a chain is available now. */
    public boolean hasAvailable() {
        // acquire: pairs with the driver's release store of the head's flags.
        int flags = Short.toUnsignedInt((short) DESC_FLAGS.getAcquire(ring, 0L, (long) lastAvailIdx));
        return PackedRing.isAvailable(flags, lastAvailWrapCounter());
    }

    /**
     * {@inheritDoc}
     *
     * <p>Writes id and length at the used index, then the flags (AVAIL and USED both at the used
     * wrap counter, WRITE when bytes were written) with a release store, and advances the used
     * index by the ring descriptors the id's chain occupied.
     */
    @Override
    public void publishUsed(int id, int writtenLength) {
        checkUsable();
        int descriptors = checkPublishable(id);
        // The flags carry the wrap counter of the lap the entry is written on, before advancing.
        int idx = usedIdx;
        int flags = usedFlags(writtenLength);
        writeUsed(idx, id, writtenLength);
        advanceUsed(id, descriptors);
        // release: the id, the length, and every payload byte written into the buffer are
        // visible before the driver can see the descriptor used.
        DESC_FLAGS.setRelease(ring, 0L, (long) idx, (short) flags);
    }

    /**
     * {@inheritDoc}
     *
     * <p>Every used descriptor of the batch but the first gets its flags with a plain store; the
     * first one's flags are written last, with release (spec 2.8.9, "Multi-buffer requests"):
     * the driver polls only its next used position, so it sees the whole batch or none of it.
     */
    @Override
    public void publishUsedBatch(int[] ids, int[] writtenLengths, int count) {
        checkUsable();
        if (count < 0 || count > ids.length || count > writtenLengths.length) {
            throw new IllegalArgumentException("batch of " + count + " with arrays of " + ids.length + " and " + writtenLengths.length);
        }
        if (count == 0) {
            return;
        }
        if (count > inuse) {
            throw new IllegalStateException(String.format(
                    "virtqueue %d: batch of %d used descriptors with %d chains in use", queueIndex, count, inuse));
        }
        // Check the whole batch before writing any of it, so a bad id publishes nothing. An id is
        // marked by negating its descriptor count, which also catches an id twice in the batch.
        for (int i = 0; i < count; i++) {
            int id = ids[i];
            if (id < 0 || id >= size || descriptorsPerId[id] <= 0) {
                for (int j = 0; j < i; j++) {
                    descriptorsPerId[ids[j]] = -descriptorsPerId[ids[j]];
                }
                throw new IllegalStateException(String.format(
                        "virtqueue %d: buffer id %d (batch entry %d) is not in flight or repeats in the batch",
                        queueIndex, id, i));
            }
            descriptorsPerId[id] = -descriptorsPerId[id];
        }
        int firstIdx = usedIdx;
        int firstFlags = usedFlags(writtenLengths[0]);
        for (int i = 0; i < count; i++) {
            int idx = usedIdx;
            int flags = usedFlags(writtenLengths[i]);
            writeUsed(idx, ids[i], writtenLengths[i]);
            if (i > 0) {
                // plain store: published by the release store of the first flags below.
                DESC_FLAGS.set(ring, 0L, (long) idx, (short) flags);
            }
            advanceUsed(ids[i], -descriptorsPerId[ids[i]]);
        }
        // release: every used descriptor of the batch (ids, lengths, later flags) and the payload
        // written are visible before the driver sees the batch's first descriptor used.
        DESC_FLAGS.setRelease(ring, 0L, (long) firstIdx, (short) firstFlags);
    }

    /**
     * Publishes a used descriptor for a chain this queue did not take itself (one in flight when
     * the state was restored): its id and the ring descriptors it occupies are given. A packed
     * ring cannot tell them from guest memory once the used position moved on.
     */
    public void publishUsedRestored(int id, int descriptorCount, int writtenLength) {
        checkUsable();
        if (id < 0 || id >= size) {
            throw new IllegalArgumentException("virtqueue " + queueIndex + ": id " + id + " not below the size " + size);
        }
        int pending = Math.floorMod(PackedRing.lapPosition(lastAvailIdx, lastAvailWrapCounter(), size)
                - PackedRing.lapPosition(usedIdx, usedWrapCounter(), size), 2 * size);
        if (inuse < 1 || descriptorCount < 1 || descriptorCount > pending) {
            throw new IllegalStateException(String.format(
                    "virtqueue %d: restored chain %d of %d descriptors with %d in use over %d descriptors",
                    queueIndex, id, descriptorCount, inuse, pending));
        }
        int idx = usedIdx;
        int flags = usedFlags(writtenLength);
        writeUsed(idx, id, writtenLength);
        descriptorsPerId[id] = 0;
        moveUsed(descriptorCount);
        // release: as in publishUsed.
        DESC_FLAGS.setRelease(ring, 0L, (long) idx, (short) flags);
    }

    /** Checks an id to publish; returns the ring descriptors its chain occupies. */
    private int checkPublishable(int id) {
        if (id < 0 || id >= size) {
            throw new IllegalArgumentException("virtqueue " + queueIndex + ": id " + id + " not below the size " + size);
        }
        int descriptors = descriptorsPerId[id];
        if (descriptors == 0 || inuse == 0) {
            throw new IllegalStateException(String.format(
                    "virtqueue %d: publishing buffer id %d, which is not in flight (%d in use)", queueIndex, id, inuse));
        }
        return descriptors;
    }

    private int usedFlags(int writtenLength) {
        return PackedRing.usedFlags(usedWrapCounter()) | (writtenLength != 0 ? VIRTQ_DESC_F_WRITE : 0);
    }

    private void writeUsed(int idx, int id, int writtenLength) {
        // plain stores: published by the release store of the flags that follows.
        DESC_ID.set(ring, 0L, (long) idx, (short) id);
        DESC_LEN.set(ring, 0L, (long) idx, writtenLength);
    }

    private void advanceUsed(int id, int descriptors) {
        descriptorsPerId[id] = 0;
        moveUsed(descriptors);
    }

    private void moveUsed(int descriptors) {
        if (usedSinceDecision < Integer.MAX_VALUE - descriptors) {
            usedSinceDecision += descriptors;
        }
        usedIdx += descriptors;
        if (usedIdx >= size) {
            usedIdx -= size;
            wrapState ^= USED_WRAP;
        }
        inuse--;
    }

    /**
     * {@inheritDoc}
     *
     * <p>Packed: reads the driver event suppression structure. DISABLE: no. ENABLE (or the
     * reserved value, or DESC without EVENT_IDX): yes. DESC: yes when the used position moved past
     * the driver's offset on the lap its wrap counter names, since the last decision
     * ({@link PackedRing#needsEvent}), or when there is no last decision (after a restore or resync).
     */
    @Override
    public boolean needsNotification() {
        // full fence: our used flags stores are ordered before the load of the driver's event
        // suppression; otherwise we could read a stale DISABLE while the driver reads our stale
        // used flags, and both would wait.
        VarHandle.fullFence();
        // acquire: the driver writes desc before flags; seeing DESC makes its offset visible.
        int flags = Short.toUnsignedInt((short) EVENT_FLAGS.getAcquire(driverEvent, 0L)) & RING_EVENT_FLAGS_MASK;
        int offWrap = Short.toUnsignedInt((short) EVENT_DESC.get(driverEvent, 0L));
        int wraps = wrapState;
        int newLap = PackedRing.lapPosition(usedIdx, (wraps & USED_WRAP) != 0, size);
        int oldLap = signalledUsed;
        boolean valid = (wraps & SIGNALLED_USED_VALID) != 0;
        int moved = usedSinceDecision;
        signalledUsed = newLap;
        wrapState = wraps | SIGNALLED_USED_VALID;
        usedSinceDecision = 0;
        if (flags == RING_EVENT_FLAGS_DISABLE) {
            return false;
        }
        if (flags != RING_EVENT_FLAGS_DESC || !eventIdx) {
            return true;
        }
        // A device that keeps taking while the driver keeps refilling can move 2 * size or more
        // between two decisions; the offset was crossed then, whatever the modular test says.
        return !valid || moved >= 2 * size || PackedRing.needsEvent(offWrap, newLap, oldLap, size);
    }

    @Override
    public void disableNotifications() {
        // release: our store to the device event suppression structure.
        EVENT_FLAGS.setRelease(deviceEvent, 0L, (short) RING_EVENT_FLAGS_DISABLE);
    }

    /**
     * {@inheritDoc}
     *
     * <p>Packed: with EVENT_IDX, asks for a notification when the descriptor at our last avail
     * index, on the lap of our avail wrap counter, is made available (DESC); else ENABLE.
     */
    @Override
    public boolean enableNotifications() {
        if (eventIdx) {
            // plain store: published by the release store of the flags below.
            EVENT_DESC.set(deviceEvent, 0L, (short) PackedRing.eventOffWrap(lastAvailIdx, lastAvailWrapCounter()));
            // release: the offset is visible before DESC is.
            EVENT_FLAGS.setRelease(deviceEvent, 0L, (short) RING_EVENT_FLAGS_DESC);
        } else {
            // release: our store.
            EVENT_FLAGS.setRelease(deviceEvent, 0L, (short) RING_EVENT_FLAGS_ENABLE);
        }
        // full fence: the enable is visible before we re-read the ring, so a chain the driver made
        // available after reading our old DISABLE is seen here.
        VarHandle.fullFence();
        return hasAvailable();
    }

    @Override
    public QueueState saveState() {
        return new QueueState(geometry, QueuePosition.packed(lastAvailIdx, lastAvailWrapCounter(), usedIdx,
                usedWrapCounter(), inuse), shadowAvailIdx, signalledUsedValid());
    }

    /**
     * {@inheritDoc}
     *
     * <p>Packed: the positions come from the state (guest memory cannot tell them). The used
     * position may trail the last avail position by at most the queue size, and {@code inuse}
     * chains fit in that distance; {@link RestoreMode#EARLY} instead resets the used position to
     * the last avail position, shadow avail to last avail, and inuse to 0. In-flight chains of a
     * restored state are published with {@link #publishUsedRestored}. The shadow avail position
     * is the last avail one (the device reads the ring's flags, not an index, so it has no other).
     */
    @Override
    public void restoreState(QueueState state, RestoreMode mode) {
        try {
            QueueGeometry g = state.geometry();
            if (!g.packed()) {
                throw VirtqueueException.state(queueIndex, "packed", 0, "a packed queue needs a packed state");
            }
            state.validate(queueIndex, memory);
            QueuePosition p = state.position();
            int newSize = g.size();
            int newUsedIdx = p.usedIdx();
            boolean newUsedWrap = p.usedWrapCounter();
            int newInuse = p.inuse();
            if (mode == RestoreMode.EARLY) {
                newUsedIdx = p.lastAvailIdx();
                newUsedWrap = p.lastAvailWrapCounter();
                newInuse = 0;
            } else {
                checkPositions(newSize, p.lastAvailIdx(), p.lastAvailWrapCounter(), newUsedIdx, newUsedWrap, newInuse);
            }
            MemorySegment newRing = resolve("descTableAddress", g.descTableAddress(),
                    (long) newSize * PackedRing.DESCRIPTOR_SIZE, PackedRing.DESCRIPTOR_RING_ALIGNMENT);
            MemorySegment newDriverEvent = resolve("driverAreaAddress", g.driverAreaAddress(),
                    PackedRing.EVENT_SUPPRESSION_SIZE, PackedRing.EVENT_SUPPRESSION_ALIGNMENT);
            MemorySegment newDeviceEvent = resolve("deviceAreaAddress", g.deviceAreaAddress(),
                    PackedRing.EVENT_SUPPRESSION_SIZE, PackedRing.EVENT_SUPPRESSION_ALIGNMENT);
            boolean availWrap = p.lastAvailWrapCounter();
            size = newSize;
            geometry = g;
            eventIdx = g.eventIdx();
            ring = newRing;
            driverEvent = newDriverEvent;
            deviceEvent = newDeviceEvent;
            lastAvailIdx = p.lastAvailIdx();
            shadowAvailIdx = lastAvailIdx;
            usedIdx = newUsedIdx;
            inuse = newInuse;
            // shadow avail wrap := avail wrap; signalled_used_valid: false
            wrapState = (availWrap ? AVAIL_WRAP | SHADOW_AVAIL_WRAP : 0) | (newUsedWrap ? USED_WRAP : 0);
            descriptorsPerId = new int[newSize];
            signalledUsed = PackedRing.lapPosition(usedIdx, newUsedWrap, size);
            brokenBy = null;
        } catch (VirtqueueException e) {
            brokenBy = e;
            throw e;
        }
    }

    /** A ring part's host segment; the state was validated, so only the host alignment can fail here. */
    private MemorySegment resolve(String field, long address, long length, int alignment) {
        try {
            return PackedRing.resolvePart(memory, Integer.toString(queueIndex), field, address, length, alignment);
        } catch (IllegalArgumentException e) {
            throw VirtqueueException.state(queueIndex, field, address, e.getMessage());
        }
    }

    /** The used position trails last avail by at most the size, and inuse chains fit between them. */
    private void checkPositions(int size, int lastAvail, boolean availWrap, int used, boolean usedWrap, int inuse) {
        int pending = Math.floorMod(PackedRing.lapPosition(lastAvail, availWrap, size)
                - PackedRing.lapPosition(used, usedWrap, size), 2 * size);
        if (pending > size) {
            throw VirtqueueException.state(queueIndex, "usedIdx", used, String.format(
                    "used position (%d, wrap %d) trails last avail (%d, wrap %d) by %d descriptors, more than the size %d",
                    used, usedWrap ? 1 : 0, lastAvail, availWrap ? 1 : 0, pending, size));
        }
        if (inuse > pending) {
            throw VirtqueueException.state(queueIndex, "inuse", inuse,
                    "more chains in use than the " + pending + " descriptors between used and last avail");
        }
        if (inuse == 0 && pending != 0) {
            throw VirtqueueException.state(queueIndex, "inuse", inuse,
                    pending + " descriptors between used and last avail but no chain in use");
        }
    }

    /**
     * {@inheritDoc}
     *
     * <p>Packed: positions and wrap counters from {@code finalPosition}; range checks only.
     */
    @Override
    public void resync(QueuePosition finalPosition) {
        resyncToBase(finalPosition);
    }

    /**
     * {@link #resync(QueuePosition)}, returning the queue's vhost vring base in the kernel packed
     * form ({@link VhostVringBase#encodeKernelPacked}); the per-queue step of {@link QueueResync}.
     * Every check is folded into one branch (non-short-circuit {@code |}; unsigned compares catch
     * negatives too): a split position, last or used outside [0, size), inuse outside [0, size].
     * The cold path, {@link #refusal}, names the field; a refused position leaves the queue
     * unchanged.
     */
    int resyncToBase(QueuePosition finalPosition) {
        int last = finalPosition.lastAvailIdx();
        int used = finalPosition.usedIdx();
        int newInuse = finalPosition.inuse();
        int n = size;
        boolean bad = !finalPosition.packed() | Integer.compareUnsigned(last, n) >= 0
                | Integer.compareUnsigned(used, n) >= 0 | Integer.compareUnsigned(newInuse, n) > 0;
        if (bad) {
            throw refusal(finalPosition);
        }
        int availWrap = finalPosition.lastAvailWrapCounter() ? AVAIL_WRAP : 0;
        int usedWrap = finalPosition.usedWrapCounter() ? USED_WRAP : 0;
        lastAvailIdx = last;
        shadowAvailIdx = last;
        usedIdx = used;
        inuse = newInuse;
        // Both avail wrap counters := the final one, the used one too; signalled_used_valid := false.
        wrapState = availWrap | availWrap << 2 | usedWrap;
        // VhostVringBase.encodeKernelPacked without its range checks: both indices were just
        // checked below size, and size <= PackedRing.MAX_QUEUE_SIZE keeps them below 1 << 15.
        return last | availWrap << 15 | used << 16 | usedWrap << 30;
    }

    /**
     * The error for a final position {@link #resyncToBase} refused, naming the field (the format,
     * else {@link QueuePosition#rangeError}, the same words as {@link QueuePosition#check(int, int)}).
     */
    private VirtqueueException refusal(QueuePosition position) {
        if (!position.packed()) {
            return VirtqueueException.state(queueIndex, "position.packed", 0, "a split position for a packed ring");
        }
        VirtqueueException error = QueuePosition.rangeError(queueIndex, size, true, position.lastAvailIdx(),
                position.usedIdx(), position.inuse());
        return error != null ? error
                : VirtqueueException.state(queueIndex, "position", position.lastAvailIdx(),
                        "refused by the folded check alone");
    }

    private void checkUsable() {
        if (brokenBy != null) {
            throw VirtqueueException.broken(queueIndex, brokenBy);
        }
    }

    /** Ring index of the next descriptor to take. */
    public int lastAvailIdx() {
        return lastAvailIdx;
    }

    /** Avail wrap counter that goes with {@link #lastAvailIdx()}. */
    public boolean lastAvailWrapCounter() {
        return (wrapState & AVAIL_WRAP) != 0;
    }

    /** Ring index the next used descriptor goes to. */
    public int usedIdx() {
        return usedIdx;
    }

    /** Used wrap counter that goes with {@link #usedIdx()}. */
    public boolean usedWrapCounter() {
        return (wrapState & USED_WRAP) != 0;
    }

    /** Chains taken and not yet published. */
    public int inuse() {
        return inuse;
    }

    /** Whether the next notification decision has a previous one to compare with (false after restore and resync). */
    public boolean signalledUsedValid() {
        return (wrapState & SIGNALLED_USED_VALID) != 0;
    }
}

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

import io.vhostffm.vring.VirtqueueException.Rule;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;
import java.util.Objects;

/**
 * The device side of a split virtqueue (virtio 1.x section 2.7) over guest memory: a view, with
 * the three ring areas resolved to host segments once at {@link #restoreState}; the hot path
 * reads and writes them in place and allocates nothing.
 *
 * <p>Every chain is checked while it is walked (see {@link VirtqueueException.Rule}); a violation
 * breaks the queue. The guest can make this class throw, never make it touch memory outside the
 * guest's regions.
 */
public final class SplitDeviceQueue implements DeviceQueue {
    // Field order is for the resync of many queues at once, which for each queue reads size and
    // writes lastAvailIdx, shadowAvailIdx, usedIdx, inuse and signalledUsedValid: HotSpot lays
    // out an object's fields by size (longs, ints, booleans, references; the first int in the
    // header's gap), and same-size fields in declaration order. These six are the last ints and
    // the first boolean, 21 adjacent bytes, so a queue's resync mostly touches one cache line.
    private final int queueIndex;
    private int mask;
    private int signalledUsed;
    /**
     * Used elements published since the last notification decision, saturating. used.idx is 16
     * bits: from 65536 on, {@code vring_need_event} cannot tell whether used_event was crossed (it
     * was), so the decision notifies, as the driver side does for kicks.
     */
    private int usedSinceDecision;
    private long usedEventOffset;
    private long availEventOffset;
    private int size;

    // Positions (QEMU's VirtQueue names).
    private int lastAvailIdx;
    private int shadowAvailIdx;
    private int usedIdx;
    private int inuse;
    private boolean signalledUsedValid;
    private boolean notificationsEnabled;

    // Geometry, fixed between restores.
    private final GuestMemory memory;
    private QueueGeometry geometry;
    private boolean eventIdx;
    private MemorySegment descTable;
    private MemorySegment availRing;
    private MemorySegment usedRing;
    private VirtqueueException brokenBy;

    /**
     * A queue restored from {@code state}; for a fresh queue pass {@link QueueState#fresh} and
     * {@link RestoreMode#CLASSIC}.
     *
     * @throws VirtqueueException naming the field when the state does not hold up
     */
    public SplitDeviceQueue(int queueIndex, GuestMemory memory, QueueState state, RestoreMode mode) {
        this.queueIndex = queueIndex;
        this.memory = Objects.requireNonNull(memory, "memory");
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
        return false;
    }

    @Override
    public boolean eventIdx() {
        return eventIdx;
    }

    @Override
    public boolean isBroken() {
        return brokenBy != null;
    }

    // ---------------------------------------------------------------- taking chains

    @Override
    public boolean take(DescriptorChain chain) {
        checkNotBroken();
        if (chain.capacity() < size) {
            throw new IllegalArgumentException("chain capacity " + chain.capacity() + " below queue size " + size);
        }
        try {
            if (lastAvailIdx == shadowAvailIdx) {
                // Acquire: the driver's index. Pairs with the driver's release store of avail.idx,
                // so the ring entries and descriptors it wrote before are visible to the reads below.
                int availIdx = Short.toUnsignedInt((short) U16.getAcquire(availRing, IDX_OFFSET));
                if (((availIdx - lastAvailIdx) & 0xffff) > size) {
                    throw VirtqueueException.indexJump(queueIndex, "avail.idx", availIdx, lastAvailIdx, size);
                }
                shadowAvailIdx = availIdx;
                if (availIdx == lastAvailIdx) {
                    return false;
                }
            }
            // Plain read: this entry lies before the avail.idx we acquired above.
            int head = u16(availRing, SplitRingLayout.availRingOffset(lastAvailIdx & mask));
            walkChain(chain, head);
        } catch (VirtqueueException e) {
            brokenBy = e;
            throw e;
        }
        lastAvailIdx = (lastAvailIdx + 1) & 0xffff;
        inuse++;
        if (eventIdx && notificationsEnabled) {
            // Plain store of our avail_event: a hint for the driver's next kick decision. The race
            // with a driver adding right now is closed by enableNotifications(), which fences and
            // re-checks avail.idx before the device sleeps.
            U16.set(usedRing, availEventOffset, (short) lastAvailIdx);
        }
        return true;
    }

    /** Walks the chain at {@code head} through the descriptor table, and an indirect table if any. */
    private void walkChain(DescriptorChain chain, int head) {
        chain.begin(memory, queueIndex, head, size);
        if (head >= size) {
            throw VirtqueueException.chain(Rule.HEAD_OUT_OF_RANGE, queueIndex, head, NONE, NONE, 0, 0,
                    "queue size " + size + ", avail ring slot " + (lastAvailIdx & mask));
        }
        int index = head;
        int walked = 0;
        while (true) {
            // Plain reads: the descriptor was written before the avail.idx we acquired.
            long address = (long) DESC_ADDR.get(descTable, 0L, (long) index);
            int length = (int) DESC_LEN.get(descTable, 0L, (long) index);
            int flags = Short.toUnsignedInt((short) DESC_FLAGS.get(descTable, 0L, (long) index));
            int next = Short.toUnsignedInt((short) DESC_NEXT.get(descTable, 0L, (long) index));
            if (++walked > size) {
                // No valid chain has more descriptors than the table: the chain loops.
                throw VirtqueueException.chain(Rule.CHAIN_TOO_LONG, queueIndex, head, index, NONE, address,
                        Integer.toUnsignedLong(length), "walked more than " + size + " descriptors");
            }
            if ((flags & VIRTQ_DESC_F_INDIRECT) != 0) {
                if ((flags & VIRTQ_DESC_F_NEXT) != 0) {
                    throw VirtqueueException.chain(Rule.INDIRECT_WITH_NEXT, queueIndex, head, index, NONE, address,
                            Integer.toUnsignedLong(length), String.format("flags 0x%x", flags));
                }
                // The spec makes the device ignore VIRTQ_DESC_F_WRITE on this descriptor.
                walkIndirectTable(chain, head, index, address, length);
                break;
            }
            chain.append(index, NONE, address, length, (flags & VIRTQ_DESC_F_WRITE) != 0);
            if ((flags & VIRTQ_DESC_F_NEXT) == 0) {
                break;
            }
            if (next >= size) {
                throw VirtqueueException.chain(Rule.NEXT_OUT_OF_RANGE, queueIndex, head, index, NONE, address,
                        Integer.toUnsignedLong(length), "next " + next + ", queue size " + size);
            }
            index = next;
        }
        chain.setDescriptorCount(walked);
    }

    /** Walks the indirect table that descriptor {@code descriptorIndex} points to. */
    private void walkIndirectTable(DescriptorChain chain, int head, int descriptorIndex, long tableAddress,
            int rawTableLength) {
        long tableLength = Integer.toUnsignedLong(rawTableLength);
        if (tableLength == 0 || tableLength % DESC_SIZE != 0) {
            throw VirtqueueException.chain(Rule.INDIRECT_TABLE_LENGTH, queueIndex, head, descriptorIndex, NONE,
                    tableAddress, tableLength, "length " + tableLength);
        }
        int regionIndex = memory.findRegion(tableAddress, tableLength);
        if (regionIndex < 0) {
            throw VirtqueueException.chain(Rule.INDIRECT_TABLE_OUTSIDE_GUEST_MEMORY, queueIndex, head,
                    descriptorIndex, NONE, tableAddress, tableLength, memory.describeMiss(tableAddress, tableLength));
        }
        GuestRegion region = memory.region(regionIndex);
        MemorySegment table = region.segment();
        long base = tableAddress - region.guestAddress();
        long entries = tableLength / DESC_SIZE;
        int entry = 0;
        int walked = 0;
        while (true) {
            // Plain reads: the table was written before the avail.idx we acquired.
            long address = (long) DESC_ADDR.get(table, base, (long) entry);
            int length = (int) DESC_LEN.get(table, base, (long) entry);
            int flags = Short.toUnsignedInt((short) DESC_FLAGS.get(table, base, (long) entry));
            int next = Short.toUnsignedInt((short) DESC_NEXT.get(table, base, (long) entry));
            if (++walked > entries) {
                throw VirtqueueException.chain(Rule.CHAIN_TOO_LONG, queueIndex, head, descriptorIndex, entry, address,
                        Integer.toUnsignedLong(length), "walked more than the table's " + entries + " entries");
            }
            if ((flags & VIRTQ_DESC_F_INDIRECT) != 0) {
                throw VirtqueueException.chain(Rule.INDIRECT_IN_INDIRECT, queueIndex, head, descriptorIndex, entry,
                        address, Integer.toUnsignedLong(length), String.format("flags 0x%x", flags));
            }
            chain.append(descriptorIndex, entry, address, length, (flags & VIRTQ_DESC_F_WRITE) != 0);
            if ((flags & VIRTQ_DESC_F_NEXT) == 0) {
                return;
            }
            if (next >= entries) {
                throw VirtqueueException.chain(Rule.NEXT_OUT_OF_RANGE, queueIndex, head, descriptorIndex, entry,
                        address, Integer.toUnsignedLong(length), "next " + next + ", table entries " + entries);
            }
            entry = next;
        }
    }

    // ---------------------------------------------------------------- publishing

    @Override
    public void publishUsed(int id, int writtenLength) {
        checkNotBroken();
        checkPublishable(id, 1);
        writeUsedElement(usedIdx, id, writtenLength);
        usedIdx = (usedIdx + 1) & 0xffff;
        inuse--;
        if (usedSinceDecision < Integer.MAX_VALUE) {
            usedSinceDecision++;
        }
        // Release: our index. The element written above must be visible to the driver before the
        // used.idx that covers it; pairs with the driver's acquire load of used.idx.
        U16.setRelease(usedRing, IDX_OFFSET, (short) usedIdx);
    }

    @Override
    public void publishUsedBatch(int[] ids, int[] writtenLengths, int count) {
        checkNotBroken();
        if (count < 0 || count > ids.length || count > writtenLengths.length) {
            throw new IllegalArgumentException("count " + count + " for arrays of " + ids.length + " and "
                    + writtenLengths.length);
        }
        // Check all before writing any, so a bad batch publishes nothing.
        for (int i = 0; i < count; i++) {
            checkPublishable(ids[i], count);
        }
        int idx = usedIdx;
        for (int i = 0; i < count; i++) {
            writeUsedElement(idx, ids[i], writtenLengths[i]);
            idx = (idx + 1) & 0xffff;
        }
        usedIdx = idx;
        inuse -= count;
        if (usedSinceDecision < Integer.MAX_VALUE - count) {
            usedSinceDecision += count;
        }
        // Release: our index, once for the whole batch, after all its elements (see publishUsed).
        U16.setRelease(usedRing, IDX_OFFSET, (short) usedIdx);
    }

    private void checkPublishable(int id, int count) {
        if (id < 0 || id >= size) {
            throw new IllegalArgumentException("virtqueue " + queueIndex + ": used id " + id
                    + " not below the queue size " + size);
        }
        if (count > inuse) {
            throw new IllegalStateException("virtqueue " + queueIndex + ": publishing " + count
                    + " used element(s) with only " + inuse + " chain(s) taken");
        }
    }

    private void writeUsedElement(int idx, int id, int writtenLength) {
        // Plain stores: made visible by the release store of used.idx that follows.
        long slot = idx & mask;
        USED_ELEM_ID.set(usedRing, RING_OFFSET, slot, id);
        USED_ELEM_LEN.set(usedRing, RING_OFFSET, slot, writtenLength);
    }

    // ---------------------------------------------------------------- notifications

    @Override
    public boolean needsNotification() {
        // Full fence: our used.idx store must be visible before we read the driver's used_event
        // or flags. Release/acquire do not order a store before a later load; without the fence
        // the driver could re-enable notifications having seen our old used.idx while we read
        // its old used_event, and both would wait for the other.
        VarHandle.fullFence();
        if (!eventIdx) {
            // Plain read after the fence: the driver's avail.flags.
            return (u16(availRing, FLAGS_OFFSET) & VIRTQ_AVAIL_F_NO_INTERRUPT) == 0;
        }
        int old = signalledUsed;
        boolean valid = signalledUsedValid;
        int moved = usedSinceDecision;
        signalledUsed = usedIdx;
        signalledUsedValid = true;
        usedSinceDecision = 0;
        if (!valid || moved >= 0x10000) {
            return true;
        }
        // Plain read after the fence: the driver's used_event.
        int usedEvent = u16(availRing, usedEventOffset);
        return VirtqFlags.needEvent(usedEvent, usedIdx, old);
    }

    @Override
    public void disableNotifications() {
        notificationsEnabled = false;
        if (!eventIdx) {
            // Plain store of our flags: a hint the driver may act on late; harmless either way.
            U16.set(usedRing, FLAGS_OFFSET, (short) VIRTQ_USED_F_NO_NOTIFY);
        }
        // Under event idx, avail_event simply stops moving: the driver kicks at most once more.
    }

    @Override
    public boolean enableNotifications() {
        notificationsEnabled = true;
        if (eventIdx) {
            // Plain store of our avail_event: kick us when the driver fills slot lastAvailIdx.
            U16.set(usedRing, availEventOffset, (short) lastAvailIdx);
        } else {
            U16.set(usedRing, FLAGS_OFFSET, (short) 0);
        }
        // Full fence: the store above must be visible before we read avail.idx again. Otherwise
        // the driver could add a chain, read our stale flag or event, skip the kick, and we would
        // sleep with work pending.
        VarHandle.fullFence();
        // Acquire: the driver's index (pairs with its release store).
        int availIdx = Short.toUnsignedInt((short) U16.getAcquire(availRing, IDX_OFFSET));
        return availIdx != lastAvailIdx;
    }

    // ---------------------------------------------------------------- state

    @Override
    public QueueState saveState() {
        return new QueueState(geometry, QueuePosition.split(lastAvailIdx, usedIdx, inuse), shadowAvailIdx,
                signalledUsedValid);
    }

    @Override
    public void restoreState(QueueState state, RestoreMode mode) {
        Objects.requireNonNull(state, "state");
        Objects.requireNonNull(mode, "mode");
        try {
            QueueGeometry g = state.geometry();
            if (g.packed()) {
                throw VirtqueueException.state(queueIndex, "packed", 1, "a split queue cannot take packed state");
            }
            state.validate(queueIndex, memory);
            int newSize = g.size();
            MemorySegment newDesc = SplitRingLayout.area(queueIndex, memory, "descTableAddress",
                    g.descTableAddress(), g.descTableBytes(), 1);
            MemorySegment newAvail = SplitRingLayout.area(queueIndex, memory, "driverAreaAddress",
                    g.driverAreaAddress(), g.driverAreaBytes(), 2);
            MemorySegment newUsed = SplitRingLayout.area(queueIndex, memory, "deviceAreaAddress",
                    g.deviceAreaAddress(), g.deviceAreaBytes(), 4);
            int last = state.position().lastAvailIdx();
            int newUsedIdx;
            int newShadow;
            int newInuse;
            if (mode == RestoreMode.CLASSIC) {
                // As QEMU's virtio_load: the indices in guest memory are authoritative for the
                // derived fields, and must be consistent with last_avail_idx.
                // Acquire: the driver's index.
                int availIdx = Short.toUnsignedInt((short) U16.getAcquire(newAvail, IDX_OFFSET));
                if (((availIdx - last) & 0xffff) > newSize) {
                    throw VirtqueueException.indexJump(queueIndex, "avail.idx", availIdx, last, newSize);
                }
                // Plain read: used.idx is ours; nobody else writes it.
                newUsedIdx = u16(newUsed, IDX_OFFSET);
                newShadow = availIdx;
                newInuse = (last - newUsedIdx) & 0xffff;
                if (newInuse > newSize) {
                    throw VirtqueueException.state(queueIndex, "inuse", newInuse, String.format(
                            "last_avail_idx %d - used.idx %d is more than the queue size %d",
                            last, newUsedIdx, newSize));
                }
            } else {
                // Early load: the guest still runs on the source, indices in memory are in flux.
                newUsedIdx = last;
                newShadow = last;
                newInuse = 0;
            }
            geometry = g;
            size = newSize;
            mask = newSize - 1;
            eventIdx = g.eventIdx();
            descTable = newDesc;
            availRing = newAvail;
            usedRing = newUsed;
            usedEventOffset = SplitRingLayout.usedEventOffset(newSize);
            availEventOffset = SplitRingLayout.availEventOffset(newSize);
            lastAvailIdx = last;
            shadowAvailIdx = newShadow;
            usedIdx = newUsedIdx;
            inuse = newInuse;
            signalledUsed = newUsedIdx;
            signalledUsedValid = false;
            notificationsEnabled = true;
            brokenBy = null;
        } catch (VirtqueueException e) {
            brokenBy = e;
            throw e;
        } catch (GuestMemoryException e) {
            VirtqueueException wrapped = VirtqueueException.state(queueIndex, "ring area", e.guestAddress(),
                    e.getMessage());
            brokenBy = wrapped;
            throw wrapped;
        }
    }

    @Override
    public void resync(QueuePosition finalPosition) {
        resyncToBase(finalPosition);
    }

    /**
     * {@link #resync(QueuePosition)}, returning the queue's vhost vring base
     * ({@link VhostVringBase#encodeSplit}: the last avail idx); the per-queue step of
     * {@link QueueResync}. Every check is folded into one branch (non-short-circuit {@code |}):
     * a packed position or a wrap counter set, last or used outside [0, 65535], inuse outside
     * [0, size] (the unsigned compare catches negatives too), or used more than size behind last.
     * The cold path, {@link #refusal}, names the field and marks the queue broken. (A single sign
     * test over the same conditions measured slower here: C2 compiles the flags well.)
     */
    int resyncToBase(QueuePosition finalPosition) {
        int last = finalPosition.lastAvailIdx();
        int used = finalPosition.usedIdx();
        int newInuse = finalPosition.inuse();
        int n = size;
        boolean bad = finalPosition.packed() | finalPosition.lastAvailWrapCounter() | finalPosition.usedWrapCounter()
                | ((last | used) >>> 16) != 0 | Integer.compareUnsigned(newInuse, n) > 0
                | ((last - used) & 0xffff) > n;
        if (bad) {
            throw refusal(finalPosition);
        }
        lastAvailIdx = last;
        shadowAvailIdx = last;
        usedIdx = used;
        inuse = newInuse;
        signalledUsedValid = false;
        // VhostVringBase.encodeSplit without its range check: the same range was just checked.
        return last;
    }

    /**
     * The error for a final position {@link #resyncToBase} refused, naming the field (the format,
     * else {@link QueuePosition#check(int, int)}'s words); marks the queue broken.
     */
    private VirtqueueException refusal(QueuePosition position) {
        VirtqueueException error;
        if (position.packed()) {
            error = VirtqueueException.state(queueIndex, "position.packed", 1, "a packed position for a split ring");
        } else {
            try {
                position.check(queueIndex, size);
                error = VirtqueueException.state(queueIndex, "position", position.lastAvailIdx(),
                        "refused by the folded check alone");
            } catch (VirtqueueException e) {
                error = e;
            }
        }
        brokenBy = error;
        return error;
    }

    private void checkNotBroken() {
        if (brokenBy != null) {
            throw VirtqueueException.broken(queueIndex, brokenBy);
        }
    }

    @Override
    public String toString() {
        return "SplitDeviceQueue[" + queueIndex + ", size " + size + ", last_avail_idx " + lastAvailIdx
                + ", used_idx " + usedIdx + ", inuse " + inuse + (brokenBy != null ? ", BROKEN" : "") + "]";
    }
}

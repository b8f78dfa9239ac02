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

import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;

/**
 * The device side of a packed virtqueue (virtio 1.x section 2.8) over guest memory: takes
 * available chains in ring order, publishes used descriptors one at a time or in batches,
 * decides whether to notify the driver, and enables or disables the driver's notifications.
 *
 * <p>Everything the guest wrote is untrusted. A malformed chain throws {@link VirtqueueException}
 * naming the queue, head, descriptor, address and length; the queue is then broken: it takes and
 * publishes nothing more until {@link #restore} or {@link #reset}.
 *
 * <p>The ring parts are resolved to host segments once, at construction; take and publish then
 * go through static {@link VarHandle}s and allocate nothing. Not thread-safe: one device thread
 * per queue, as the spec's single-consumer model has it.
 */
public final class PackedDeviceQueue {
    private final String name;
    private final GuestMemory memory;
    private final int size;
    private final long descriptorRingAddress;
    private final long driverAreaAddress;
    private final long deviceAreaAddress;
    private final MemorySegment ring;
    /** Driver event suppression: written by the driver, read here; governs our used notifications. */
    private final MemorySegment driverEvent;
    /** Device event suppression: written here, read by the driver; governs its available notifications. */
    private final MemorySegment deviceEvent;
    private final boolean eventIdx;
    private final boolean indirectDesc;

    private int lastAvailIdx;
    private boolean lastAvailWrap = true;
    private int shadowAvailIdx;
    private boolean shadowAvailWrap = true;
    private int usedIdx;
    private boolean usedWrap = true;
    /** Chains taken and not yet published. */
    private int inuse;
    /** Ring descriptors those chains occupy: a used write may not run past them. */
    private int inflightDescriptors;
    /** Lap position of the used index at the last notification decision. */
    private int signalledUsed;
    private boolean signalledUsedValid;
    private boolean broken;

    /** Ring index of the first used descriptor of the open batch, or -1 when none is open. */
    private int batchFirstIdx = -1;
    private int batchFirstFlags;

    /**
     * A queue over the three ring parts at the given guest addresses.
     *
     * @param name                  names the queue in every error (for instance "net0/rx0")
     * @param size                  queue size, 1 to 32768
     * @param descriptorRingAddress the descriptor area: {@code size} descriptors, 16-byte aligned
     * @param driverAreaAddress     the driver event suppression structure, 4-byte aligned
     * @param deviceAreaAddress     the device event suppression structure, 4-byte aligned
     * @param eventIdx              whether VIRTIO_F_RING_EVENT_IDX was negotiated
     * @param indirectDesc          whether VIRTIO_F_INDIRECT_DESC was negotiated
     * @throws IllegalArgumentException when the size is out of range or a part is misaligned or not
     *                                  held whole by guest memory
     */
    public PackedDeviceQueue(String name, GuestMemory memory, int size, long descriptorRingAddress,
                             long driverAreaAddress, long deviceAreaAddress, boolean eventIdx, boolean indirectDesc) {
        PackedRing.checkQueueSize(size);
        this.name = name;
        this.memory = memory;
        this.size = size;
        this.descriptorRingAddress = descriptorRingAddress;
        this.driverAreaAddress = driverAreaAddress;
        this.deviceAreaAddress = deviceAreaAddress;
        this.ring = PackedRing.resolvePart(memory, name, "descriptor ring", descriptorRingAddress,
                (long) size * PackedRing.DESCRIPTOR_SIZE, PackedRing.DESCRIPTOR_RING_ALIGNMENT);
        this.driverEvent = PackedRing.resolvePart(memory, name, "driver event suppression", driverAreaAddress,
                PackedRing.EVENT_SUPPRESSION_SIZE, PackedRing.EVENT_SUPPRESSION_ALIGNMENT);
        this.deviceEvent = PackedRing.resolvePart(memory, name, "device event suppression", deviceAreaAddress,
                PackedRing.EVENT_SUPPRESSION_SIZE, PackedRing.EVENT_SUPPRESSION_ALIGNMENT);
        this.eventIdx = eventIdx;
        this.indirectDesc = indirectDesc;
    }

    /**
     * Takes the next available chain into {@code chain}, walking its descriptors (or its indirect
     * table) and checking each against the spec and guest memory.
     *
     * @param chain a holder with capacity for at least {@link #size()} elements
     * @return false when no chain is available
     * @throws VirtqueueException when the chain is malformed; the queue is then broken and
     *                            nothing was taken
     */
    public boolean take(DescriptorChain chain) {
        checkUsable();
        if (chain.capacity() < size) {
            throw new IllegalArgumentException("chain holder of " + chain.capacity() + " elements for a queue of " + size);
        }
        int head = lastAvailIdx;
        // acquire: pairs with the driver's release store of the head's flags; every descriptor of
        // the chain, the indirect table and the payload it wrote before are visible after it.
        int headFlags = Short.toUnsignedInt((short) DESC_FLAGS.getAcquire(ring, 0L, (long) head));
        if (!PackedRing.isAvailable(headFlags, lastAvailWrap)) {
            return false;
        }
        chain.reset(head);
        int idx = head;
        boolean wrap = lastAvailWrap;
        int flags = headFlags;
        int descriptors = 0;
        while (true) {
            // plain loads: ordered after the acquire of the head's flags above.
            long addr = (long) DESC_ADDR.get(ring, 0L, (long) idx);
            int len = (int) DESC_LEN.get(ring, 0L, (long) idx);
            if (descriptors > 0) {
                flags = Short.toUnsignedInt((short) DESC_FLAGS.get(ring, 0L, (long) idx));
                if (!PackedRing.isAvailable(flags, wrap)) {
                    throw fail(head, idx, addr, len, String.format(
                            "descriptor of a NEXT chain not marked available (flags 0x%04x, wrap counter %d)",
                            flags, wrap ? 1 : 0));
                }
            }
            descriptors++;
            if ((flags & VIRTQ_DESC_F_INDIRECT) != 0) {
                if (!indirectDesc) {
                    throw fail(head, idx, addr, len, "VIRTQ_DESC_F_INDIRECT without VIRTIO_F_INDIRECT_DESC");
                }
                if (descriptors > 1 || (flags & VIRTQ_DESC_F_NEXT) != 0) {
                    throw fail(head, idx, addr, len, "indirect descriptor in a NEXT chain");
                }
                walkIndirectTable(chain, head, idx, addr, len);
                chain.finish(Short.toUnsignedInt((short) DESC_ID.get(ring, 0L, (long) idx)), 1, true);
                break;
            }
            addElement(chain, head, idx, addr, len, (flags & VIRTQ_DESC_F_WRITE) != 0, "");
            if ((flags & VIRTQ_DESC_F_NEXT) == 0) {
                // The buffer id travels in the last descriptor of the chain (spec 2.8.6).
                chain.finish(Short.toUnsignedInt((short) DESC_ID.get(ring, 0L, (long) idx)), descriptors, false);
                break;
            }
            if (descriptors == size) {
                throw fail(head, idx, addr, len, "chain longer than the queue size " + size);
            }
            if (++idx == size) {
                idx = 0;
                wrap = !wrap;
            }
        }
        lastAvailIdx += descriptors;
        if (lastAvailIdx >= size) {
            lastAvailIdx -= size;
            lastAvailWrap = !lastAvailWrap;
        }
        shadowAvailIdx = lastAvailIdx;
        shadowAvailWrap = lastAvailWrap;
        inuse++;
        inflightDescriptors += descriptors;
        return true;
    }

    private void walkIndirectTable(DescriptorChain chain, int head, int idx, long tableAddress, int tableLength) {
        long length = Integer.toUnsignedLong(tableLength);
        if (length == 0 || length % PackedRing.DESCRIPTOR_SIZE != 0) {
            throw fail(head, idx, tableAddress, length, "indirect table length not a non-zero multiple of 16");
        }
        long entries = length / PackedRing.DESCRIPTOR_SIZE;
        if (entries > size) {
            throw fail(head, idx, tableAddress, length, "indirect table of " + entries + " descriptors, more than the queue size " + size);
        }
        int region = memory.findRegion(tableAddress, length);
        if (region < 0) {
            throw fail(head, idx, tableAddress, length, "indirect table " + memory.describeMiss(tableAddress, length));
        }
        GuestRegion r = memory.region(region);
        MemorySegment segment = r.segment();
        long base = tableAddress - r.guestAddress();
        for (int i = 0; i < entries; i++) {
            // plain loads: the table was written before the driver's release of the ring descriptor's flags.
            long addr = (long) INDIRECT_ADDR.get(segment, base, (long) i);
            int len = (int) INDIRECT_LEN.get(segment, base, (long) i);
            int flags = Short.toUnsignedInt((short) INDIRECT_FLAGS.get(segment, base, (long) i));
            if ((flags & VIRTQ_DESC_F_INDIRECT) != 0) {
                throw fail(head, i, addr, len, "VIRTQ_DESC_F_INDIRECT inside the indirect table at 0x"
                        + Long.toHexString(tableAddress) + " (entry " + i + ")");
            }
            // NEXT and the id are reserved in an indirect table: the entries are sequential.
            addElement(chain, head, i, addr, len, (flags & VIRTQ_DESC_F_WRITE) != 0, " (indirect table entry)");
        }
    }

    private void addElement(DescriptorChain chain, int head, int descriptor, long addr, int len, boolean writable, String where) {
        long length = Integer.toUnsignedLong(len);
        if (!writable && chain.writableCount() > 0) {
            throw fail(head, descriptor, addr, length, "device-readable descriptor after a device-writable one" + where);
        }
        long total = chain.readableBytes() + chain.writableBytes() + length;
        if (total > 0xFFFF_FFFFL) {
            throw fail(head, descriptor, addr, length, "total chain length " + total + " overflows 32 bits" + where);
        }
        int region = memory.findRegion(addr, length);
        if (region < 0) {
            throw fail(head, descriptor, addr, length, "buffer " + memory.describeMiss(addr, length) + where);
        }
        chain.add(addr, len, writable, region, addr - memory.region(region).guestAddress());
    }

    /** Whether a chain is available now (an acquire load of the next descriptor's flags). */
    public boolean hasAvailable() {
        // acquire: pairs with the driver's release store of the head's flags.
        int flags = Short.toUnsignedInt((short) DESC_FLAGS.getAcquire(ring, 0L, (long) lastAvailIdx));
        return PackedRing.isAvailable(flags, lastAvailWrap);
    }

    /** Publishes one used descriptor for a taken chain, with the number of bytes written into it. */
    public void publishUsed(DescriptorChain chain, int writtenLength) {
        publishUsed(chain.id(), chain.descriptorCount(), writtenLength);
    }

    /**
     * Publishes one used descriptor: buffer {@code id} whose chain occupied
     * {@code descriptorCount} ring descriptors, {@code writtenLength} bytes written into it. Made
     * visible to the driver at once (release store of its flags).
     */
    public void publishUsed(int id, int descriptorCount, int writtenLength) {
        if (batchFirstIdx >= 0) {
            throw new IllegalStateException("queue " + name + ": a used batch is open; add to it and flush it");
        }
        // The flags carry the wrap counter of the lap the entry is written on, before writeUsed
        // may flip it.
        int flags = usedFlags(writtenLength);
        int idx = writeUsed(id, descriptorCount, writtenLength);
        // release: the id, length, and every payload byte written into the buffer are visible
        // before the driver can see the descriptor used.
        DESC_FLAGS.setRelease(ring, 0L, (long) idx, (short) flags);
    }

    /** Adds a used descriptor to the open batch (opening one if needed); see {@link #flushUsed()}. */
    public void addUsed(DescriptorChain chain, int writtenLength) {
        addUsed(chain.id(), chain.descriptorCount(), writtenLength);
    }

    /**
     * Adds a used descriptor to the open batch. Every descriptor of the batch but the first gets
     * its flags at once; the first one's flags wait for {@link #flushUsed()}, so the driver, which
     * polls only its next used position, sees the whole batch or none of it (spec 2.8.13).
     */
    public void addUsed(int id, int descriptorCount, int writtenLength) {
        int flags = usedFlags(writtenLength);
        int idx = writeUsed(id, descriptorCount, writtenLength);
        if (batchFirstIdx < 0) {
            batchFirstIdx = idx;
            batchFirstFlags = flags;
        } else {
            // plain store: published by the release store of the batch's first flags in flushUsed.
            DESC_FLAGS.set(ring, 0L, (long) idx, (short) flags);
        }
    }

    /** Makes the open batch visible to the driver; does nothing when none is open. */
    public void flushUsed() {
        if (batchFirstIdx < 0) {
            return;
        }
        checkUsable();
        // release: every used descriptor of the batch (ids, lengths, later flags) and the payload
        // written are visible before the driver sees the batch's first descriptor used.
        DESC_FLAGS.setRelease(ring, 0L, (long) batchFirstIdx, (short) batchFirstFlags);
        batchFirstIdx = -1;
    }

    private int usedFlags(int writtenLength) {
        return PackedRing.usedFlags(usedWrap) | (writtenLength != 0 ? VIRTQ_DESC_F_WRITE : 0);
    }

    /** Writes id and length at the used index and advances it; the caller writes the flags. */
    private int writeUsed(int id, int descriptorCount, int writtenLength) {
        checkUsable();
        if (descriptorCount < 1 || descriptorCount > inflightDescriptors) {
            throw new IllegalStateException(String.format(
                    "queue %s: used entry for id %d over %d descriptors, but %d are in flight",
                    name, id, descriptorCount, inflightDescriptors));
        }
        int idx = usedIdx;
        // plain stores: published by the release store of the flags (here or in flushUsed).
        DESC_ID.set(ring, 0L, (long) idx, (short) id);
        DESC_LEN.set(ring, 0L, (long) idx, writtenLength);
        usedIdx += descriptorCount;
        if (usedIdx >= size) {
            usedIdx -= size;
            usedWrap = !usedWrap;
        }
        inuse--;
        inflightDescriptors -= descriptorCount;
        return idx;
    }

    /**
     * Whether to send the driver a used-buffer notification for what was published since the last
     * decision, as the driver event suppression structure asks: never when DISABLE, always when
     * ENABLE, and with EVENT_IDX when DESC, when the used index passed the driver's offset and wrap
     * counter (and always the first time after a resync).
     */
    public boolean needsNotification() {
        if (batchFirstIdx >= 0) {
            throw new IllegalStateException("queue " + name + ": flush the used batch before deciding to notify");
        }
        // full fence: our used flags stores are ordered before the load of the driver's event
        // suppression; otherwise we could read a stale DISABLE while the driver reads our stale
        // used flags, and both would wait.
        VarHandle.fullFence();
        // acquire: the driver writes desc before flags; seeing DESC makes its offset visible.
        int flags = Short.toUnsignedInt((short) EVENT_FLAGS.getAcquire(driverEvent, 0L)) & RING_EVENT_FLAGS_MASK;
        int offWrap = Short.toUnsignedInt((short) EVENT_DESC.get(driverEvent, 0L));
        int newLap = PackedRing.lapPosition(usedIdx, usedWrap, size);
        int oldLap = signalledUsed;
        boolean valid = signalledUsedValid;
        signalledUsed = newLap;
        signalledUsedValid = true;
        if (flags == RING_EVENT_FLAGS_DISABLE) {
            return false;
        }
        if (flags != RING_EVENT_FLAGS_DESC || !eventIdx) {
            // ENABLE, the reserved value 3, or DESC without EVENT_IDX: notify, the safe answer.
            return true;
        }
        return !valid || PackedRing.needsEvent(offWrap, newLap, oldLap, size);
    }

    /** Asks the driver not to send available-buffer notifications (a hint; it may still send). */
    public void disableNotifications() {
        // release: our store, ordered after everything we did before.
        EVENT_FLAGS.setRelease(deviceEvent, 0L, (short) RING_EVENT_FLAGS_DISABLE);
    }

    /**
     * Asks the driver for available-buffer notifications again: with EVENT_IDX, for the descriptor
     * at our last avail index and wrap counter; else for every buffer. Then re-checks the ring.
     *
     * @return whether a chain is already available (the caller must take it: no notification
     *         will come for it)
     */
    public boolean enableNotifications() {
        if (eventIdx) {
            // plain store: published by the release store of the flags below.
            EVENT_DESC.set(deviceEvent, 0L, (short) PackedRing.eventOffWrap(lastAvailIdx, lastAvailWrap));
            // release: the offset is visible before DESC is.
            EVENT_FLAGS.setRelease(deviceEvent, 0L, (short) RING_EVENT_FLAGS_DESC);
        } else {
            // release: our store.
            EVENT_FLAGS.setRelease(deviceEvent, 0L, (short) RING_EVENT_FLAGS_ENABLE);
        }
        // full fence: the enable is visible before we re-read the ring, so a driver that made a
        // chain available after reading DISABLE is seen here.
        VarHandle.fullFence();
        return hasAvailable();
    }

    /**
     * After the final indices arrive (migration): the shadow avail index takes the last avail
     * index and its wrap counter, and the next notification decision is made without history.
     */
    public void resync() {
        shadowAvailIdx = lastAvailIdx;
        shadowAvailWrap = lastAvailWrap;
        signalledUsedValid = false;
    }

    /**
     * Sets the ring positions, as restore from migration does. The descriptors between the used
     * position and the last avail position are in flight: {@code inuse} chains the device still
     * owes a used descriptor.
     */
    public void restoreIndices(int lastAvailIdx, boolean lastAvailWrap, int usedIdx, boolean usedWrap, int inuse) {
        if (lastAvailIdx < 0 || lastAvailIdx >= size || usedIdx < 0 || usedIdx >= size) {
            throw new IllegalArgumentException(String.format(
                    "queue %s: last avail idx %d / used idx %d out of a queue of %d", name, lastAvailIdx, usedIdx, size));
        }
        this.lastAvailIdx = lastAvailIdx;
        this.lastAvailWrap = lastAvailWrap;
        this.usedIdx = usedIdx;
        this.usedWrap = usedWrap;
        int pending = Math.floorMod(PackedRing.lapPosition(lastAvailIdx, lastAvailWrap, size)
                - PackedRing.lapPosition(usedIdx, usedWrap, size), 2 * size);
        if (pending > size) {
            throw new IllegalArgumentException(String.format(
                    "queue %s: used position (%d, wrap %b) is %d descriptors behind last avail (%d, wrap %b), more than the size",
                    name, usedIdx, usedWrap, pending, lastAvailIdx, lastAvailWrap));
        }
        if (inuse < 0 || inuse > pending) {
            throw new IllegalArgumentException(String.format(
                    "queue %s: inuse %d with %d descriptors in flight", name, inuse, pending));
        }
        this.inuse = inuse;
        this.inflightDescriptors = pending;
        this.batchFirstIdx = -1;
        this.broken = false;
        resync();
    }

    /** Back to the initial state: all indices 0, wrap counters 1, not broken. */
    public void reset() {
        restoreIndices(0, true, 0, true, 0);
    }

    private void checkUsable() {
        if (broken) {
            throw new IllegalStateException("queue " + name + " is broken; restore or reset it first");
        }
    }

    private VirtqueueException fail(int head, int descriptor, long address, long length, String reason) {
        broken = true;
        return new VirtqueueException(name, head, descriptor, address, length, reason);
    }

    /** The queue's name. */
    public String name() {
        return name;
    }

    /** The queue size. */
    public int size() {
        return size;
    }

    /** Guest address of the descriptor ring. */
    public long descriptorRingAddress() {
        return descriptorRingAddress;
    }

    /** Guest address of the driver event suppression structure (the driver area). */
    public long driverAreaAddress() {
        return driverAreaAddress;
    }

    /** Guest address of the device event suppression structure (the device area). */
    public long deviceAreaAddress() {
        return deviceAreaAddress;
    }

    /** Ring index of the next descriptor to take. */
    public int lastAvailIdx() {
        return lastAvailIdx;
    }

    /** Avail wrap counter that goes with {@link #lastAvailIdx()}. */
    public boolean lastAvailWrapCounter() {
        return lastAvailWrap;
    }

    /** Ring index the next used descriptor goes to. */
    public int usedIdx() {
        return usedIdx;
    }

    /** Used wrap counter that goes with {@link #usedIdx()}. */
    public boolean usedWrapCounter() {
        return usedWrap;
    }

    /** Shadow avail index (kept equal to last avail after each take and at resync). */
    public int shadowAvailIdx() {
        return shadowAvailIdx;
    }

    /** Wrap counter of the shadow avail index. */
    public boolean shadowAvailWrapCounter() {
        return shadowAvailWrap;
    }

    /** Chains taken and not yet published. */
    public int inuse() {
        return inuse;
    }

    /** Lap position of the used index at the last notification decision. */
    public int signalledUsed() {
        return signalledUsed;
    }

    /** Whether {@link #signalledUsed()} is meaningful (false after a resync). */
    public boolean signalledUsedValid() {
        return signalledUsedValid;
    }

    /** Whether VIRTIO_F_RING_EVENT_IDX is in effect. */
    public boolean eventIdx() {
        return eventIdx;
    }

    /** Whether VIRTIO_F_INDIRECT_DESC is in effect. */
    public boolean indirectDesc() {
        return indirectDesc;
    }

    /** Whether a malformed chain broke the queue. */
    public boolean isBroken() {
        return broken;
    }
}

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
 * enables or disables used-buffer notifications.
 *
 * <p>Buffer ids are handed out from a free list of {@code size} ids; the driver remembers how many
 * ring descriptors each id's chain occupies, to skip them when the id comes back used (spec
 * 2.8.6). Steady-state add and poll allocate nothing. Not thread-safe: one driver thread.
 */
public final class PackedDriverQueue {
    private final String name;
    private final GuestMemory memory;
    private final int size;
    private final MemorySegment ring;
    /** Driver event suppression: written here, read by the device. */
    private final MemorySegment driverEvent;
    /** Device event suppression: written by the device, read here. */
    private final MemorySegment deviceEvent;
    private final boolean eventIdx;

    private int nextAvail;
    private boolean availWrap;
    private int nextUsed;
    private boolean usedWrap;
    private int freeDescriptors;
    private final int[] freeIds;
    private int freeIdCount;
    /** Ring descriptors of the chain behind each id in flight; 0 for a free id. */
    private final int[] chainDescriptors;
    /** Lap position of the avail index at the last kick decision. */
    private int kickedLap;
    private int lastUsedLength;

    /**
     * A driver over a fresh ring at position 0, wrap counters 1 (the device's initial state).
     *
     * @see #PackedDriverQueue(String, GuestMemory, int, long, long, long, boolean, int, boolean)
     */
    public PackedDriverQueue(String name, GuestMemory memory, int size, long descriptorRingAddress,
                             long driverAreaAddress, long deviceAreaAddress, boolean eventIdx) {
        this(name, memory, size, descriptorRingAddress, driverAreaAddress, deviceAreaAddress, eventIdx, 0, true);
    }

    /**
     * A driver that starts at ring index {@code start} on lap {@code wrap}, as if every earlier
     * descriptor had been made available and used (a device restored at the same position with
     * nothing in flight continues from there). It formats the ring accordingly: descriptors
     * before {@code start} marked used on this lap, the others used on the previous lap, so
     * neither side mistakes one for available or used. The event suppression structures are
     * zeroed (ENABLE).
     */
    public PackedDriverQueue(String name, GuestMemory memory, int size, long descriptorRingAddress,
                             long driverAreaAddress, long deviceAreaAddress, boolean eventIdx, int start, boolean wrap) {
        PackedRing.checkQueueSize(size);
        if (start < 0 || start >= size) {
            throw new IllegalArgumentException("start index " + start + " outside a queue of " + size);
        }
        this.name = name;
        this.memory = memory;
        this.size = size;
        this.ring = PackedRing.resolvePart(memory, name, "descriptor ring", descriptorRingAddress,
                (long) size * PackedRing.DESCRIPTOR_SIZE, PackedRing.DESCRIPTOR_RING_ALIGNMENT);
        this.driverEvent = PackedRing.resolvePart(memory, name, "driver event suppression", driverAreaAddress,
                PackedRing.EVENT_SUPPRESSION_SIZE, PackedRing.EVENT_SUPPRESSION_ALIGNMENT);
        this.deviceEvent = PackedRing.resolvePart(memory, name, "device event suppression", deviceAreaAddress,
                PackedRing.EVENT_SUPPRESSION_SIZE, PackedRing.EVENT_SUPPRESSION_ALIGNMENT);
        this.eventIdx = eventIdx;
        ring.fill((byte) 0);
        for (int i = 0; i < size; i++) {
            DESC_FLAGS.set(ring, 0L, (long) i, (short) PackedRing.usedFlags(i < start ? wrap : !wrap));
        }
        driverEvent.fill((byte) 0);
        deviceEvent.fill((byte) 0);
        this.nextAvail = start;
        this.availWrap = wrap;
        this.nextUsed = start;
        this.usedWrap = wrap;
        this.kickedLap = PackedRing.lapPosition(start, wrap, size);
        this.freeDescriptors = size;
        this.freeIds = new int[size];
        this.chainDescriptors = new int[size];
        for (int i = 0; i < size; i++) {
            freeIds[i] = size - 1 - i;
        }
        this.freeIdCount = size;
        // release: the formatted ring is visible before anything we publish later.
        VarHandle.releaseFence();
    }

    /**
     * Makes a chain of {@code count} elements available through {@code count} ring descriptors
     * linked by NEXT, the first {@code readableCount} device-readable, the rest device-writable.
     *
     * @return the buffer id, or -1 when the ring has not enough free descriptors
     */
    public int add(long[] addresses, int[] lengths, int readableCount, int count) {
        checkCount(count, readableCount, size);
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
        // The id goes in the last descriptor of the chain (spec 2.8.6); the others keep stale ids.
        DESC_ID.set(ring, 0L, (long) last, (short) id);
        chainDescriptors[id] = count;
        freeDescriptors -= count;
        // release: the chain's descriptors (and the payload the caller wrote) are visible before
        // the device can see the head available.
        DESC_FLAGS.setRelease(ring, 0L, (long) head, (short) headFlags);
        return id;
    }

    /**
     * Makes a chain available through one ring descriptor pointing at an indirect table, written
     * at {@code tableAddress} in guest memory (16 bytes per element).
     *
     * @return the buffer id, or -1 when the ring is full
     * @throws IllegalArgumentException when the table does not fit in guest memory
     */
    public int addIndirect(long tableAddress, long[] addresses, int[] lengths, int readableCount, int count) {
        checkCount(count, readableCount, Integer.MAX_VALUE / PackedRing.DESCRIPTOR_SIZE);
        long tableLength = (long) count * PackedRing.DESCRIPTOR_SIZE;
        int region = memory.findRegion(tableAddress, tableLength);
        if (region < 0) {
            throw new IllegalArgumentException(String.format("queue %s: indirect table [0x%x, +%d) %s",
                    name, tableAddress, tableLength, memory.describeMiss(tableAddress, tableLength)));
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
     * Writes ring descriptors verbatim (with the avail bits of the current lap added), the first
     * one's flags last, and advances the avail position past them. For test rigs that feed the
     * device malformed chains: nothing is checked and no id is accounted; used descriptors for
     * such chains are not expected.
     *
     * @return the ring index of the first descriptor
     */
    public int addRaw(long[] addresses, int[] lengths, int[] ids, int[] flags, int count) {
        if (count < 1 || count > freeDescriptors) {
            throw new IllegalArgumentException("raw chain of " + count + " with " + freeDescriptors + " free");
        }
        int head = nextAvail;
        int headFlags = 0;
        for (int i = 0; i < count; i++) {
            int idx = nextAvail;
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

    private static void checkCount(int count, int readableCount, int max) {
        if (count < 1 || count > max || readableCount < 0 || readableCount > count) {
            throw new IllegalArgumentException("chain of " + count + " elements, " + readableCount + " readable");
        }
    }

    private void advanceAvail() {
        if (++nextAvail == size) {
            nextAvail = 0;
            availWrap = !availWrap;
        }
    }

    /**
     * Whether to notify the device of the chains added since the last decision, as the device
     * event suppression structure asks (never when DISABLE; with EVENT_IDX and DESC, when the avail
     * position passed the device's offset and wrap counter; otherwise always).
     */
    public boolean kickNeeded() {
        // full fence: the flags stores that made our chains available are ordered before the load
        // of the device's event suppression (spec: barrier before reading the Device Area).
        VarHandle.fullFence();
        // acquire: the device writes desc before flags; seeing DESC makes its offset visible.
        int flags = Short.toUnsignedInt((short) EVENT_FLAGS.getAcquire(deviceEvent, 0L)) & RING_EVENT_FLAGS_MASK;
        int offWrap = Short.toUnsignedInt((short) EVENT_DESC.get(deviceEvent, 0L));
        int newLap = PackedRing.lapPosition(nextAvail, availWrap, size);
        int oldLap = kickedLap;
        kickedLap = newLap;
        if (flags == RING_EVENT_FLAGS_DISABLE) {
            return false;
        }
        if (flags == RING_EVENT_FLAGS_DESC && eventIdx) {
            return PackedRing.needsEvent(offWrap, newLap, oldLap, size);
        }
        return true;
    }

    /**
     * Collects the next used descriptor.
     *
     * @return its buffer id, or -1 when none is used yet; the length is then in {@link #lastUsedLength()}
     * @throws VirtqueueException when the device returned an id that is not in flight
     */
    public int pollUsed() {
        // acquire: pairs with the device's release store of the flags; id, length and the payload
        // the device wrote are visible after it.
        int flags = Short.toUnsignedInt((short) DESC_FLAGS.getAcquire(ring, 0L, (long) nextUsed));
        if (!PackedRing.isUsed(flags, usedWrap)) {
            return -1;
        }
        int id = Short.toUnsignedInt((short) DESC_ID.get(ring, 0L, (long) nextUsed));
        int len = (int) DESC_LEN.get(ring, 0L, (long) nextUsed);
        if (id >= size || chainDescriptors[id] == 0) {
            throw new VirtqueueException(name, nextUsed, nextUsed, -1, Integer.toUnsignedLong(len),
                    "device returned buffer id " + id + ", which is not in flight");
        }
        // Element length is reserved in a used descriptor without WRITE.
        lastUsedLength = (flags & VIRTQ_DESC_F_WRITE) != 0 ? len : 0;
        int descriptors = chainDescriptors[id];
        chainDescriptors[id] = 0;
        freeIds[freeIdCount++] = id;
        freeDescriptors += descriptors;
        nextUsed += descriptors;
        if (nextUsed >= size) {
            nextUsed -= size;
            usedWrap = !usedWrap;
        }
        return id;
    }

    /** Bytes the device wrote into the buffer last returned by {@link #pollUsed()}. */
    public int lastUsedLength() {
        return lastUsedLength;
    }

    /** Whether a used descriptor waits at the next used position (acquire load). */
    public boolean hasUsed() {
        // acquire: as in pollUsed.
        int flags = Short.toUnsignedInt((short) DESC_FLAGS.getAcquire(ring, 0L, (long) nextUsed));
        return PackedRing.isUsed(flags, usedWrap);
    }

    /** Asks the device not to send used-buffer notifications (a hint). */
    public void disableUsedNotifications() {
        // release: our store.
        EVENT_FLAGS.setRelease(driverEvent, 0L, (short) RING_EVENT_FLAGS_DISABLE);
    }

    /**
     * Asks for used-buffer notifications again: with EVENT_IDX for the descriptor at our next used
     * position and wrap counter, else for every buffer; then re-checks the ring.
     *
     * @return whether a used descriptor is already waiting (no notification will come for it)
     */
    public boolean enableUsedNotifications() {
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

    /** Asks for a used-buffer notification only once the used position reaches {@code index} on lap {@code wrap} (EVENT_IDX). */
    public void requestUsedEventAt(int index, boolean wrap) {
        EVENT_DESC.set(driverEvent, 0L, (short) PackedRing.eventOffWrap(index, wrap));
        // release: the offset is visible before DESC is.
        EVENT_FLAGS.setRelease(driverEvent, 0L, (short) RING_EVENT_FLAGS_DESC);
    }

    /** Ring descriptors free for new chains. */
    public int freeDescriptors() {
        return freeDescriptors;
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

    /** The queue size. */
    public int size() {
        return size;
    }
}

package io.vhostffm.testkit;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vring.GuestMemory;
import io.vhostffm.vring.PackedDriverQueue;
import io.vhostffm.vring.PackedRing;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;

/**
 * A guest driver that breaks the rules of its virtqueues on purpose, for tests of what a device
 * does with hostile input: it writes descriptors and the available ring of a {@link FakeGuest}'s
 * queues directly in guest memory, bypassing the fake guest's own driver bookkeeping (so a queue
 * it touched is the fake guest's no longer: reset the device and boot again afterwards).
 *
 * <p>Split rings: write any descriptor field ({@link #writeDescriptor}), offer any head
 * ({@link #offer}), move the available index by any amount ({@link #moveAvailIndex}), build a
 * chain that loops ({@link #loopChain}), and overwrite a descriptor the device was already told
 * about ({@link #rewriteAddress}). Packed rings ({@link #offerPacked}): descriptors with any
 * address, length, buffer id and flags made available at the driver's position, each with the
 * avail/used bits of its lap or of the other lap (wrap-counter abuse); {@link #overlongPackedChain}
 * builds a chain of NEXT descriptors that runs round the whole ring to its own head. A queue's
 * addresses are changed through the transport's registers, which is the device's business, not
 * this class's.
 *
 * <p>Canaries: {@link #paintCanaries()} fills every byte of guest memory that no area of the
 * {@link GuestLayout} holds (the tails of the ring parts' pages, the ends of the regions) with a
 * pattern derived from the address; {@link #damagedCanary()} names the first byte that changed.
 * Nothing this class makes the device write points there, so a changed canary is a device write
 * outside what the guest gave it. The hole between the regions is not mapped at all: a device
 * access there would fault the process.
 *
 * <p>Ordering: descriptors and ring entries are written first, then the available index with a
 * release fence before it, as a driver must (the device reads the index with acquire). Not
 * thread-safe: one thread per guest.
 */
public final class HostileGuest {
    /** VIRTQ_DESC_F_NEXT. */
    public static final int F_NEXT = 1;
    /** VIRTQ_DESC_F_WRITE. */
    public static final int F_WRITE = 2;
    /** VIRTQ_DESC_F_INDIRECT. */
    public static final int F_INDIRECT = 4;

    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** VIRTQ_DESC_F_AVAIL (packed). */
    public static final int F_AVAIL = PackedRing.VIRTQ_DESC_F_AVAIL;
    /** VIRTQ_DESC_F_USED (packed). */
    public static final int F_USED = PackedRing.VIRTQ_DESC_F_USED;

    /**
     * One packed ring descriptor as {@link #offerPacked} writes it.
     *
     * @param flags     NEXT, WRITE, INDIRECT as wanted; the avail/used bits are replaced
     * @param otherLap  true: the avail/used bits of the other lap than the descriptor's slot is on
     *                  (wrap-counter abuse), false: those of its own lap
     */
    public record PackedDescriptor(long address, int length, int id, int flags, boolean otherLap) {
        /** A descriptor of its own lap. */
        public static PackedDescriptor of(long address, int length, int id, int flags) {
            return new PackedDescriptor(address, length, id, flags, false);
        }
    }

    private final FakeGuest guest;
    private final GuestLayout layout;
    private final GuestMemory memory;
    private final List<GuestArea> canaries;
    /** What each canary holds when intact ({@link #pattern}), made once. */
    private final List<MemorySegment> canaryPatterns;
    /** Packed: where the next {@link #offerPacked} writes per queue, and its lap; -1 until first used. */
    private final int[] packedNext;
    private final boolean[] packedWrap;
    /**
     * Split: every value this driver has published as a queue's available index (and the one it
     * found there first), per queue; null until the queue is first touched.
     */
    private final BitSet[] published;

    /** A hostile driver over {@code guest}'s memory and layout (split or packed rings, as the guest drives). */
    public HostileGuest(FakeGuest guest) {
        this.guest = guest;
        this.layout = guest.layout();
        this.memory = guest.memory();
        this.canaries = gaps(layout);
        this.canaryPatterns = patterns(canaries);
        this.packedNext = new int[layout.queueCount()];
        this.packedWrap = new boolean[layout.queueCount()];
        this.published = new BitSet[layout.queueCount()];
        Arrays.fill(packedNext, -1);
    }

    /** Every range of the two regions that no area of {@code layout} holds, in address order. */
    public static List<GuestArea> gaps(GuestLayout layout) {
        List<GuestArea> areas = new ArrayList<>(layout.areas());
        areas.sort(Comparator.comparingLong(GuestArea::address));
        List<GuestArea> gaps = new ArrayList<>();
        for (GuestArea region : List.of(layout.ringRegion(), layout.bufferRegion())) {
            long end = region.address() + layout.regions().get(region == layout.ringRegion() ? 0 : 1).size();
            long at = region.address();
            for (GuestArea a : areas) {
                if (a.address() < region.address() || a.address() >= end) {
                    continue;
                }
                if (a.address() > at) {
                    gaps.add(new GuestArea("canary before " + a.name(), at, a.address() - at));
                }
                at = Math.max(at, a.end());
            }
            if (end > at) {
                gaps.add(new GuestArea("canary at the end of the " + region.name(), at, end - at));
            }
        }
        return List.copyOf(gaps);
    }

    /** The fake guest this driver shares memory with. */
    public FakeGuest guest() {
        return guest;
    }

    /** The ranges {@link #paintCanaries()} fills. */
    public List<GuestArea> canaryAreas() {
        return canaries;
    }

    /** Fills every canary range with its pattern. */
    public void paintCanaries() {
        for (int k = 0; k < canaries.size(); k++) {
            GuestArea c = canaries.get(k);
            MemorySegment.copy(canaryPatterns.get(k), 0, memory.slice(c.address(), c.size()), 0, c.size());
        }
    }

    /** The first canary byte that is not its pattern, named with its area and address; empty when all hold. */
    public Optional<String> damagedCanary() {
        for (int k = 0; k < canaries.size(); k++) {
            GuestArea c = canaries.get(k);
            MemorySegment s = memory.slice(c.address(), c.size());
            // mismatch: the JDK's vectorised compare, not a loop of ours (a fuzzer instruments
            // every branch of a loop here, and this runs after every input)
            long i = MemorySegment.mismatch(s, 0, c.size(), canaryPatterns.get(k), 0, c.size());
            if (i >= 0) {
                byte b = s.get(JAVA_BYTE, i);
                return Optional.of(String.format("%s: byte at guest address 0x%x is 0x%02x, not 0x%02x", c,
                        c.address() + i, b & 0xff, pattern(c.address() + i) & 0xff));
            }
        }
        return Optional.empty();
    }

    /** Each canary's pattern, in the order of {@link #canaries}. */
    private static List<MemorySegment> patterns(List<GuestArea> canaries) {
        List<MemorySegment> out = new ArrayList<>();
        for (GuestArea c : canaries) {
            byte[] p = new byte[Math.toIntExact(c.size())];
            for (int i = 0; i < p.length; i++) {
                p[i] = pattern(c.address() + i);
            }
            out.add(MemorySegment.ofArray(p));
        }
        return List.copyOf(out);
    }

    private static byte pattern(long address) {
        return (byte) (0xa5 ^ (address * 0x9e3779b1L >>> 24));
    }

    /** Queue size of virtqueue {@code queue}. */
    public int size(int queue) {
        return layout.queueSize(queue);
    }

    /**
     * Writes descriptor {@code index} of virtqueue {@code queue}'s table: any address, length,
     * flags and next, unchecked (index taken modulo the queue size).
     */
    public void writeDescriptor(int queue, int index, long address, int length, int flags, int next) {
        requireSplit();
        long at = descriptor(queue, index);
        memory.slice(at, 16).set(U64, 0, address);
        memory.slice(at, 16).set(U32, 8, length);
        memory.slice(at, 16).set(U16, 12, (short) flags);
        memory.slice(at, 16).set(U16, 14, (short) next);
    }

    /** The address field of descriptor {@code index} of virtqueue {@code queue}. */
    public long descriptorAddressField(int queue, int index) {
        requireSplit();
        return memory.slice(descriptor(queue, index), 16).get(U64, 0);
    }

    /** Overwrites only the address field of a descriptor, whether or not the device was told about it. */
    public void rewriteAddress(int queue, int index, long address) {
        requireSplit();
        memory.slice(descriptor(queue, index), 16).set(U64, 0, address);
    }

    private long descriptor(int queue, int index) {
        return layout.descAddress(queue) + 16L * Math.floorMod(index, size(queue));
    }

    /** The available ring's index ({@code avail->idx}) as it is in guest memory now. */
    public int availIndex(int queue) {
        requireSplit();
        return memory.slice(layout.driverAreaAddress(queue) + 2, 2).get(U16, 0) & 0xffff;
    }

    /** The used ring's index ({@code used->idx}) as the device last published it. */
    public int usedIndex(int queue) {
        requireSplit();
        short idx = memory.slice(layout.deviceAreaAddress(queue) + 2, 2).get(U16, 0);
        VarHandle.acquireFence(); // the device's used elements before its index
        return idx & 0xffff;
    }

    /** The head of available ring entry {@code position} (modulo the queue size). */
    public int availEntry(int queue, int position) {
        requireSplit();
        return memory.slice(layout.driverAreaAddress(queue) + 4 + 2L * Math.floorMod(position, size(queue)), 2)
                .get(U16, 0) & 0xffff;
    }

    /**
     * Makes {@code heads} available in order after the current available index, whatever they
     * are (out of range, already in flight, the same twice), then moves the index by their count.
     */
    public void offer(int queue, int... heads) {
        requireSplit();
        int idx = availIndex(queue);
        long ring = layout.driverAreaAddress(queue) + 4;
        for (int head : heads) {
            memory.slice(ring + 2L * (idx % size(queue)), 2).set(U16, 0, (short) head);
            idx = (idx + 1) & 0xffff;
        }
        publishAvailIndex(queue, idx);
    }

    /** Moves the available index by {@code by} (16-bit wraparound) without writing ring entries. */
    public void moveAvailIndex(int queue, int by) {
        requireSplit();
        publishAvailIndex(queue, (availIndex(queue) + by) & 0xffff);
    }

    /**
     * Makes {@code head} available in a way no earlier index trick of this driver can hide from
     * the device: every available ring entry names {@code head}, then the index moves forward to
     * the nearest value this driver has not published before on {@code queue}.
     *
     * <p>Why: after {@link #moveAvailIndex} moved the index back (by -1, say) and an offer moved
     * it forward again, the index can be back at the very value the device last read; the device
     * then rightly sees nothing new, and an offer made that way is invisible to it. The position
     * the device has reached is always a value it read from this index, so one never published
     * differs from it: the device sees either new entries (each naming {@code head}, whichever
     * slot it reads from) or an index that moved by more than the queue size.
     *
     * @return the available index published
     */
    public int offerUnmistakably(int queue, int head) {
        requireSplit();
        BitSet seen = published(queue);
        int idx = availIndex(queue);
        int next = (idx + 1) & 0xffff;
        while (seen.get(next)) {
            next = (next + 1) & 0xffff;
            if (next == idx) {
                throw new IllegalStateException("queue " + queue + ": every available index value was published");
            }
        }
        long ring = layout.driverAreaAddress(queue) + 4;
        for (int slot = 0; slot < size(queue); slot++) {
            memory.slice(ring + 2L * slot, 2).set(U16, 0, (short) head);
        }
        publishAvailIndex(queue, next);
        return next;
    }

    /** The values published as {@code queue}'s available index, from the one found there first. */
    private BitSet published(int queue) {
        if (published[queue] == null) {
            published[queue] = new BitSet(0x10000);
            published[queue].set(availIndex(queue));
        }
        return published[queue];
    }

    private void publishAvailIndex(int queue, int idx) {
        published(queue).set(idx);
        VarHandle.releaseFence(); // descriptors and ring entries before the index the device acquires
        memory.slice(layout.driverAreaAddress(queue) + 2, 2).set(U16, 0, (short) idx);
        VarHandle.fullFence(); // the index before the kick the caller sends
    }

    /**
     * Writes a two-descriptor loop, {@code first -> second -> first}, both device-readable (or
     * writable with {@code F_WRITE} in {@code flags}) over {@code length} bytes at {@code address},
     * and offers {@code first}.
     *
     * @return the head offered
     */
    public int loopChain(int queue, int first, int second, long address, int length, int flags) {
        requireSplit();
        writeDescriptor(queue, first, address, length, flags | F_NEXT, second);
        writeDescriptor(queue, second, address, length, flags | F_NEXT, first);
        offer(queue, first);
        return first;
    }

    private void requireSplit() {
        if (guest.packed()) {
            throw new IllegalStateException("a split ring operation on a guest that drives packed rings");
        }
    }

    /**
     * Packed: writes {@code descriptors} into virtqueue {@code queue}'s descriptor ring from the
     * driver's next available slot on (the fake guest's position the first time, then where the
     * previous call stopped), wrapping round the ring and flipping the lap as a driver does; each
     * descriptor's avail/used bits those of its slot's lap, or of the other lap where it says so.
     * The head's flags are stored last, after a release fence, so a device sees the chain whole
     * or not at all. The fake guest's driver is not told. Does not kick.
     *
     * @return the ring slot of the head
     * @throws IllegalStateException when the guest drives split rings
     */
    public int offerPacked(int queue, PackedDescriptor... descriptors) {
        if (!guest.packed()) {
            throw new IllegalStateException("a packed ring operation on a guest that drives split rings");
        }
        if (packedNext[queue] < 0) {
            PackedDriverQueue driver = (PackedDriverQueue) guest.queue(queue);
            packedNext[queue] = driver.nextAvail();
            packedWrap[queue] = driver.availWrapCounter();
        }
        int head = packedNext[queue];
        int headFlags = 0;
        for (int i = 0; i < descriptors.length; i++) {
            PackedDescriptor d = descriptors[i];
            int slot = packedNext[queue];
            boolean lap = packedWrap[queue] ^ d.otherLap();
            int flags = (d.flags() & ~(F_AVAIL | F_USED)) | PackedRing.availFlags(lap);
            MemorySegment at = memory.slice(layout.descAddress(queue) + 16L * slot, 16);
            at.set(U64, 0, d.address());
            at.set(U32, 8, d.length());
            at.set(U16, 12, (short) d.id());
            if (i == 0) {
                headFlags = flags;
            } else {
                at.set(U16, 14, (short) flags);
            }
            if (++packedNext[queue] == size(queue)) {
                packedNext[queue] = 0;
                packedWrap[queue] = !packedWrap[queue];
            }
        }
        VarHandle.releaseFence(); // the chain's descriptors before the head's flags the device acquires
        memory.slice(layout.descAddress(queue) + 16L * head, 16).set(U16, 14, (short) headFlags);
        VarHandle.fullFence(); // the head's flags before the kick the caller sends
        return head;
    }

    /**
     * Packed: a chain of as many descriptors as the queue has slots, each with NEXT, over
     * {@code length} bytes at {@code address}, buffer id {@code id}: it runs round the whole ring
     * to its own head (the packed form of a loop). Does not kick.
     *
     * @return the ring slot of the head
     */
    public int overlongPackedChain(int queue, long address, int length, int id) {
        PackedDescriptor[] chain = new PackedDescriptor[size(queue)];
        Arrays.fill(chain, PackedDescriptor.of(address, length, id, F_NEXT));
        return offerPacked(queue, chain);
    }

    /** Rings virtqueue {@code queue}'s doorbell through the guest's transport. */
    public void kick(int queue) throws NativeCallException {
        guest.transport().kick(queue);
    }
}

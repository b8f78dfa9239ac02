package io.vhostffm.testkit;

import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.NativeCallException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * Where a {@link FakeGuest} keeps everything in guest-physical memory, computed from the number of
 * queue pairs and the sizes: nothing is a hand-picked constant, so any pair count from 1 to the
 * device's maximum gets rings that cannot overlap, and the constructor proves it
 * ({@link #checkDisjoint}).
 *
 * <h2>Shape</h2>
 * Two memory regions with a hole between them, as a real guest's RAM below and above a PCI hole:
 * <ul>
 *   <li>the ring region at guest address 0: for each virtqueue in index order (data queues
 *       {@code 0 .. 2*pairs-1}, then the control queue {@code 2*pairs}) its descriptor table or
 *       ring, driver area (split: available ring; packed: driver event suppression) and device
 *       area (split: used ring; packed: device event suppression), each on its own pages; then one
 *       indirect table per descriptor of each transmit queue;</li>
 *   <li>the hole: from the end of the ring region to the next 1 GiB boundary; nothing is mapped
 *       there, so a buffer address in it is bad guest input;</li>
 *   <li>the buffer region from that boundary: per pair one receive slot and one transmit slot per
 *       descriptor, then one page of control-queue buffers.</li>
 * </ul>
 * Each ring part is sized for the split format, which needs at least as much as the packed one,
 * so one layout serves both formats.
 */
public final class GuestLayout {
    /** Bytes of one page: every ring part and area starts on its own page. */
    public static final long PAGE = 4096;
    /** Bytes of one transmit slot: a virtio-net header and a frame of up to 1514 bytes, in pieces with gaps. */
    public static final long TX_SLOT = 4096;
    /** Descriptors one indirect table holds at most. */
    public static final int INDIRECT_DESCRIPTORS = 16;
    /** Bytes of one indirect table. */
    public static final long INDIRECT_TABLE = 16L * INDIRECT_DESCRIPTORS;
    /** The buffer region starts at a multiple of this, above the ring region and a hole. */
    public static final long BUFFER_REGION_ALIGNMENT = 0x4000_0000L;
    /** Gap, in bytes, a receive slot keeps after its first piece when a chain splits the header. */
    public static final int RX_PIECE_GAP = 64;

    /**
     * What the layout is computed from.
     *
     * @param pairs queue pairs, 1..0x8000
     * @param queueSize descriptors of each data queue, 1..32768
     * @param controlQueueSize descriptors of the control queue, 1..32768
     * @param rxBufferSize bytes of one receive buffer (the device-writable length of a receive chain)
     */
    public record Spec(int pairs, int queueSize, int controlQueueSize, int rxBufferSize) {
        /** Checks the ranges. */
        public Spec {
            check(pairs >= 1 && pairs <= 0x8000, "pairs", pairs, "1..0x8000");
            check(queueSize >= 1 && queueSize <= 32768, "queueSize", queueSize, "1..32768");
            check(controlQueueSize >= 1 && controlQueueSize <= 32768, "controlQueueSize", controlQueueSize, "1..32768");
            check(rxBufferSize >= 16 && rxBufferSize <= 65536, "rxBufferSize", rxBufferSize, "16..65536");
        }

        /** {@code pairs} pairs of 256-descriptor queues, a 64-descriptor control queue, 2 KiB receive buffers. */
        public static Spec of(int pairs) {
            return new Spec(pairs, 256, 64, 2048);
        }

        /** The same with data queues of {@code size} descriptors. */
        public Spec withQueueSize(int size) {
            return new Spec(pairs, size, controlQueueSize, rxBufferSize);
        }

        /** The same with receive buffers of {@code bytes}. */
        public Spec withRxBufferSize(int bytes) {
            return new Spec(pairs, queueSize, controlQueueSize, bytes);
        }

        private static void check(boolean ok, String field, int value, String range) {
            if (!ok) {
                throw new IllegalArgumentException("guest layout: " + field + " " + value + " outside " + range);
            }
        }
    }

    private final Spec spec;
    private final long[] desc;
    private final long[] driverArea;
    private final long[] deviceArea;
    private final long[] indirect;
    private final long[] rxSlots;
    private final long[] txSlots;
    private final long rxSlotSize;
    private final long controlBuffers;
    private final GuestArea ringRegion;
    private final GuestArea hole;
    private final GuestArea bufferRegion;
    private final List<GuestArea> areas = new ArrayList<>();

    /**
     * Computes the layout of {@code spec}.
     *
     * @throws IllegalStateException naming two areas when they overlap (a defect of this class)
     */
    public GuestLayout(Spec spec) {
        this.spec = spec;
        int queues = 2 * spec.pairs() + 1;
        desc = new long[queues];
        driverArea = new long[queues];
        deviceArea = new long[queues];
        long next = 0;
        for (int q = 0; q < queues; q++) {
            int size = queueSize(q);
            desc[q] = next;
            next = place("virtqueue " + q + " descriptors", next, 16L * size);
            driverArea[q] = next;
            next = place("virtqueue " + q + " driver area", next, 6 + 2L * size);
            deviceArea[q] = next;
            next = place("virtqueue " + q + " device area", next, 6 + 8L * size);
        }
        indirect = new long[spec.pairs()];
        for (int p = 0; p < spec.pairs(); p++) {
            indirect[p] = next;
            next = place("pair " + p + " transmit indirect tables", next, INDIRECT_TABLE * spec.queueSize());
        }
        ringRegion = new GuestArea("ring region", 0, next);
        long bufferBase = roundUp(next + 1, BUFFER_REGION_ALIGNMENT);
        hole = new GuestArea("hole", next, bufferBase - next);
        rxSlotSize = roundUp(spec.rxBufferSize() + RX_PIECE_GAP, 64);
        rxSlots = new long[spec.pairs()];
        txSlots = new long[spec.pairs()];
        next = bufferBase;
        for (int p = 0; p < spec.pairs(); p++) {
            rxSlots[p] = next;
            next = place("pair " + p + " receive buffers", next, rxSlotSize * spec.queueSize());
            txSlots[p] = next;
            next = place("pair " + p + " transmit buffers", next, TX_SLOT * spec.queueSize());
        }
        controlBuffers = next;
        next = place("control queue buffers", next, PAGE);
        bufferRegion = new GuestArea("buffer region", bufferBase, next - bufferBase);
        for (GuestArea a : areas) {
            GuestArea region = a.address() < bufferBase ? ringRegion : bufferRegion;
            if (!region.contains(a)) {
                throw new IllegalStateException("guest layout: " + a + " is not inside the " + region);
            }
        }
        List<GuestArea> all = new ArrayList<>(areas);
        all.add(hole);
        checkDisjoint(all);
    }

    /** The layout of {@link Spec#of(int) Spec.of(pairs)}. */
    public static GuestLayout of(int pairs) {
        return new GuestLayout(Spec.of(pairs));
    }

    private long place(String name, long at, long bytes) {
        areas.add(new GuestArea(name, at, bytes));
        return roundUp(at + bytes, PAGE);
    }

    private static long roundUp(long value, long alignment) {
        return (value + alignment - 1) & -alignment;
    }

    /**
     * Checks that no two of {@code areas} share a byte.
     *
     * @throws IllegalStateException naming both areas and their ranges when two overlap
     */
    public static void checkDisjoint(List<GuestArea> areas) {
        List<GuestArea> sorted = new ArrayList<>(areas);
        sorted.sort(Comparator.comparingLong(GuestArea::address).thenComparingLong(GuestArea::end));
        if (sorted.isEmpty()) {
            return;
        }
        // sorted by start: an area overlapping any earlier one overlaps the one reaching furthest
        GuestArea furthest = sorted.get(0);
        for (int i = 1; i < sorted.size(); i++) {
            GuestArea area = sorted.get(i);
            if (furthest.overlaps(area)) {
                throw new IllegalStateException("guest layout: " + furthest + " overlaps " + area);
            }
            if (area.end() > furthest.end()) {
                furthest = area;
            }
        }
    }

    /** What the layout was computed from. */
    public Spec spec() {
        return spec;
    }

    /** Queue pairs. */
    public int pairs() {
        return spec.pairs();
    }

    /** Virtqueues: the data queues and the control queue. */
    public int queueCount() {
        return 2 * spec.pairs() + 1;
    }

    /** The control queue's index, {@code 2 * pairs}. */
    public int controlQueue() {
        return 2 * spec.pairs();
    }

    /** Descriptors of virtqueue {@code queue}. */
    public int queueSize(int queue) {
        return queue == controlQueue() ? spec.controlQueueSize() : spec.queueSize();
    }

    /** Descriptor table (split) or descriptor ring (packed) of virtqueue {@code queue}. */
    public long descAddress(int queue) {
        return desc[queue];
    }

    /** Available ring (split) or driver event suppression (packed) of virtqueue {@code queue}. */
    public long driverAreaAddress(int queue) {
        return driverArea[queue];
    }

    /** Used ring (split) or device event suppression (packed) of virtqueue {@code queue}. */
    public long deviceAreaAddress(int queue) {
        return deviceArea[queue];
    }

    /** Bytes the driver writes in virtqueue {@code queue}'s descriptor area (its dirty-log extent). */
    public long descBytes(int queue) {
        return 16L * queueSize(queue);
    }

    /** Bytes of virtqueue {@code queue}'s driver area (split available ring with used_event). */
    public long driverAreaBytes(int queue) {
        return 6 + 2L * queueSize(queue);
    }

    /** Indirect table {@code slot} of pair {@code pair}'s transmit queue. */
    public long indirectTable(int pair, int slot) {
        return indirect[pair] + slot * INDIRECT_TABLE;
    }

    /** Bytes of one receive slot: the buffer and the gap of a split-header chain. */
    public long rxSlotSize() {
        return rxSlotSize;
    }

    /** Receive slot {@code slot} of pair {@code pair}. */
    public long rxSlot(int pair, int slot) {
        return rxSlots[pair] + slot * rxSlotSize;
    }

    /** Transmit slot {@code slot} of pair {@code pair}, {@link #TX_SLOT} bytes. */
    public long txSlot(int pair, int slot) {
        return txSlots[pair] + slot * TX_SLOT;
    }

    /** The control queue's page of command buffers. */
    public long controlBuffers() {
        return controlBuffers;
    }

    /** The ring region (at guest address 0). */
    public GuestArea ringRegion() {
        return ringRegion;
    }

    /** The unmapped range between the two regions. */
    public GuestArea hole() {
        return hole;
    }

    /** The buffer region. */
    public GuestArea bufferRegion() {
        return bufferRegion;
    }

    /** Every ring part and buffer area, in address order. */
    public List<GuestArea> areas() {
        return List.copyOf(areas);
    }

    /** The two regions as memfd region specs. */
    public List<MemfdGuestMemory.RegionSpec> regions() {
        return List.of(new MemfdGuestMemory.RegionSpec(ringRegion.address(), roundUp(ringRegion.size(), PAGE)),
                new MemfdGuestMemory.RegionSpec(bufferRegion.address(), roundUp(bufferRegion.size(), PAGE)));
    }

    /** New memfd guest memory of this layout's two regions (zeroed, as memfd pages start). */
    public MemfdGuestMemory createMemory(String name) throws NativeCallException {
        return MemfdGuestMemory.create(name, regions());
    }

    @Override
    public String toString() {
        return "GuestLayout[" + spec + ": " + ringRegion + ", " + hole + ", " + bufferRegion + "]";
    }
}

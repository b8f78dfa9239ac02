package io.vhostffm.vhost.device.userspace;

import static io.vhostffm.vhost.device.userspace.HostileDatapathRig.HEADER;
import static io.vhostffm.vhost.device.userspace.HostileDatapathRig.INDIRECT;
import static io.vhostffm.vhost.device.userspace.HostileDatapathRig.INDIRECT_BYTES;
import static io.vhostffm.vhost.device.userspace.HostileDatapathRig.INDIRECT_TABLES;
import static io.vhostffm.vhost.device.userspace.HostileDatapathRig.MAX_SIZE;
import static io.vhostffm.vhost.device.userspace.HostileDatapathRig.REGION0;
import static io.vhostffm.vhost.device.userspace.HostileDatapathRig.REGION0_SIZE;
import static io.vhostffm.vhost.device.userspace.HostileDatapathRig.REGION1;
import static io.vhostffm.vhost.device.userspace.HostileDatapathRig.REGION1_SIZE;
import static io.vhostffm.vhost.device.userspace.HostileDatapathRig.RX0_SLOTS;
import static io.vhostffm.vhost.device.userspace.HostileDatapathRig.RX1_SLOT;
import static io.vhostffm.vhost.device.userspace.HostileDatapathRig.SLOT;
import static io.vhostffm.vhost.device.userspace.HostileDatapathRig.TX0_SLOTS;
import static io.vhostffm.vhost.device.userspace.HostileDatapathRig.TX1_SLOT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import io.vhostffm.vhost.device.BackendListener;
import io.vhostffm.vhost.device.DirtyLog;
import io.vhostffm.vhost.internal.CallState;
import io.vhostffm.vhost.os.FdLinks;
import io.vhostffm.vring.DeviceQueue;
import io.vhostffm.vring.GuestMemory;
import io.vhostffm.vring.VirtqueueException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/**
 * Coverage-guided fuzzing of the userspace datapath's transmit and receive paths against a
 * hostile guest, synchronously on the fuzzer's thread: each input gets a datapath {@linkplain
 * UserspaceDatapath#prepare prepared} over fresh rings and never launched, whose one worker's
 * {@linkplain DatapathWorker#round rounds} (the very code its thread runs between polls: each
 * pair's {@link TxPath} and {@link RxPath}, a pair stopped alone on bad guest input) run when the
 * input says, between the hostile guest's writes. Two queue pairs on one worker, each on a real
 * TAP of its own: pair 0 the hostile guest's (queue sizes 1 to 16), pair 1 a well-behaved
 * bystander. The first byte chooses EVENT_IDX, mergeable receive buffers and a dirty log.
 *
 * <p>Operations (1 to 16) on pair 0, each on virtqueue 0 (receive) or 1 (transmit) where it
 * applies: post a valid frame or receive buffer; write one descriptor field (address from a menu:
 * a slot, the hole between the regions, the last bytes of a region, a canary, the top of the
 * address space, a ring, an indirect table, or any value; any length, flags, next); write an
 * indirect table; offer any heads; move the available index by any amount; build a looped chain;
 * rewrite a descriptor's address (after the device took it, if a round ran since); write the
 * available ring's flags and {@code used_event}; a frame arrives on the TAP; the device runs a
 * round (busy-polling or not). The device writes only where pair 0's receive buffers say, so
 * those never name a canary, pair 1's memory, a ring part the device reads or an indirect table
 * (a legal write there would read as a finding, or make the next chain name one); a receive
 * descriptor has INDIRECT only over a table the fuzzer wrote with such entries.
 *
 * <p>Invariants, checked inside the target: a round throws nothing (anything but bad guest input
 * is a finding); after the operations and rounds until idle, either pair 0 stopped, with one
 * report naming virtqueue 0 or 1 and a rule a guest can break (a {@link VirtqueueException.Rule}
 * or virtio-net's transmit/receive chain rules), or a marker frame it transmits reaches the
 * network side. A stopped pair 0 changes nothing after: with a frame waiting on its TAP and a
 * chain offered, guest memory outside pair 1's is byte for byte what it was. Pair 1 never stops:
 * its marker frame reaches the network and a frame sent to its TAP lands whole in its receive
 * buffer. Every canary and guard is intact. The process has the descriptors it had before the
 * input, and at the end of the run the memfd mappings it had at the start.
 *
 * <p>Without {@code JAZZER_FUZZ=1} this runs the stored inputs under {@code HostileDatapathFuzzTestInputs}.
 */
class HostileDatapathFuzzTest {
    private static final int DEADLINE_MILLIS = 10_000;
    private static final int F_NEXT = 1;
    private static final int F_WRITE = 2;
    private static final int F_INDIRECT = 4;
    private static final List<String> NAMED = names();

    private static HostileDatapathRig rig;
    private static HostileGuestRings rings;
    private static List<HostileDatapathRig.Range> guestCanaries;
    private static DirtyLog dirtyLog;
    private static MemorySegment before;
    private static long memfdMappings;
    private static long seq = 1;
    private static long inputs;
    private static long threadCpuAtStart;
    private static final DescriptorCount descriptors = new DescriptorCount();
    private static final ReusedArena reused = new ReusedArena(1 << 20);

    private static List<String> names() {
        List<String> names = new ArrayList<>();
        for (VirtqueueException.Rule r : VirtqueueException.Rule.values()) {
            switch (r) {
                case QUEUE_BROKEN, INVALID_STATE, USED_ID_INVALID, DESCRIPTOR_NOT_AVAILABLE, BUFFER_ID_INVALID -> { }
                default -> names.add(r.description());
            }
        }
        names.add("(transmit): chain at head ");
        names.add("(receive): chain at head ");
        return List.copyOf(names);
    }

    /** The datapath's logger, kept so its level holds (java.util.logging keeps loggers weakly). */
    private static Object datapathLogger;

    @BeforeAll
    static void open() throws Exception {
        datapathLogger = quietDatapathLog();
        rig = new HostileDatapathRig();
        rings = new HostileGuestRings(rig.memory);
        guestCanaries = rig.guestCanaries();
        dirtyLog = DirtyLog.create(REGION1 + REGION1_SIZE);
        before = Arena.ofAuto().allocate(HostileDatapathRig.hostSize());
        assertEquals(FdLinks.count(), descriptors.count(), "the two descriptor counts agree");
        memfdMappings = memfdMappings();
        threadCpuAtStart = threadCpuNanos();
    }

    @AfterAll
    static void close() throws Exception {
        if (rig != null) {
            // What an input costs in processor time (the fair figure on a shared host, where the
            // executions per second follow the load of others): the fuzzer's own time included.
            System.err.printf("hostile-datapath: %d inputs, %d us of this thread's processor time each%n", inputs,
                    inputs == 0 ? 0 : (threadCpuNanos() - threadCpuAtStart) / inputs / 1000);
            assertEquals(memfdMappings, memfdMappings(), "memfd mappings after the run");
            dirtyLog.close();
            rig.close();
        }
    }

    /**
     * Turns off the datapath's warning per stopped pair (a line of log per input that stops
     * pair 0: most of the fuzzer's log, and time), through java.util.logging, which backs
     * System.Logger here; reflectively, as this module does not read java.logging.
     */
    private static Object quietDatapathLog() throws ReflectiveOperationException {
        Class<?> logger = Class.forName("java.util.logging.Logger");
        Class<?> level = Class.forName("java.util.logging.Level");
        Object quiet = logger.getMethod("getLogger", String.class).invoke(null, UserspaceDatapath.class.getName());
        logger.getMethod("setLevel", level).invoke(quiet, level.getField("SEVERE").get(null));
        return quiet;
    }

    /** Processor time this thread used so far (/proc/thread-self/schedstat, nanoseconds). */
    private static long threadCpuNanos() throws Exception {
        String stat = Files.readString(Path.of("/proc/thread-self/schedstat"));
        return Long.parseLong(stat.substring(0, stat.indexOf(' ')));
    }

    private static long memfdMappings() throws Exception {
        try (var lines = Files.lines(Path.of("/proc/self/maps"))) {
            return lines.filter(l -> l.contains("/memfd:")).count();
        }
    }

    /** What the datapath reported through its listener. */
    private static final class Reports implements BackendListener {
        final List<String> reasons = new ArrayList<>();
        final List<Integer> queues = new ArrayList<>();

        @Override
        public void badGuestInput(int queueIndex, String reason) {
            queues.add(queueIndex);
            reasons.add(reason);
        }
    }

    @FuzzTest
    void hostileDatapath(FuzzedDataProvider data) throws Exception {
        // Every input: the lowest free descriptor number; every 64th: the full count.
        boolean counted = (++inputs & 63) == 0;
        int fds = counted ? descriptors.count() : 0;
        int lowest = DescriptorCount.lowestFree();
        CallState s = CallState.current();
        int features = data.consumeInt(0, 7);
        boolean eventIdx = (features & 1) != 0;
        boolean mergeable = (features & 2) != 0;
        boolean logging = (features & 4) != 0;
        int rxSize = 1 << data.consumeInt(0, 4);
        int txSize = 1 << data.consumeInt(0, 4);
        rig.drain(0, s);
        rig.drain(1, s);
        rig.clearRings();
        rings.reset(rxSize, txSize);
        Reports reports = new Reports();
        List<QueuePairConfig> configs = List.of(rig.config(0, rxSize, txSize, eventIdx),
                rig.config(1, MAX_SIZE, MAX_SIZE, eventIdx));
        UserspaceDatapath.Settings settings = new UserspaceDatapath.Settings(() -> null, reports,
                logging ? () -> dirtyLog : null, UserspaceDatapath.DEVICE_QUEUES, 1500, mergeable, 1);
        List<DeviceQueue> queues = new ArrayList<>();
        for (QueuePairConfig c : configs) {
            queues.add(settings.opener().open(2 * c.pair(), rig.memory, c.rx()));
            queues.add(settings.opener().open(2 * c.pair() + 1, rig.memory, c.tx()));
        }
        try (Arena arena = reused) {
            UserspaceDatapath datapath = UserspaceDatapath.prepare(rig.memory, configs, settings, queues, arena);
            DatapathWorker worker = datapath.workers().getFirst();
            worker.hold();
            try {
                run(data, worker, s);
                check(datapath, worker, reports, s);
            } finally {
                worker.letGo();
                datapath.discard();
            }
        }
        assertEquals(Optional.empty(), rig.damagedCanary());
        assertEquals(lowest, DescriptorCount.lowestFree(), "lowest free descriptor after the input");
        if (counted) {
            assertEquals(fds, descriptors.count(), "descriptors open after the input");
        }
    }

    /** The fuzzer's operations on pair 0, and rounds where it says. */
    private static void run(FuzzedDataProvider data, DatapathWorker worker, CallState s) throws Exception {
        int ops = data.consumeInt(1, 16);
        for (int i = 0; i < ops && data.remainingBytes() > 0; i++) {
            int queue = data.consumeBoolean() ? 1 : 0;
            int size = rings.size(queue);
            switch (data.consumeInt(0, 10)) {
                case 0 -> postFrame(data.consumeInt(0, MAX_SIZE - 1), data.consumeInt(14, 1514));
                case 1 -> {
                    int d = data.consumeInt(0, MAX_SIZE - 1);
                    rings.writeDescriptor(0, d, RX0_SLOTS + (long) SLOT * d,
                            data.consumeBoolean() ? SLOT : data.consumeInt(0, SLOT), F_WRITE, 0);
                    rings.offer(0, d);
                }
                case 2 -> corrupt(queue, data.consumeInt(0, MAX_SIZE - 1), data);
                case 3 -> writeIndirectTable(data);
                case 4 -> {
                    int[] heads = new int[data.consumeInt(1, 4)];
                    for (int k = 0; k < heads.length; k++) {
                        heads[k] = data.consumeBoolean() ? data.consumeInt(0, size - 1) : data.consumeInt(0, 0xffff);
                    }
                    rings.offer(queue, heads);
                }
                case 5 -> rings.moveAvailIndex(queue, data.consumeInt(-2, 2 * size + 2));
                case 6 -> {
                    int first = data.consumeInt(0, MAX_SIZE - 1);
                    int second = data.consumeInt(0, MAX_SIZE - 1);
                    long address = queue == 0 ? RX0_SLOTS + (long) SLOT * first : TX0_SLOTS + (long) SLOT * first;
                    int flags = queue == 0 ? F_WRITE : 0;
                    rings.writeDescriptor(queue, first, address, SLOT, flags | F_NEXT, second);
                    rings.writeDescriptor(queue, second, address, SLOT, flags | F_NEXT, first);
                    rings.offer(queue, first);
                }
                case 7 -> {
                    int d = data.consumeInt(0, MAX_SIZE - 1);
                    long address = address(queue, d, data);
                    int flags = rings.flags(queue, d);
                    if (queue == 0) {
                        Safe safe = receiveSafe(address, rings.length(queue, d), flags);
                        address = safe.address;
                        if (safe.flags != flags) {
                            // INDIRECT over a table the target did not write: the flags lose it too
                            rings.writeDescriptor(queue, d, address, rings.length(queue, d), safe.flags,
                                    rings.next(queue, d));
                        }
                    }
                    rings.rewriteAddress(queue, d, address);
                }
                case 8 -> rings.writeAvailFlags(queue, data.consumeInt(0, 0xffff), data.consumeInt(0, 0xffff));
                case 9 -> {
                    rig.buildFrame(seq++, data.consumeInt(14, 1514));
                    rig.inject(0, data.consumeInt(14, 1514));
                }
                default -> worker.round(s, data.consumeBoolean());
            }
        }
    }

    /** A valid frame of {@code length} bytes after the header in transmit slot {@code d}, descriptor {@code d}, offered. */
    private static long postFrame(int d, int length) {
        long slot = TX0_SLOTS + (long) SLOT * d;
        long n = seq++;
        rig.buildFrame(n, length);
        MemorySegment buffer = rig.memory.slice(slot, HEADER + length);
        buffer.asSlice(0, HEADER).fill((byte) 0);
        MemorySegment.copy(rig.frame, 0, buffer, HEADER, length);
        rings.writeDescriptor(1, d, slot, HEADER + length, 0, 0);
        rings.offer(1, d);
        return n;
    }

    /** Writes one field of descriptor {@code d} of {@code queue}; a receive descriptor stays receive-safe. */
    private static void corrupt(int queue, int d, FuzzedDataProvider data) {
        long address = rings.address(queue, d);
        int length = rings.length(queue, d);
        int flags = rings.flags(queue, d);
        int next = rings.next(queue, d);
        switch (data.consumeInt(0, 3)) {
            case 0 -> address = address(queue, d, data);
            case 1 -> length = data.consumeBoolean() ? data.consumeInt(0, 8192) : data.consumeInt();
            case 2 -> flags = data.consumeInt(0, 0xffff);
            default -> next = data.consumeInt(0, 0xffff);
        }
        if (queue == 0) {
            Safe safe = receiveSafe(address, length, flags);
            address = safe.address;
            flags = safe.flags;
        }
        rings.writeDescriptor(queue, d, address, length, flags, next);
    }

    /** Table {@code t} of the indirect area: 1 to 16 entries, each receive-safe. */
    private static void writeIndirectTable(FuzzedDataProvider data) {
        long table = INDIRECT + (long) INDIRECT_BYTES * data.consumeInt(0, INDIRECT_TABLES - 1);
        int entries = data.consumeInt(1, MAX_SIZE);
        for (int e = 0; e < entries; e++) {
            int slot = data.consumeInt(0, MAX_SIZE - 1);
            long address = address(data.consumeBoolean() ? 0 : 1, slot, data);
            int length = data.consumeBoolean() ? data.consumeInt(0, SLOT) : data.consumeInt();
            int flags = data.consumeInt(0, 7);
            int next = data.consumeInt(0, MAX_SIZE);
            if (!writable(address, length)) {
                address = REGION0 + REGION0_SIZE; // the hole: refused before any write
            }
            rings.writeAt(table + 16L * e, address, length, flags, next);
        }
    }

    private record Safe(long address, int flags) {}

    /**
     * A receive descriptor the device may follow without a legal write reaching a canary, pair
     * 1's memory, a ring part it reads or an indirect table: INDIRECT only over the indirect
     * area (whose entries are made safe), any other buffer in pair 0's writable areas, or outside
     * guest memory (refused), or else moved into the hole.
     */
    private static Safe receiveSafe(long address, int length, int flags) {
        if ((flags & F_INDIRECT) != 0) {
            long end = address + Integer.toUnsignedLong(length);
            if (Long.compareUnsigned(address, INDIRECT) >= 0 && Long.compareUnsigned(end, address) >= 0
                    && Long.compareUnsigned(end, INDIRECT + (long) INDIRECT_TABLES * INDIRECT_BYTES) <= 0) {
                return new Safe(address, flags);
            }
            flags &= ~F_INDIRECT;
        }
        return new Safe(writable(address, length) ? address : REGION0 + REGION0_SIZE, flags);
    }

    /** Whether the device may write {@code length} bytes at {@code address}: refused outright, or inside pair 0's writable areas. */
    private static boolean writable(long address, int length) {
        long end = address + Integer.toUnsignedLong(length);
        if (Long.compareUnsigned(end, address) < 0) {
            return true; // past 2^64: no region holds it
        }
        GuestMemory memory = rig.memory;
        if (memory.findRegion(address, Integer.toUnsignedLong(length)) < 0) {
            return true;
        }
        for (HostileDatapathRig.Range w : rig.writable) {
            if (Long.compareUnsigned(address, w.address()) >= 0 && Long.compareUnsigned(end, w.end()) <= 0) {
                return true;
            }
        }
        return false;
    }

    /** A guest address from the menu. */
    private static long address(int queue, int d, FuzzedDataProvider data) {
        long regionEnd = REGION1 + REGION1_SIZE;
        return switch (data.consumeInt(0, 10)) {
            case 0 -> TX0_SLOTS + (long) SLOT * d;
            case 1 -> RX0_SLOTS + (long) SLOT * d + data.consumeInt(0, SLOT);
            case 2 -> REGION0 + REGION0_SIZE + data.consumeInt(0, 0xffff);
            case 3 -> REGION0 + REGION0_SIZE - data.consumeInt(1, 64);
            case 4 -> regionEnd - data.consumeInt(1, 64);
            case 5 -> guestCanaries.get(data.consumeInt(0, guestCanaries.size() - 1)).address();
            case 6 -> -16L - data.consumeInt(0, 64);
            case 7 -> HostileDatapathRig.descAddress(data.consumeInt(0, 3)) + 16L * data.consumeInt(0, MAX_SIZE - 1);
            case 8 -> HostileDatapathRig.usedAddress(queue) + data.consumeInt(0, 8 * MAX_SIZE);
            case 9 -> INDIRECT + (long) INDIRECT_BYTES * data.consumeInt(0, INDIRECT_TABLES - 1);
            default -> data.consumeLong();
        };
    }

    /** The invariants after the operations. */
    private static void check(UserspaceDatapath datapath, DatapathWorker worker, Reports reports, CallState s)
            throws Exception {
        settle(worker, s);
        long deadline = System.nanoTime() + DEADLINE_MILLIS * 1_000_000L;
        boolean stoppedBefore = datapath.stoppedPairs().containsKey(0);
        long marker = -1;
        if (stoppedBefore) {
            // Stopped: a chain on its transmit queue and a frame on its TAP change nothing.
            postFrame(0, 60);
            rig.buildFrame(seq++, 100);
            rig.inject(0, 100);
            rig.copyMemory(before);
        } else {
            // Not stopped: a marker frame it transmits reaches the network, unless the guest's
            // earlier writes stop it on the way. What it sent so far is not looked at.
            rig.drainSocket(0);
            marker = postFrame(rings.size(1) - 1, 60);
        }
        long bystanderMarker = bystanderPosts();
        while (rings.usedIndex(2) != 1) {
            assertTrue(System.nanoTime() < deadline, "pair 1 received nothing within " + DEADLINE_MILLIS + " ms");
            settle(worker, s);
            if (rings.usedIndex(2) != 1) {
                rig.awaitTapReadable(1, 100, s);
            }
        }
        boolean stopped = datapath.stoppedPairs().containsKey(0);
        if (marker >= 0 && !stopped) {
            long m = marker;
            assertTrue(rig.awaitTransmitted(0, marker, deadline), () -> "pair 0's marker " + m
                    + " neither reached the network nor did the pair stop within " + DEADLINE_MILLIS + " ms: "
                    + datapath.stats(0) + ", transmit avail.idx " + rings.availIndex(1) + ", used.idx "
                    + rings.usedIndex(1) + ", " + rig.socketStatistics(0));
        }
        assertTrue(!datapath.stoppedPairs().containsKey(1), () -> "pair 1 stopped: " + datapath.stoppedPairs());
        if (stopped) {
            String reason = datapath.stoppedPairs().get(0);
            assertEquals(List.of(reason), reports.reasons, "one report per stopped pair");
            String queue = "userspace datapath, queue pair 0: virtqueue " + reports.queues.getFirst();
            assertTrue(reports.queues.getFirst() == 0 || reports.queues.getFirst() == 1, reports.queues::toString);
            assertTrue(reason.startsWith(queue + ": ") || reason.startsWith(queue + " ("), reason);
            assertTrue(NAMED.stream().anyMatch(reason::contains), () -> "no rule named: " + reason);
            assertEquals(1, worker.activePairs());
        } else {
            assertEquals(List.of(), reports.reasons, "reports without a stopped pair");
        }
        bystanderArrived(bystanderMarker, deadline);
        if (stoppedBefore) {
            long changed = rig.changedOutsideBystander(before);
            assertEquals(-1, changed, () -> String.format("pair 0 stopped, yet host offset 0x%x changed", changed));
        }
    }

    /** Rounds until one has nothing more to do and moved nothing (at most 64). */
    private static void settle(DatapathWorker worker, CallState s) throws Exception {
        for (int i = 0; i < 64; i++) {
            boolean more = worker.round(s, false);
            if (!more && !worker.roundMoved()) {
                return;
            }
        }
    }

    /**
     * Pair 1 posts a receive buffer and a marker frame to transmit, and a frame is sent to its
     * TAP.
     *
     * @return the marker's sequence number
     */
    private static long bystanderPosts() throws Exception {
        rings.writeDescriptor(2, 0, RX1_SLOT, SLOT, F_WRITE, 0);
        rings.offer(2, 0);
        long marker = seq++;
        rig.buildFrame(marker, 60);
        MemorySegment tx = rig.memory.slice(TX1_SLOT, HEADER + 60);
        tx.asSlice(0, HEADER).fill((byte) 0);
        MemorySegment.copy(rig.frame, 0, tx, HEADER, 60);
        rings.writeDescriptor(3, 0, TX1_SLOT, HEADER + 60, 0, 0);
        rings.offer(3, 0);
        long incoming = seq++;
        rig.buildFrame(incoming, bystanderLength(incoming));
        rig.inject(1, bystanderLength(incoming));
        return marker;
    }

    private static int bystanderLength(long incoming) {
        return 60 + (int) (incoming % 1000);
    }

    /** Pair 1's frame landed whole in its receive buffer, its marker reached the network and its chain came back. */
    private static void bystanderArrived(long marker, long deadline) throws Exception {
        long incoming = marker + 1;
        int length = bystanderLength(incoming);
        rig.buildFrame(incoming, length);
        assertEquals(HEADER + length, rings.usedLength(2, 0), "pair 1's received frame length");
        MemorySegment got = rig.memory.slice(RX1_SLOT + HEADER, length);
        assertEquals(-1, got.mismatch(rig.frame.asSlice(0, length)), "pair 1's received frame");
        assertEquals(1, rings.usedIndex(3), "pair 1's transmitted chain came back");
        assertTrue(rig.awaitTransmitted(1, marker, deadline), "pair 1's marker " + marker + " reached the network");
    }
}

package io.vhostffm.testkit.device;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import io.vhostffm.testkit.Frames;
import io.vhostffm.testkit.GuestArea;
import io.vhostffm.testkit.HostileGuest;
import io.vhostffm.testkit.ResourceLedger;
import io.vhostffm.testkit.TxShape;
import io.vhostffm.vhost.device.userspace.UserspaceNetBackend;
import io.vhostffm.vhost.os.DescriptorPoller;
import io.vhostffm.vhost.virtio.VirtioTransportException;
import io.vhostffm.vring.VirtqueueException;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.function.LongConsumer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/**
 * Coverage-guided fuzzing of a hostile guest against the running userspace datapath: one
 * {@link io.vhostffm.vhost.device.NetDeviceRuntime} with the userspace backend on a real TAP (two
 * queue pairs), kept across executions; each execution resets it, boots the guest again with both
 * pairs on, then runs 1 to 12 operations the fuzzer chooses on pair 0's virtqueue 0 (receive) or
 * 1 (transmit): post a
 * valid frame, write one descriptor field (addresses from a menu: a transmit or receive slot, the
 * hole between the regions, the last bytes of a region, a canary gap, the top of the address
 * space, the rings themselves, or any value), offer any heads, move the available index by any
 * amount, rewrite a descriptor right after its kick, write a queue's address registers.
 *
 * <p>Invariants, checked inside the target: a queue register write while the device runs is
 * refused naming the queue and the register, and changes nothing; after the operations two
 * marker frames on the transmit queue, each offered so that no index move of the operations can
 * hide it from the device ({@link HostileGuest#offerUnmistakably}), either arrive (the device works) or the device is in
 * DEVICE_NEEDS_RESET with a reason ({@code needsResetReason}) that names virtqueue 0 or 1 and one of the rules a guest can
 * break (a {@link VirtqueueException.Rule} or virtio-net's transmit/receive chain rules), pair 0's
 * thread ended and the datapath still running; never neither within the deadline. Either way a
 * marker frame pair 1 transmits then arrives once and its chain comes back: bad input on pair 0
 * never stops pair 1. Every canary (each byte of guest memory no
 * area of the layout holds; nothing a writable buffer may name here) is intact. After the reset
 * that ends each execution, the resource ledger (descriptors, threads, mappings) is what it was
 * before the first, for what the device owns (eventfds, memfds, TAP and vhost descriptors, the
 * library's threads, memfd mappings; Jazzer's own sockets, pipes and threads are not counted):
 * while fuzzing, read in full when the process's totals of descriptors and threads differ from
 * the last full reading's, and every 64th execution (the totals cost a directory listing, the
 * full ledger a link read per descriptor and {@code /proc/self/maps}); after every stored input
 * in the regression run.
 *
 * <p>Without {@code JAZZER_FUZZ=1} this runs the stored inputs under {@code HostileGuestFuzzTestInputs}.
 */
class HostileGuestFuzzTest {
    private static final int DEADLINE_MILLIS = 10_000;
    private static final List<String> NAMED = names();
    private static final List<String> FOREIGN = List.of("socket descriptors", "other descriptors", "other threads");

    private static RuntimeRig rig;
    /** The network side's socket (0) and the device's config interrupt (1), for the marker waits. */
    private static DescriptorPoller markerOrReset;
    private static HostileGuest hostile;
    private static List<GuestArea> gaps;
    private static ResourceLedger.Snapshot baseline;
    private static long marker = 1_000_000;
    /** A full ledger at least every this many inputs, whatever the totals say. */
    private static final int FULL_LEDGER_EVERY = 64;
    /** Fuzzing ({@code JAZZER_FUZZ} set), not the regression run, which reads the full ledger after every input. */
    private static final boolean FUZZING = System.getenv("JAZZER_FUZZ") != null;
    private static ResourceLedger.Totals lastTotals;
    private static long executions;

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

    @BeforeAll
    static void open() throws Exception {
        rig = RuntimeRig.on(2, UserspaceNetBackend::open);
        hostile = new HostileGuest(rig.guest);
        gaps = hostile.canaryAreas();
        hostile.paintCanaries();
        rig.device.writeStatus(0);
        rig.awaitDatapathThreadsEnd();
        markerOrReset = new DescriptorPoller(List.of(rig.network.socket().fd(), rig.device.configInterrupt().fd()));
        baseline = ResourceLedger.take();
    }

    /**
     * What grew since the baseline, of what the device owns: Jazzer opens descriptors and starts
     * threads of its own once it runs (sockets, pipes, its threads), not counted here.
     */
    private static List<ResourceLedger.Growth> deviceGrowth() {
        return ResourceLedger.growth(baseline, ResourceLedger.take()).stream()
                .filter(g -> !FOREIGN.contains(g.resource()))
                .toList();
    }

    @AfterAll
    static void close() {
        if (markerOrReset != null) {
            markerOrReset.close();
        }
        if (rig != null) {
            rig.close();
        }
    }

    @FuzzTest
    void hostileGuest(FuzzedDataProvider data) throws Exception {
        rig.resetAndBoot();
        rig.setQueuePairs(2);
        HostileGuest h = new HostileGuest(rig.guest);
        int size = h.size(1);
        int ops = data.consumeInt(1, 12);
        for (int i = 0; i < ops && data.remainingBytes() > 0; i++) {
            int queue = data.consumeBoolean() ? 1 : 0;
            switch (data.consumeInt(0, 5)) {
                case 0 -> post(h, data.consumeInt(0, size - 1), marker++);
                case 1 -> corrupt(h, queue, data.consumeInt(0, size - 1), data);
                case 2 -> {
                    int[] heads = new int[data.consumeInt(1, 4)];
                    for (int k = 0; k < heads.length; k++) {
                        heads[k] = data.consumeBoolean() ? data.consumeInt(0, size - 1) : data.consumeInt(0, 0xffff);
                    }
                    h.offer(queue, heads);
                    h.kick(queue);
                }
                case 3 -> {
                    h.moveAvailIndex(queue, data.consumeInt(-2, 2 * size + 2));
                    h.kick(queue);
                }
                case 4 -> {
                    int d = data.consumeInt(0, size - 1);
                    post(h, d, marker++);
                    h.rewriteAddress(1, d, address(h, 1, d, data, 0));
                }
                default -> changeAddress(queue, data.consumeInt(0, 3), address(h, queue, 0, data, 0));
            }
        }
        boolean works = markerArrives(h, size - 1) && markerArrives(h, size - 2);
        if (!works || rig.guest.needsReset()) {
            assertTrue(rig.guest.needsReset(), () -> "the marker did not arrive: " + rig.device.model().lastError());
            // lastError() is the last refusal (a register write after NEEDS_RESET replaces it):
            // the reason the device stopped is needsResetReason()
            String error = rig.device.model().needsResetReason().orElseThrow();
            assertTrue(error.startsWith("userspace datapath, queue pair 0: virtqueue 0")
                    || error.startsWith("userspace datapath, queue pair 0: virtqueue 1"), error);
            assertTrue(NAMED.stream().anyMatch(error::contains), () -> "no rule named: " + error);
            RuntimeRig.awaitPairLeftItsWorker(rig, 0);
            assertTrue(rig.device.isDatapathRunning(), "pair 1 stopped with pair 0");
        }
        pairOneMarkerArrives();
        assertEquals(Optional.empty(), hostile.damagedCanary());
        rig.device.writeStatus(0);
        rig.awaitDatapathThreadsEnd();
        ResourceLedger.Totals totals = ResourceLedger.totals();
        executions++;
        if (!FUZZING || !totals.equals(lastTotals) || executions % FULL_LEDGER_EVERY == 0) {
            List<ResourceLedger.Growth> grown = deviceGrowth();
            assertTrue(grown.isEmpty(), () -> "grew: " + grown);
            lastTotals = totals;
        }
    }

    /** A valid frame of stream 0 in transmit slot {@code d}, descriptor {@code d}, offered and kicked. */
    private static void post(HostileGuest h, int d, long seq) throws Exception {
        writeFrameDescriptor(h, d, seq);
        h.offer(1, d);
        h.kick(1);
    }

    /** Frame {@code seq} of stream 0 in transmit slot {@code d}, named by descriptor {@code d}. */
    private static void writeFrameDescriptor(HostileGuest h, int d, long seq) {
        long slot = rig.layout.txSlot(0, d);
        int length = HostileGuestTest.placeFrame(rig, slot, 0, seq);
        h.writeDescriptor(1, d, slot, length, 0, 0);
    }

    /**
     * Posts a marker frame with descriptor {@code d} and waits until it arrives (true) or the
     * device needs a reset (false); neither within the deadline is a finding.
     */
    private static boolean markerArrives(HostileGuest h, int d) throws Exception {
        if (rig.guest.needsReset()) {
            return false;
        }
        long seq = marker++;
        writeFrameDescriptor(h, d, seq);
        // Not post(): the operations may have moved the index back, and an offer that lands it on
        // the value the device last read is invisible to any device (that is no finding).
        h.offerUnmistakably(1, d);
        h.kick(1);
        long deadline = System.nanoTime() + DEADLINE_MILLIS * 1_000_000L;
        while (true) {
            for (byte[] frame = rig.network.nextFromGuest(0); frame != null; frame = rig.network.nextFromGuest(0)) {
                if (Frames.stream(frame) == 0 && Frames.sequence(frame) == seq) {
                    return true;
                }
            }
            if (rig.guest.needsReset()) {
                return false;
            }
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                break;
            }
            // Asleep until a frame reaches the network side or the device's config interrupt (which
            // follows NEEDS_RESET) fires: both are looked at again above, whichever woke us.
            markerOrReset.poll((int) Math.max(1, left / 1_000_000L));
            if (markerOrReset.isReadable(1)) {
                rig.device.configInterrupt().consume();
            }
        }
        fail("marker " + seq + " neither arrived nor did the device need a reset within " + DEADLINE_MILLIS
                + " ms; status " + rig.guest.status() + ", last error " + rig.device.model().lastError());
        return false;
    }

    /**
     * Pair 1 transmits a marker frame (its driver state is the fake guest's: the operations touch
     * pair 0 only): it must arrive within the deadline, and its chain come back.
     */
    private static void pairOneMarkerArrives() throws Exception {
        long seq = marker++;
        assertTrue(rig.guest.transmit(1, DeviceTraffic.txFrame(1, seq), TxShape.SINGLE) >= 0, "pair 1 tx room");
        rig.guest.kickIfNeeded(3);
        long deadline = System.nanoTime() + DEADLINE_MILLIS * 1_000_000L;
        while (true) {
            assertTrue(System.nanoTime() < deadline, () -> "pair 1's marker " + seq + " did not arrive within "
                    + DEADLINE_MILLIS + " ms; status " + rig.guest.status() + ", reason "
                    + rig.device.model().needsResetReason());
            byte[] frame = rig.network.nextFromGuest(20);
            if (frame != null && Frames.stream(frame) == 1 && Frames.sequence(frame) == seq) {
                break;
            }
        }
        while (rig.guest.collectTx(1) == 0) {
            assertTrue(System.nanoTime() < deadline, "pair 1's marker chain did not come back");
            rig.guest.awaitCall(20, 3);
        }
    }

    /** Writes one field of descriptor {@code d} of {@code queue}. */
    private static void corrupt(HostileGuest h, int queue, int d, FuzzedDataProvider data) {
        long at = rig.layout.descAddress(queue) + 16L * d;
        var segment = rig.memory.slice(at, 16);
        long address = segment.get(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED, 0);
        int length = segment.get(java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED, 8);
        int flags = segment.get(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, 12) & 0xffff;
        int next = segment.get(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, 14) & 0xffff;
        switch (data.consumeInt(0, 3)) {
            case 0 -> address = address(h, queue, d, data, length);
            case 1 -> length = data.consumeBoolean() ? data.consumeInt(0, 8192) : data.consumeInt();
            case 2 -> flags = data.consumeInt(0, 0xffff);
            default -> next = data.consumeInt(0, 0xffff);
        }
        if (queue == 0) {
            // The device writes into a receive buffer: it may name no canary (a legal write
            // there is not a finding), and no indirect table (whose entries the fuzzer does not
            // choose and could name one).
            flags &= ~HostileGuest.F_INDIRECT;
            if (touchesGap(address, length)) {
                address = rig.layout.hole().address();
            }
        }
        h.writeDescriptor(queue, d, address, length, flags, next);
    }

    /** A guest address from the menu (a receive queue's never lets {@code length} bytes reach a canary). */
    private static long address(HostileGuest h, int queue, int d, FuzzedDataProvider data, int length) {
        GuestArea hole = rig.layout.hole();
        long regionEnd = rig.layout.regions().get(1).guestAddress() + rig.layout.regions().get(1).size();
        long a = switch (data.consumeInt(0, 8)) {
            case 0 -> rig.layout.txSlot(0, d);
            case 1 -> rig.layout.rxSlot(0, d);
            case 2 -> hole.address() + data.consumeInt(0, 0xffff);
            case 3 -> hole.address() - data.consumeInt(1, 64);
            case 4 -> regionEnd - data.consumeInt(1, 64);
            case 5 -> gaps.get(data.consumeInt(0, gaps.size() - 1)).address();
            case 6 -> -16L - data.consumeInt(0, 64);
            case 7 -> rig.layout.descAddress(data.consumeInt(0, rig.layout.queueCount() - 1));
            default -> data.consumeLong();
        };
        if (queue == 0 && touchesGap(a, length)) {
            a = hole.address();
        }
        return a;
    }

    private static boolean touchesGap(long address, int length) {
        long end = address + Integer.toUnsignedLong(length);
        if (Long.compareUnsigned(end, address) < 0) {
            return true; // wraps past 2^64: keep it off the receive queue altogether
        }
        for (GuestArea g : gaps) {
            if (Long.compareUnsigned(address, g.end()) < 0 && Long.compareUnsigned(end, g.address()) > 0) {
                return true;
            }
        }
        return false;
    }

    /** A queue address register write on the running device: refused, naming queue and register; nothing changes. */
    private static void changeAddress(int queue, int register, long address) {
        String[] names = {"queue_desc", "queue_driver", "queue_device", "queue_size"};
        long[] before = {rig.device.queueDescTable(queue), rig.device.queueDriverArea(queue),
                rig.device.queueDeviceArea(queue)};
        LongConsumer write = switch (register) {
            case 0 -> v -> rig.device.setQueueDescTable(queue, v);
            case 1 -> v -> rig.device.setQueueDriverArea(queue, v);
            case 2 -> v -> rig.device.setQueueDeviceArea(queue, v);
            default -> v -> rig.device.setQueueSize(queue, (int) v);
        };
        try {
            write.accept(address);
            fail("queue " + queue + ": " + names[register] + " write accepted while the device runs");
        } catch (VirtioTransportException e) {
            assertTrue(e.getMessage().startsWith("queue " + queue + ": " + names[register] + " write refused")
                    || register == 3 && e.getMessage().startsWith("queue " + queue + ": queue_size "), e.getMessage());
        }
        assertEquals(before[0], rig.device.queueDescTable(queue));
        assertEquals(before[1], rig.device.queueDriverArea(queue));
        assertEquals(before[2], rig.device.queueDeviceArea(queue));
    }
}

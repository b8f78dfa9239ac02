package io.vhostffm.testkit.device;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.testkit.Frames;
import io.vhostffm.testkit.HostileGuest;
import io.vhostffm.testkit.HostileGuest.PackedDescriptor;
import io.vhostffm.testkit.ResourceLedger;
import io.vhostffm.testkit.TxShape;
import io.vhostffm.vhost.device.userspace.UserspaceNetBackend;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vhost.virtio.VirtioTransportException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import io.vhostffm.testkit.RxFrame;
import io.vhostffm.vhost.virtio.net.VirtioNetCtrl;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A hostile guest ({@link HostileGuest}) against a {@link io.vhostffm.vhost.device.NetDeviceRuntime}
 * with the userspace datapath on a real TAP: a chain that loops, a buffer that overlaps the end of
 * guest memory, a head offered twice, an available index moved by more than the ring size,
 * descriptors rewritten after the kick, a queue's addresses changed while it runs.
 *
 * <p>Each case attacks pair 0 of a two-pair device and checks: the device's error names the
 * queue, the rule and (where there is one) the index or address; the device is in
 * DEVICE_NEEDS_RESET; pair 0's datapath thread ended and the datapath runs on; the canaries around
 * every area of guest memory are intact; frames pair 0 sent before arrived exactly once; pair 1
 * carries numbered frames both ways exactly once, in order, through the attack and after it, and
 * the control queue keeps answering, until the driver resets; after the driver resets the device
 * and boots again, frames flow on every pair and the resource ledger (descriptors, threads,
 * mappings) is what it was before the attack.
 *
 * <p>Per pair isolation: the userspace datapath stops only the pair whose guest input broke a
 * rule (virtio leaves the device in DEVICE_NEEDS_RESET until the driver resets it, and nothing
 * requires the healthy queues to stop meanwhile); other devices carry on
 * ({@link #aLoopedChainNeedsResetNamingQueueAndHead} runs a second device through the attack).
 */
class HostileGuestTest {
    private static final int EVENT = RuntimeRig.EVENT_TIMEOUT_MILLIS;

    static RuntimeRig userspace(int pairs) throws Exception {
        return RuntimeRig.on(pairs, UserspaceNetBackend::open);
    }

    /** Writes a zero virtio_net_hdr and numbered frame {@code seq} of {@code stream} at {@code address}. */
    static int placeFrame(RuntimeRig rig, long address, int stream, long seq) {
        byte[] frame = Frames.frame(Frames.BROADCAST, FakeGuest.MAC, stream, seq, 100, -1);
        MemorySegment at = rig.memory.slice(address, FakeGuest.HEADER + frame.length);
        at.asSlice(0, FakeGuest.HEADER).fill((byte) 0);
        MemorySegment.copy(frame, 0, at, ValueLayout.JAVA_BYTE, FakeGuest.HEADER, frame.length);
        return FakeGuest.HEADER + frame.length;
    }

    /** VQ_PAIRS_SET to every pair the rig has (a multi-queue driver starts on one). */
    private static void allPairs(RuntimeRig rig) throws Exception {
        if (rig.layout.pairs() > 1) {
            rig.setQueuePairs(rig.layout.pairs());
        }
    }

    /** A rig with its receive buffers posted, warmed by 20 frames each way checked, canaries painted. */
    private static HostileGuest ready(RuntimeRig rig) throws Exception {
        allPairs(rig);
        rig.guest.postRxBuffers();
        assertEquals(20, DeviceTraffic.transmitAndCheck(rig, 0, 20));
        HostileGuest hostile = new HostileGuest(rig.guest);
        hostile.paintCanaries();
        return hostile;
    }

    /**
     * Waits for NEEDS_RESET and pair 0 to leave its worker (a worker of its own ends, a shared one
     * serves the other pairs on); checks the canaries and that the
     * datapath still runs when the device has another pair; returns the device's error.
     */
    private static String awaitNeedsReset(RuntimeRig rig, HostileGuest hostile) throws Exception {
        rig.awaitNeedsReset();
        // the reason kept, not lastError(): the control queue's refusals since replace that
        String error = "DEVICE_NEEDS_RESET: " + rig.device.model().needsResetReason().orElseThrow();
        assertTrue(error.startsWith("DEVICE_NEEDS_RESET: userspace datapath, queue pair 0: "), error);
        RuntimeRig.awaitPairLeftItsWorker(rig, 0);
        // only the pair attacked stops: the others run on until the driver resets
        assertEquals(rig.layout.pairs() > 1, rig.device.isDatapathRunning());
        assertEquals(Optional.empty(), hostile.damagedCanary());
        return error;
    }

    /** A step a test runs while pair 1's frames are in flight. */
    interface Attack {
        void run() throws Exception;
    }

    /**
     * The steering the TAP applies to {@link DeviceTraffic#rxFrame}'s flows, learnt from 64
     * frames before the attack (it picks a queue per flow): the flows it sent to pair 1 only, and
     * those it sent to pair 0 only.
     */
    record Steering(Set<Integer> pairOne, Set<Integer> pairZero) {}

    private static Steering steering(RuntimeRig rig) throws Exception {
        List<RxFrame> all = new ArrayList<>();
        DeviceTraffic.receiveAndCheck(rig, 0, 4 * DeviceTraffic.FLOWS, all);
        Set<Integer> one = new TreeSet<>();
        Set<Integer> zero = new TreeSet<>();
        for (RxFrame r : all) {
            if (Frames.isNumbered(r.frame())) {
                (r.pair() == 1 ? one : zero).add(Frames.stream(r.frame()));
            }
        }
        Set<Integer> both = new TreeSet<>(one);
        both.retainAll(zero);
        one.removeAll(both); // a flow seen on both is not steered reliably
        zero.removeAll(both);
        assertFalse(one.isEmpty(), "no flow steered to pair 1 alone: " + all.size() + " frames");
        return new Steering(one, zero);
    }

    /**
     * Pair 1 transmits frames {@code first .. first+count-1} of stream 1 and receives as many of
     * the flows in {@code flows}; each must arrive exactly once, in order, intact, the transmit
     * chains all come back, the receive frames all on pair 1. Then the control queue answers
     * (ERR once the device needs a reset).
     * {@code attack} (when not null) runs after the transmit frames are kicked, before any is
     * checked.
     */
    private static void pairOneCarries(RuntimeRig rig, Steering steering, long first, int count, Attack attack)
            throws Exception {
        FakeGuest guest = rig.guest;
        for (long seq = first; seq < first + count; seq++) {
            assertTrue(guest.transmit(1, DeviceTraffic.txFrame(1, seq), TxShape.cycle(seq)) >= 0,
                    "pair 1 tx room");
        }
        guest.kickIfNeeded(3);
        if (attack != null) {
            attack.run();
        }
        long next = first;
        while (next < first + count) {
            byte[] frame = rig.network.nextFromGuest(EVENT);
            assertNotNull(frame, "pair 1: frame " + next + " never arrived; " + rig.device.model().lastError());
            if (!Arrays.equals(FakeGuest.MAC, Arrays.copyOfRange(frame, 6, 12))) {
                continue; // the network side's own frames
            }
            assertEquals(1, Frames.stream(frame), "a frame of pair 0 after it stopped");
            assertEquals(next, Frames.sequence(frame), "pair 1: frames exactly once, in order");
            assertNull(Frames.damage(frame));
            next++;
        }
        long deadline = System.nanoTime() + EVENT * 1_000_000L;
        for (int back = 0; back < count; ) {
            back += guest.collectTx(1);
            if (back < count) {
                assertTrue(System.nanoTime() < deadline, (count - back) + " pair 1 tx chains not returned");
                guest.awaitCall(20, 3);
            }
        }
        List<Long> sent = new ArrayList<>();
        for (long seq = first; sent.size() < count; seq++) {
            if (steering.pairOne().contains((int) (seq % DeviceTraffic.FLOWS))) {
                rig.network.send(DeviceTraffic.rxFrame(seq));
                sent.add(seq);
            }
        }
        List<RxFrame> frames = new ArrayList<>();
        int got = 0;
        deadline = System.nanoTime() + EVENT * 1_000_000L;
        while (got < count) {
            frames.clear();
            guest.receive(1, frames);
            for (RxFrame r : frames) {
                if (!Frames.isNumbered(r.frame())) {
                    continue; // host chatter
                }
                assertEquals(1, r.pair());
                assertTrue(got < count, "pair 1: more frames than sent");
                assertEquals(sent.get(got), Frames.sequence(r.frame()), "pair 1: received exactly once, in order");
                assertNull(Frames.damage(r.frame()));
                got++;
            }
            if (got < count) {
                assertTrue(System.nanoTime() < deadline, "pair 1: " + (count - got) + " frames not received; "
                        + rig.device.model().lastError());
                guest.awaitCall(20, 2);
            }
        }
        // The control queue keeps answering (an ack within its deadline, or control() throws):
        // OK while the device runs; ERR once it needs a reset, as the model then changes no state
        // (a VQ_PAIRS_SET cannot restart the stopped pair either).
        for (boolean on : new boolean[] {true, false}) {
            int ack = guest.setPromiscuous(on);
            if (ack != VirtioNetCtrl.OK) {
                assertEquals(VirtioNetCtrl.ERR, ack);
                assertTrue(guest.needsReset(), "ERR from a device that runs: " + rig.device.model().lastError());
            }
        }
    }

    /** The driver resets and boots again: canaries hold, frames flow on every pair, nothing leaked. */
    private static void resetBootAndCheck(RuntimeRig rig, HostileGuest hostile, ResourceLedger.Snapshot before)
            throws Exception {
        rig.resetAndBoot();
        allPairs(rig);
        assertEquals(Optional.empty(), hostile.damagedCanary(), "after the reset");
        assertFalse(rig.guest.needsReset());
        assertEquals(20, DeviceTraffic.transmitAndCheck(rig, 1000, 20));
        assertEquals(Optional.empty(), hostile.damagedCanary(), "after traffic");
        ResourceLedger.requireFlat("hostile guest, then reset and boot", before, ResourceLedger.take());
    }

    @Test
    void canariesFillEveryGapAndNameTheFirstChangedByte() throws Exception {
        try (RuntimeRig rig = userspace(1)) {
            HostileGuest hostile = new HostileGuest(rig.guest);
            assertFalse(hostile.canaryAreas().isEmpty());
            hostile.paintCanaries();
            assertEquals(Optional.empty(), hostile.damagedCanary());
            long at = hostile.canaryAreas().get(0).address() + 3;
            byte was = rig.memory.slice(at, 1).get(ValueLayout.JAVA_BYTE, 0);
            rig.memory.slice(at, 1).set(ValueLayout.JAVA_BYTE, 0, (byte) ~was);
            String damage = hostile.damagedCanary().orElseThrow();
            assertTrue(damage.contains("0x" + Long.toHexString(at)), damage);
        }
    }

    /**
     * While pair 1 has 40 frames in flight, pair 0 offers a chain whose two descriptors point at
     * each other: NEEDS_RESET naming virtqueue 1, the loop rule and the head; register writes
     * after it are refused and the reason stays named; pair 1 carries its frames both ways, during
     * and after; a second device keeps moving.
     */
    @Test
    void aLoopedChainNeedsResetNamingQueueAndHead() throws Exception {
        try (RuntimeRig rig = userspace(2); RuntimeRig other = userspace(1)) {
            HostileGuest hostile = ready(rig);
            Steering steering = steering(rig);
            other.guest.postRxBuffers();
            ResourceLedger.Snapshot before = ResourceLedger.take();
            int[] head = new int[1];
            pairOneCarries(rig, steering, 100, 40, () -> {
                long buffer = rig.layout.txSlot(0, 200);
                int length = placeFrame(rig, buffer, 0, 7);
                head[0] = hostile.loopChain(1, 250, 251, buffer, length, 0);
                hostile.kick(1);
            });
            String error = awaitNeedsReset(rig, hostile);
            assertTrue(error.contains("virtqueue 1: descriptor loop or chain longer than the queue size (head "
                    + head[0]), error);
            // the guest goes on writing registers: refused, and the reason for the reset stays named
            assertThrows(VirtioTransportException.class, () -> rig.device.setQueueDescTable(1, 0));
            assertTrue(rig.device.lastError().orElseThrow().startsWith("queue 1: queue_desc write refused"));
            assertEquals(error, "DEVICE_NEEDS_RESET: " + rig.device.model().needsResetReason().orElseThrow());
            pairOneCarries(rig, steering, 200, 40, null);
            assertEquals(Optional.empty(), hostile.damagedCanary());
            // another device is not disturbed
            assertEquals(30, DeviceTraffic.transmitAndCheck(other, 0, 30));
            assertFalse(other.guest.needsReset());
            resetBootAndCheck(rig, hostile, before);
        }
    }

    /** A transmit buffer of pair 0 that starts in guest memory and runs past the end of the buffer region. */
    @Test
    void aBufferOverlappingTheEndOfGuestMemoryNeedsResetNamingItsAddress() throws Exception {
        try (RuntimeRig rig = userspace(2)) {
            HostileGuest hostile = ready(rig);
            Steering steering = steering(rig);
            ResourceLedger.Snapshot before = ResourceLedger.take();
            long end = rig.layout.regions().get(1).guestAddress() + rig.layout.regions().get(1).size();
            long straddling = end - 32;
            pairOneCarries(rig, steering, 100, 40, () -> {
                hostile.writeDescriptor(1, 200, straddling, 64, 0, 0);
                hostile.offer(1, 200);
                hostile.kick(1);
            });
            String error = awaitNeedsReset(rig, hostile);
            assertTrue(error.contains("virtqueue 1: buffer not inside guest memory (head 200, descriptor 200, addr 0x"
                    + Long.toHexString(straddling) + ", len 64)"), error);
            pairOneCarries(rig, steering, 200, 40, null);
            resetBootAndCheck(rig, hostile, before);
        }
    }

    /**
     * The available index of pair 0's transmit queue moved by the queue size plus one:
     * NEEDS_RESET naming virtqueue 1, the rule, the field and both indices. (A receive queue's
     * index is read only when the device needs buffers for a frame: a jump there is named when
     * the next frame arrives, as {@link #aReceiveDescriptorRewrittenAfterTheKickNeedsResetNamingTheAddress}
     * shows for a bad buffer.)
     */
    @Test
    void anAvailIndexMovedByMoreThanTheRingSizeNeedsResetNamingTheField() throws Exception {
        try (RuntimeRig rig = userspace(2)) {
            HostileGuest hostile = ready(rig);
            Steering steering = steering(rig);
            ResourceLedger.Snapshot before = ResourceLedger.take();
            int size = hostile.size(1);
            int from = hostile.availIndex(1);
            pairOneCarries(rig, steering, 100, 40, () -> {
                hostile.moveAvailIndex(1, size + 1);
                hostile.kick(1);
            });
            String error = awaitNeedsReset(rig, hostile);
            int to = (from + size + 1) & 0xffff;
            assertTrue(error.contains("virtqueue 1: ring index moved by more than the queue size: avail.idx " + to
                    + " is " + (size + 1) + " ahead of our " + from + ", more than the queue size " + size), error);
            pairOneCarries(rig, steering, 200, 40, null);
            resetBootAndCheck(rig, hostile, before);
        }
    }

    /**
     * A bad-input report still on its way when the driver resets the device (its thread waiting
     * for the device model, which the test holds through the attack and the reset) is dropped:
     * the reset device does not enter DEVICE_NEEDS_RESET for rings the reset discarded, and the
     * guest booted again moves frames.
     */
    @Test
    @Timeout(60)
    void aBadInputReportThatArrivesAfterTheResetIsDropped() throws Exception {
        try (RuntimeRig rig = userspace(2)) {
            HostileGuest hostile = ready(rig);
            ResourceLedger.Snapshot before = ResourceLedger.take();
            int size = hostile.size(1);
            synchronized (rig.device.model()) {
                hostile.moveAvailIndex(1, size + 1);
                hostile.kick(1);
                long deadline = System.nanoTime() + 10_000_000_000L;
                while (!reporterAlive()) {
                    assertTrue(System.nanoTime() < deadline, "no bad-input report thread within 10 s");
                    Thread.yield();
                }
                rig.device.writeStatus(0);
            }
            RuntimeRig.awaitThreadsEnd("virtio-net-bad-input");
            assertEquals(0, rig.guest.status(), () -> "after the reset: " + rig.device.model().lastError());
            resetBootAndCheck(rig, hostile, before);
        }
    }

    private static boolean reporterAlive() {
        return Thread.getAllStackTraces().keySet().stream()
                .anyMatch(t -> t.isAlive() && t.getName().equals("virtio-net-bad-input"));
    }

    /**
     * The transmit index moved back by one: an offer after it would put the index back
     * on the value the device last read, an offer no device can see. {@link
     * HostileGuest#offerUnmistakably} publishes the nearest value not published before (here one
     * past the start: the start and the one below it were) with the head in every ring slot; the
     * frame then arrives, or, when the device read the index while it stood one behind, the device
     * needs a reset naming the jump.
     */
    @Test
    void anOfferAfterTheIndexWentBackByOneStillReachesTheDevice() throws Exception {
        try (RuntimeRig rig = userspace(1)) {
            HostileGuest hostile = ready(rig);
            int size = hostile.size(1);
            int from = hostile.availIndex(1);
            hostile.moveAvailIndex(1, -1); // no kick: the device reads it only if busy-polling right now
            int d = size - 1;
            long slot = rig.layout.txSlot(0, d);
            long seq = 7_000;
            hostile.writeDescriptor(1, d, slot, placeFrame(rig, slot, 0, seq), 0, 0);
            assertEquals((from + 1) & 0xffff, hostile.offerUnmistakably(1, d));
            for (int i = 0; i < size; i++) {
                assertEquals(d, hostile.availEntry(1, i), "avail ring slot " + i);
            }
            hostile.kick(1);
            long deadline = System.nanoTime() + 10_000_000_000L;
            while (true) {
                assertTrue(System.nanoTime() < deadline, "the frame neither arrived nor did the device need a reset");
                if (rig.guest.needsReset()) {
                    String error = rig.device.model().needsResetReason().orElseThrow();
                    assertTrue(error.contains("virtqueue 1: ring index moved by more than the queue size: avail.idx "
                            + ((from - 1) & 0xffff)), error);
                    break;
                }
                byte[] frame = rig.network.nextFromGuest(20);
                if (frame != null && Frames.stream(frame) == 0 && Frames.sequence(frame) == seq) {
                    break;
                }
            }
        }
    }

    /**
     * A receive chain of pair 0 posted and kicked, its descriptor then rewritten to point into the
     * hole between the regions (the last chain posted, which the device takes only when the
     * frames before have used the ones ahead of it), while frames of a flow the TAP steers to pair
     * 0 come in: NEEDS_RESET naming virtqueue 0 and the address; every frame pair 0 got before
     * arrived exactly once, in order; pair 1 carries its frames both ways, during and after.
     */
    @Test
    void aReceiveDescriptorRewrittenAfterTheKickNeedsResetNamingTheAddress() throws Exception {
        try (RuntimeRig rig = userspace(2)) {
            HostileGuest hostile = ready(rig);
            Steering steering = steering(rig);
            assertFalse(steering.pairZero().isEmpty(), "no flow steered to pair 0 alone");
            int flow = steering.pairZero().iterator().next();
            ResourceLedger.Snapshot before = ResourceLedger.take();
            int last = hostile.availEntry(0, hostile.availIndex(0) - 1);
            long inHole = rig.layout.hole().address() + 0x1000;
            long[] sent = new long[1];
            List<RxFrame> pairZero = new ArrayList<>();
            pairOneCarries(rig, steering, 100, 40, () -> {
                hostile.rewriteAddress(0, last, inHole);
                long deadline = System.nanoTime() + EVENT * 1_000_000L;
                // frames of the flow, numbered from 0 in stream = flow, until pair 0 stops
                for (long seq = 0; !rig.guest.needsReset(); seq++) {
                    assertTrue(System.nanoTime() < deadline, "no NEEDS_RESET after " + seq + " frames");
                    rig.network.send(Frames.frame(FakeGuest.MAC, Frames.NETWORK_MAC, flow, seq,
                            Frames.variedLength(seq), flow));
                    sent[0] = seq + 1;
                    rig.guest.receive(0, pairZero);
                    rig.guest.awaitCall(5, 0);
                }
            });
            String error = awaitNeedsReset(rig, hostile);
            assertTrue(error.contains("virtqueue 0: buffer not inside guest memory (head " + last + ", descriptor "
                    + last + ", addr 0x" + Long.toHexString(inHole)), error);
            rig.guest.receive(0, pairZero);
            List<Long> received = pairZero.stream().filter(r -> Frames.isNumbered(r.frame()))
                    .map(r -> Frames.sequence(r.frame())).toList();
            for (int i = 0; i < received.size(); i++) {
                assertEquals(i, received.get(i), "frames received exactly once, in order");
            }
            long got = received.size();
            assertTrue(got > 0 && got <= sent[0], got + " of " + sent[0] + " frames received before the bad chain");
            pairOneCarries(rig, steering, 200, 40, null);
            resetBootAndCheck(rig, hostile, before);
        }
    }

    /**
     * A transmit descriptor of pair 0 rewritten into the hole right after the kick, 200 times:
     * each time either the device took the chain first (the frame arrives once, intact, and the
     * chain comes back) or it read the rewritten descriptor (NEEDS_RESET naming the address; the
     * frame never arrives). Never both, never neither. Pair 1 carries its frames both ways after.
     */
    @Test
    void aTransmitDescriptorRewrittenRightAfterTheKickIsSentOnceOrNamed() throws Exception {
        try (RuntimeRig rig = userspace(2)) {
            HostileGuest hostile = ready(rig);
            Steering steering = steering(rig);
            ResourceLedger.Snapshot before = ResourceLedger.take();
            long inHole = rig.layout.hole().address() + 0x2000;
            int used = hostile.usedIndex(1);
            String error = null;
            int sent = 0;
            for (int i = 0; i < 200 && error == null; i++) {
                int d = 100 + (i % 100);
                int length = placeFrame(rig, rig.layout.txSlot(0, d), 0, 500 + i);
                hostile.writeDescriptor(1, d, rig.layout.txSlot(0, d), length, 0, 0);
                hostile.offer(1, d);
                hostile.kick(1);
                hostile.rewriteAddress(1, d, inHole);
                long deadline = System.nanoTime() + EVENT * 1_000_000L;
                while (hostile.usedIndex(1) == used && !rig.guest.needsReset()) {
                    assertTrue(System.nanoTime() < deadline, "neither used nor NEEDS_RESET, frame " + i);
                    rig.guest.awaitCall(5, 1);
                }
                if (hostile.usedIndex(1) != used) {
                    used = (used + 1) & 0xffff;
                    assertEquals(used, hostile.usedIndex(1), "one chain back per kick");
                    byte[] frame = rig.network.nextFromGuest(EVENT);
                    assertNotNull(frame, "frame " + i + " came back used but never arrived");
                    assertEquals(500 + i, Frames.sequence(frame));
                    assertNull(Frames.damage(frame));
                    sent++;
                } else {
                    error = awaitNeedsReset(rig, hostile);
                    assertTrue(error.contains("virtqueue 1: buffer not inside guest memory (head " + d + ", descriptor "
                            + d + ", addr 0x" + Long.toHexString(inHole)), error);
                    assertNull(rig.network.nextFromGuest(0), "the refused frame arrived");
                }
            }
            System.out.println("rewrite after kick: " + sent + " frames sent before the device saw a rewrite"
                    + (error == null ? " (never saw one)" : ""));
            pairOneCarries(rig, steering, 1000, 40, null);
            if (error == null) {
                rig.device.writeStatus(0); // the guest's own driver state is stale either way
            }
            resetBootAndCheck(rig, hostile, before);
        }
    }

    /**
     * The same head offered twice while in flight. A split ring has no rule a device can check
     * against it (the spec leaves it to the driver; kernel vhost-net does not check either): the
     * device sends the frame twice and gives the head back twice, and stays running. Pinned here
     * so that a change of this behaviour is seen.
     */
    @Test
    void aHeadOfferedTwiceIsSentTwiceAndDoesNotStopTheDevice() throws Exception {
        try (RuntimeRig rig = userspace(1)) {
            HostileGuest hostile = ready(rig);
            ResourceLedger.Snapshot before = ResourceLedger.take();
            int used = hostile.usedIndex(1);
            int length = placeFrame(rig, rig.layout.txSlot(0, 150), 0, 777);
            hostile.writeDescriptor(1, 150, rig.layout.txSlot(0, 150), length, 0, 0);
            hostile.offer(1, 150, 150);
            hostile.kick(1);
            for (int k = 0; k < 2; k++) {
                byte[] frame = rig.network.nextFromGuest(EVENT);
                assertNotNull(frame, "copy " + k);
                assertEquals(777, Frames.sequence(frame));
            }
            long deadline = System.nanoTime() + EVENT * 1_000_000L;
            while (hostile.usedIndex(1) != ((used + 2) & 0xffff)) {
                assertTrue(System.nanoTime() < deadline, "the head did not come back twice");
                rig.guest.awaitCall(5, 1);
            }
            assertFalse(rig.guest.needsReset());
            assertTrue(rig.device.isDatapathRunning());
            assertEquals(Optional.empty(), hostile.damagedCanary());
            rig.device.writeStatus(0); // the fake guest's driver state of queue 1 is stale now
            resetBootAndCheck(rig, hostile, before);
        }
    }

    /**
     * The guest writes new addresses for pair 0's running queues while pair 1 has frames in
     * flight: each register write is refused naming the queue and the register, the device keeps
     * the addresses it had, and both pairs keep moving (no NEEDS_RESET: the registers are
     * read-only, nothing reached the rings).
     */
    @Test
    void aRunningQueuesAddressesCannotBeChanged() throws Exception {
        try (RuntimeRig rig = userspace(2)) {
            HostileGuest hostile = ready(rig);
            Steering steering = steering(rig);
            ResourceLedger.Snapshot before = ResourceLedger.take();
            long elsewhere = rig.layout.txSlot(1, 0);
            List<String> refusals = new ArrayList<>();
            pairOneCarries(rig, steering, 100, 40, () -> {
                for (int q : new int[] {0, 1}) {
                    refusals.add(assertThrows(VirtioTransportException.class,
                            () -> rig.device.setQueueDescTable(q, elsewhere)).getMessage());
                    refusals.add(assertThrows(VirtioTransportException.class,
                            () -> rig.device.setQueueDriverArea(q, elsewhere)).getMessage());
                    refusals.add(assertThrows(VirtioTransportException.class,
                            () -> rig.device.setQueueDeviceArea(q, elsewhere)).getMessage());
                    refusals.add(assertThrows(VirtioTransportException.class,
                            () -> rig.device.setQueueSize(q, 128)).getMessage());
                    assertEquals(rig.layout.descAddress(q), rig.device.queueDescTable(q));
                    assertEquals(rig.layout.driverAreaAddress(q), rig.device.queueDriverArea(q));
                    assertEquals(rig.layout.deviceAreaAddress(q), rig.device.queueDeviceArea(q));
                }
            });
            String[] registers = {"queue_desc", "queue_driver", "queue_device", "queue_size"};
            for (int i = 0; i < refusals.size(); i++) {
                int q = i < 4 ? 0 : 1;
                assertTrue(refusals.get(i).startsWith("queue " + q + ": " + registers[i % 4] + " write refused"),
                        refusals.get(i));
            }
            assertFalse(rig.guest.needsReset());
            assertEquals(40, DeviceTraffic.transmitAndCheck(rig, 200, 40));
            assertEquals(Optional.empty(), hostile.damagedCanary());
            resetBootAndCheck(rig, hostile, before);
        }
    }

    /** What a hostile packed-ring driver does on pair 0's transmit queue. */
    enum PackedAttack { OVERLONG_CHAIN, ID_OUT_OF_RANGE, OUTSIDE_GUEST_MEMORY, OTHER_LAP }

    static RuntimeRig packed(int pairs) throws Exception {
        RuntimeRig rig = RuntimeRig.on(pairs, UserspaceNetBackend::open, 0, VirtioFeature.RING_PACKED);
        if (!rig.guest.packed()) {
            rig.close();
            throw new AssertionError("RING_PACKED not negotiated");
        }
        return rig;
    }

    /**
     * Packed rings, pair 0's transmit queue, while pair 1 has frames in flight: a chain of NEXT
     * descriptors round the whole ring (a loop), a buffer id past the queue size, a buffer in the
     * hole between the regions, a chain whose second descriptor carries the other lap's avail/used
     * bits. Each: NEEDS_RESET naming virtqueue 1, the rule, the head and what was wrong; pair 1
     * carries its frames both ways, during and after; canaries intact; everything released after
     * the driver's reset.
     */
    @ParameterizedTest
    @EnumSource(PackedAttack.class)
    void aPackedRingAttackStopsOnlyItsPair(PackedAttack attack) throws Exception {
        try (RuntimeRig rig = packed(2)) {
            HostileGuest hostile = ready(rig);
            Steering steering = steering(rig);
            ResourceLedger.Snapshot before = ResourceLedger.take();
            int size = hostile.size(1);
            long slot = rig.layout.txSlot(0, 10);
            int length = placeFrame(rig, slot, 0, 9);
            long inHole = rig.layout.hole().address() + 0x3000;
            int[] head = new int[1];
            pairOneCarries(rig, steering, 100, 40, () -> {
                head[0] = switch (attack) {
                    case OVERLONG_CHAIN -> hostile.overlongPackedChain(1, slot, length, 3);
                    case ID_OUT_OF_RANGE -> hostile.offerPacked(1, PackedDescriptor.of(slot, length, size + 3, 0));
                    case OUTSIDE_GUEST_MEMORY -> hostile.offerPacked(1, PackedDescriptor.of(inHole, length, 3, 0));
                    case OTHER_LAP -> hostile.offerPacked(1, PackedDescriptor.of(slot, 12, 3, HostileGuest.F_NEXT),
                            new PackedDescriptor(slot + 12, length - 12, 3, 0, true));
                };
                hostile.kick(1);
            });
            String error = awaitNeedsReset(rig, hostile);
            int h = head[0];
            String expected = switch (attack) {
                case OVERLONG_CHAIN -> "virtqueue 1: descriptor loop or chain longer than the queue size (head " + h;
                case ID_OUT_OF_RANGE -> "virtqueue 1: buffer id not below the queue size or already in flight (head "
                        + h + ", descriptor " + h;
                case OUTSIDE_GUEST_MEMORY -> "virtqueue 1: buffer not inside guest memory (head " + h + ", descriptor "
                        + h + ", addr 0x" + Long.toHexString(inHole);
                case OTHER_LAP -> "virtqueue 1: descriptor of a chain not marked available (head " + h
                        + ", descriptor " + ((h + 1) % size);
            };
            assertTrue(error.contains(expected), error);
            String detail = switch (attack) {
                case OVERLONG_CHAIN -> "VIRTQ_DESC_F_NEXT on descriptor " + size + " of a queue of " + size;
                case ID_OUT_OF_RANGE -> "buffer id " + (size + 3) + " not below the queue size " + size;
                case OUTSIDE_GUEST_MEMORY -> "falls in a hole of guest memory";
                case OTHER_LAP -> "in a NEXT chain, wrap counter";
            };
            assertTrue(error.contains(detail), error);
            pairOneCarries(rig, steering, 200, 40, null);
            resetBootAndCheck(rig, hostile, before);
        }
    }
}

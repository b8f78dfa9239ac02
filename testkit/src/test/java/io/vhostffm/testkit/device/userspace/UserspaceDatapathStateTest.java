package io.vhostffm.testkit.device.userspace;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.testkit.Frames;
import io.vhostffm.testkit.GuestArea;
import io.vhostffm.testkit.RxFrame;
import io.vhostffm.testkit.TxShape;
import io.vhostffm.vhost.device.DirtyLog;
import io.vhostffm.vhost.device.userspace.QueuePairConfig;
import io.vhostffm.vhost.device.userspace.QueuePairStats;
import io.vhostffm.vhost.device.userspace.UserspaceDatapath;
import io.vhostffm.vhost.virtio.DeviceStatus;
import io.vhostffm.vring.DriverQueue;
import io.vhostffm.vring.QueueState;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.TreeSet;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * What the userspace datapath leaves behind: the dirty log, the queue states it reports on stop
 * (a restart from them loses and repeats nothing), and the device state after bad guest input.
 */
class UserspaceDatapathStateTest {

    @Test
    void dirtyLogShowsTheWrittenPagesAndNoOthers() throws Exception {
        try (DatapathRig rig = new DatapathRig(1, true); DirtyLog log = DirtyLog.covering(rig.memory)) {
            rig.guest.postRxBuffers(0, 8);
            UserspaceDatapath backend = UserspaceDatapath.start(rig.memory, rig.configs(), rig.device, log);
            List<byte[]> frames = List.of(Frames.frame(FakeGuest.MAC, Frames.NETWORK_MAC, 5, 0, 1400, -1),
                    Frames.frame(Frames.BROADCAST, Frames.NETWORK_MAC, 5, 1, 100, -1),
                    Frames.frame(FakeGuest.MAC, Frames.NETWORK_MAC, 5, 2, 200, -1));
            List<RxFrame> got;
            try {
                got = rig.receive(frames, 10, 3);
                // two transmitted frames: the device only reads their buffers
                rig.transmitAndCheck(new int[] {0}, 0, 2, new int[] {300, 1514}, 2);
            } finally {
                backend.stop();
            }
            assertEquals(3, got.size());
            TreeSet<Long> expected = new TreeSet<>();
            for (RxFrame r : got) {
                for (GuestArea b : r.buffers()) {
                    for (long page = b.address() >>> 12; page <= (b.end() - 1) >>> 12; page++) {
                        expected.add(page);
                    }
                }
            }
            expected.add(rig.layout.deviceAreaAddress(0) >>> 12); // rx used ring (avail_event on the same page)
            expected.add(rig.layout.deviceAreaAddress(1) >>> 12); // tx used ring
            TreeSet<Long> dirty = new TreeSet<>();
            for (long address : log.fetchAndClear()) {
                dirty.add(address >>> 12);
            }
            assertEquals(expected, dirty, "descriptor tables, avail rings, transmit buffers and the unused "
                    + "receive buffers must stay clean");
        }
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"tx buffer outside guest memory", "tx chain with a writable buffer",
            "tx chain shorter than the header", "rx chain with a readable buffer", "rx descriptor loop"})
    void badGuestInputPutsOnlyThatDeviceInNeedsReset(String attack) throws Exception {
        try (DatapathRig victim = new DatapathRig(1, true); DatapathRig bystander = new DatapathRig(1, true)) {
            bystander.guest.postRxBuffers();
            UserspaceDatapath healthy = UserspaceDatapath.start(bystander.memory, bystander.configs(),
                    bystander.device, null);
            FakeGuest bad = victim.guest;
            if (attack.startsWith("tx")) {
                bad.postRxBuffers(0, 4); // good receive buffers next to the bad transmit chain
            }
            UserspaceDatapath broken = null;
            try {
                long slot = victim.layout.txSlot(0, 0);
                DriverQueue tx = bad.tx(0);
                DriverQueue rx = bad.rx(0);
                int expectedQueue;
                String expectedText;
                switch (attack) {
                    case "tx buffer outside guest memory" -> {
                        tx.add(new long[] {slot, 0x7000_0000_0000L}, new int[] {12, 100}, 2, 0);
                        expectedQueue = 1;
                        expectedText = "buffer not inside guest memory";
                    }
                    case "tx chain with a writable buffer" -> {
                        tx.add(new long[] {slot, slot + 512}, new int[] {100, 100}, 1, 1);
                        expectedQueue = 1;
                        expectedText = "1 device-writable buffer(s)";
                    }
                    case "tx chain shorter than the header" -> {
                        tx.add(new long[] {slot}, new int[] {5}, 1, 0);
                        expectedQueue = 1;
                        expectedText = "has 5 bytes, less than the 12-byte virtio_net_hdr";
                    }
                    case "rx chain with a readable buffer" -> {
                        rx.add(new long[] {slot, slot + 512}, new int[] {100, 1000}, 1, 1);
                        expectedQueue = 0;
                        expectedText = "1 device-readable buffer(s)";
                    }
                    case "rx descriptor loop" -> {
                        // An indirect table whose entry 1 points back to entry 0 (NEXT, next = 0).
                        long table = victim.layout.indirectTable(0, 0);
                        rx.addIndirect(table, new long[] {slot, slot + 512}, new int[] {512, 512}, 0, 2);
                        victim.memory.slice(table + 16 + 12, 2).set(ValueLayout.JAVA_SHORT_UNALIGNED, 0,
                                (short) 3);  // flags NEXT | WRITE on the last entry
                        victim.memory.slice(table + 16 + 14, 2).set(ValueLayout.JAVA_SHORT_UNALIGNED, 0,
                                (short) 0);  // next = 0: a loop
                        expectedQueue = 0;
                        expectedText = "virtqueue 0";
                    }
                    default -> throw new IllegalArgumentException(attack);
                }
                // Started after the bad chain is in place (the loop is written after the chain is
                // made available, so a datapath already running could take the chain before).
                broken = UserspaceDatapath.start(victim.memory, victim.configs(), victim.device, null);
                victim.awaitNeedsReset();
                // it stops itself from its own thread: wait for its threads' end
                awaitThreadsEnd("(tap " + victim.tap.name());
                assertFalse(broken.isRunning(), "the datapath stopped");
                String reason = broken.failure().orElseThrow();
                assertTrue(reason.contains("virtqueue " + expectedQueue), reason);
                assertTrue(reason.contains(expectedText), reason);
                assertEquals(DeviceStatus.DEVICE_NEEDS_RESET,
                        victim.device.status() & DeviceStatus.DEVICE_NEEDS_RESET, "victim in NEEDS_RESET");
                assertEquals(List.of(reason), victim.needsResetReasons);
                // Nothing was completed for the bad chain.
                assertEquals(0, tx.collectUsed(new int[1], new int[1], 1));
                assertEquals(0, rx.collectUsed(new int[1], new int[1], 1));
                assertEquals(2, broken.stop().size(), "stop still reports the queues");

                // The other device carries on both ways.
                assertEquals(0, bystander.device.status() & DeviceStatus.DEVICE_NEEDS_RESET);
                List<byte[]> frames = new ArrayList<>();
                for (int i = 0; i < 100; i++) {
                    frames.add(Frames.frame(FakeGuest.MAC, Frames.NETWORK_MAC, 5, i, 64 + i, -1));
                }
                List<RxFrame> got = bystander.receive(frames, 50, 100);
                for (int i = 0; i < 100; i++) {
                    assertArrayEquals(frames.get(i), got.get(i).frame());
                }
                bystander.transmitAndCheck(new int[] {0}, 0, 100, UserspaceDatapathTest.lengths(new Random(6), 100), 100);
                assertTrue(healthy.isRunning());
                assertTrue(bystander.needsResetReasons.isEmpty());
            } finally {
                if (broken != null) {
                    broken.stop();
                }
                healthy.stop();
            }
        }
    }

    /**
     * Two pairs, a transmit buffer of pair 0 outside guest memory: pair 0 stops (on a worker of
     * its own, that thread ends; on a shared one, the thread goes on) and {@code stoppedPairs()}
     * names it with the reason the device got; the datapath still runs and pair 1 transmits 100
     * frames, each arriving once, in order; stop reports all four queues.
     */
    @ParameterizedTest(name = "{0} worker threads")
    @ValueSource(ints = {1, 2})
    void badGuestInputStopsOnlyThatPair(int workers) throws Exception {
        try (DatapathRig rig = new DatapathRig(2, true)) {
            rig.guest.tx(0).add(new long[] {rig.layout.txSlot(0, 0), 0x7000_0000_0000L}, new int[] {12, 100}, 2, 0);
            UserspaceDatapath datapath = UserspaceDatapath.start(rig.memory, rig.configs(), rig.device, null, workers);
            try {
                assertEquals(workers, datapath.workerThreads());
                rig.awaitNeedsReset();
                if (workers == 2) {
                    awaitThreadsEnd("pair 0 (tap " + rig.tap.name());
                } else {
                    assertTrue(sharedWorker(rig).isAlive(), "the shared worker serves pair 1 on");
                }
                assertTrue(datapath.isRunning(), "pair 1 still runs");
                String reason = rig.needsResetReasons.getFirst();
                assertTrue(reason.startsWith("userspace datapath, queue pair 0: virtqueue 1: buffer not inside guest memory"),
                        reason);
                assertEquals(java.util.Map.of(0, reason), datapath.stoppedPairs());
                rig.transmitAndCheck(new int[] {1}, 0, 100, UserspaceDatapathTest.lengths(new Random(7), 100), 50);
                assertEquals(java.util.Map.of(0, reason), datapath.stoppedPairs());
            } finally {
                assertEquals(4, datapath.stop().size(), "stop reports every queue");
            }
            assertFalse(datapath.isRunning());
        }
    }

    /**
     * Two pairs on one worker thread, pair 1 carrying a stream of frames: between two stretches
     * of it the guest puts a chain with a buffer outside guest memory on pair 0 and kicks, and
     * pair 1's stream goes straight on, not waiting for the report. Pair 0 stops alone (the
     * device hears of it once, {@code stoppedPairs()} names it), the shared thread keeps
     * running, every frame of pair 1 arrives once and in order, before, across and after the
     * stop, and stop reports all four queues, pair 0's transmit queue with the bad chain not
     * completed (given back: its used index did not move).
     */
    @Test
    void sharedWorkerServesTheOtherPairOnWhenOnePairStopsOnBadInput() throws Exception {
        try (DatapathRig rig = new DatapathRig(2, true)) {
            UserspaceDatapath datapath = UserspaceDatapath.start(rig.memory, rig.configs(), rig.device, null, 1);
            List<QueueState> states = List.of();
            try {
                assertEquals(1, datapath.workerThreads());
                Thread shared = sharedWorker(rig);
                Random random = new Random(21);
                rig.transmitAndCheck(new int[] {1}, 0, 300, UserspaceDatapathTest.lengths(random, 300), 50);

                rig.guest.tx(0).add(new long[] {rig.layout.txSlot(0, 0), 0x7000_0000_0000L}, new int[] {12, 100}, 2, 0);
                rig.guest.kickIfNeeded(1);
                rig.transmitAndCheck(new int[] {1}, 300, 300, UserspaceDatapathTest.lengths(random, 300), 50);

                rig.awaitNeedsReset();
                String reason = rig.needsResetReasons.getFirst();
                assertTrue(reason.startsWith("userspace datapath, queue pair 0: virtqueue 1: buffer not inside guest memory"),
                        reason);
                assertEquals(java.util.Map.of(0, reason), datapath.stoppedPairs());
                rig.transmitAndCheck(new int[] {1}, 600, 300, UserspaceDatapathTest.lengths(random, 300), 50);
                assertTrue(shared.isAlive(), "the shared worker serves pair 1 on");
                assertTrue(datapath.isRunning(), "pair 1 still runs");
                assertEquals(java.util.Map.of(0, reason), datapath.stoppedPairs());
                assertEquals(1, rig.needsResetReasons.size(), "pair 0 reported once");
                assertEquals(900, datapath.stats(1).txFrames());
                assertEquals(0, datapath.stats(0).txFrames());
            } finally {
                states = datapath.stop();
            }
            assertEquals(4, states.size(), "stop reports every queue");
            assertEquals(0, states.get(1).position().usedIdx(), "pair 0's bad chain never completed");
            assertFalse(datapath.isRunning());
            awaitThreadsEnd("pair 0 (tap " + rig.tap.name());
        }
    }

    /** The one worker thread serving both pairs of {@code rig}'s TAP. */
    private static Thread sharedWorker(DatapathRig rig) {
        String name = "vhost-ffm userspace datapath pair 0 (tap " + rig.tap.name();
        return Thread.getAllStackTraces().keySet().stream()
                .filter(t -> t.getName().startsWith(name) && t.getName().contains(", pair 1 (tap " + rig.tap.name()))
                .findFirst().orElseThrow(() -> new AssertionError("no worker thread serves pairs 0 and 1"));
    }

    /** Joins, with a deadline, every live thread whose name contains {@code marker}. */
    static void awaitThreadsEnd(String marker) throws InterruptedException {
        long deadline = System.nanoTime() + DatapathRig.TIMEOUT_MILLIS * 1_000_000L;
        for (Thread t : Thread.getAllStackTraces().keySet()) {
            if (t.getName().contains(marker)) {
                t.join(Math.max(1, (deadline - System.nanoTime()) / 1_000_000L));
                assertFalse(t.isAlive(), () -> t.getName() + " still runs");
            }
        }
    }

    /** Restarts the stream must see before it ends. */
    private static final int MIN_SWITCHES = 5;

    @Test
    void restartingFromTheReportedStatesMidStreamLosesAndRepeatsNothing() throws Exception {
        int frames = 10_000;
        try (DatapathRig rig = new DatapathRig(1, true)) {
            FakeGuest guest = rig.guest;
            guest.postRxBuffers();
            List<QueuePairConfig> configs = rig.configs();
            AtomicReference<UserspaceDatapath> current = new AtomicReference<>(
                    UserspaceDatapath.start(rig.memory, configs, rig.device, null));
            List<QueuePairStats> finished = new ArrayList<>();
            AtomicInteger switches = new AtomicInteger();
            AtomicReference<Throwable> switchFailure = new AtomicReference<>();
            AtomicBoolean streaming = new AtomicBoolean(true);
            // The stream goes in MIN_SWITCHES + 1 parts: once a part is all in flight, the guest
            // asks for a restart (a permit) and the next part waits for it; so the stream cannot
            // end before MIN_SWITCHES restarts, each with frames of its part still in flight.
            Semaphore restartAsked = new Semaphore(0);
            Thread switcher = Thread.ofPlatform().name("datapath restarter").start(() -> {
                try {
                    while (streaming.get()) {
                        if (!restartAsked.tryAcquire(100, TimeUnit.MILLISECONDS)) {
                            continue;
                        }
                        UserspaceDatapath old = current.get();
                        List<QueueState> states = old.stop();
                        finished.add(old.stats());
                        current.set(UserspaceDatapath.start(rig.memory,
                                List.of(configs.get(0).withStates(states.get(0), states.get(1))), rig.device, null));
                        switches.incrementAndGet();
                    }
                } catch (Throwable t) {
                    switchFailure.set(t);
                }
            });
            Random random = new Random(7);
            int[] txLengths = UserspaceDatapathTest.lengths(random, frames);
            List<byte[]> sentRx = new ArrayList<>();
            for (int i = 0; i < frames; i++) {
                sentRx.add(Frames.frame(FakeGuest.MAC, Frames.NETWORK_MAC, 2, i, DatapathRig.frameSize(random, i), -1));
            }
            List<byte[]> gotRx = new ArrayList<>();
            long nextTxArrival = 0;
            try {
                int tx = 0;
                int injected = 0;
                int asked = 0;
                List<RxFrame> batch = new ArrayList<>();
                long deadline = System.nanoTime() + DatapathRig.TIMEOUT_MILLIS * 1_000_000L;
                while (tx < frames || gotRx.size() < frames || nextTxArrival < frames) {
                    int released = (int) Math.min(frames, (long) (switches.get() + 1) * frames / (MIN_SWITCHES + 1));
                    // transmit: as many as the ring and a window towards the wire allow
                    while (tx < released && tx - nextTxArrival < 400
                            && guest.transmit(0, Frames.frame(Frames.BROADCAST, FakeGuest.MAC, 1, tx, txLengths[tx], -1),
                                    TxShape.cycle(tx)) >= 0) {
                        tx++;
                    }
                    guest.kickIfNeeded(1);
                    guest.collectTx(0);
                    // receive: inject within a window the TAP's queue can hold, collect, repost
                    while (injected < released && injected - gotRx.size() < 200) {
                        rig.network.send(sentRx.get(injected++));
                    }
                    if (tx == released && injected == released && released < frames && asked <= switches.get()
                            && asked < MIN_SWITCHES) {
                        asked++;
                        restartAsked.release();
                    }
                    batch.clear();
                    guest.receive(batch);
                    for (RxFrame r : batch) {
                        if (Frames.isNumbered(r.frame())) {
                            gotRx.add(r.frame());
                        }
                    }
                    byte[] f;
                    while ((f = rig.network.nextFromGuest(batch.isEmpty() ? 1 : 0)) != null) {
                        if (Frames.stream(f) != 1) {
                            continue;
                        }
                        assertEquals(nextTxArrival, Frames.sequence(f), "tx frames once, in order");
                        assertEquals(txLengths[(int) nextTxArrival], f.length);
                        assertEquals(null, Frames.damage(f));
                        nextTxArrival++;
                    }
                    if (System.nanoTime() > deadline) {
                        fail("stalled: tx " + tx + " sent, " + nextTxArrival + " on the wire; rx " + gotRx.size()
                                + " received of " + injected + " injected; " + switches.get() + " switches",
                                switchFailure.get());
                    }
                }
                streaming.set(false);
                switcher.join();
                assertEquals(null, switchFailure.get());
                rig.drainTx(0);
                for (int i = 0; i < frames; i++) {
                    assertArrayEquals(sentRx.get(i), gotRx.get(i), "rx frame " + i);
                }
                // Nothing twice: a marker frame each way after the stream comes next, not a repeat.
                assertEquals(1, guest.transmit(0, Frames.frame(Frames.BROADCAST, FakeGuest.MAC, 1, frames, 60, -1),
                        TxShape.SINGLE) >= 0 ? 1 : 0);
                guest.kickIfNeeded(1);
                byte[] marker = rig.network.nextFromGuest(DatapathRig.TIMEOUT_MILLIS);
                while (marker != null && Frames.stream(marker) != 1) {
                    marker = rig.network.nextFromGuest(DatapathRig.TIMEOUT_MILLIS);
                }
                assertTrue(marker != null && Frames.sequence(marker) == frames, "no transmitted frame twice");
                byte[] rxMarker = Frames.frame(FakeGuest.MAC, Frames.NETWORK_MAC, 2, frames, 60, -1);
                List<RxFrame> after = rig.receive(List.of(rxMarker), 1, 1);
                assertArrayEquals(rxMarker, after.get(0).frame(), "no received frame twice");
            } finally {
                streaming.set(false);
                switcher.join();
                finished.add(current.get().stats());
                current.get().stop();
            }
            long dropped = finished.stream().mapToLong(QueuePairStats::rxDropped).sum();
            assertEquals(0, dropped);
            assertTrue(switches.get() >= MIN_SWITCHES, "switched " + switches.get() + " times mid-stream");
        }
    }
}

package io.vhostffm.vhost.device.userspace;

import static io.vhostffm.vhost.device.userspace.GuestNetRig.BROADCAST;
import static io.vhostffm.vhost.device.userspace.GuestNetRig.DEVICE_MAC;
import static io.vhostffm.vhost.device.userspace.GuestNetRig.frame;
import static io.vhostffm.vhost.device.userspace.UserspaceDatapathTest.drainTx;
import static io.vhostffm.vhost.device.userspace.UserspaceDatapathTest.frameSize;
import static io.vhostffm.vhost.device.userspace.UserspaceDatapathTest.receive;
import static io.vhostffm.vhost.device.userspace.UserspaceDatapathTest.transmit;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.vhostffm.vhost.device.DirtyLog;
import io.vhostffm.vhost.virtio.DeviceStatus;
import io.vhostffm.vhost.device.userspace.GuestNetRig.GuestPair;
import io.vhostffm.vring.QueueState;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * What the userspace datapath leaves behind: the dirty log, the queue states it reports on stop
 * (a restart from them loses and repeats nothing), and the device state after bad guest input.
 */
class UserspaceDatapathStateTest {
    private static final long TIMEOUT_MS = 60_000;

    @Test
    void dirtyLogShowsTheWrittenPagesAndNoOthers() throws Exception {
        try (GuestNetRig rig = new GuestNetRig(1, true); Arena arena = Arena.ofShared();
                DirtyLog log = DirtyLog.covering(rig.memory)) {
            GuestPair pair = rig.pairs.get(0);
            pair.postRxBuffers(8);
            UserspaceDatapath backend = UserspaceDatapath.start(rig.memory, rig.configs(), rig.device, log);
            List<byte[]> frames = List.of(frame(DEVICE_MAC, 1400, 5, 0), frame(BROADCAST, 100, 5, 1),
                    frame(DEVICE_MAC, 200, 5, 2));
            List<byte[]> got;
            try (WireReader reader = new WireReader(rig.wire, f -> GuestNetRig.ours(f) && GuestNetRig.tagOf(f) == 0)) {
                got = receive(rig, arena, List.of(pair), frames, 10);
                // two transmitted frames: the device only reads their buffers
                transmit(pair, reader, 2, 0, new Random(5), 0);
                drainTx(pair);
                assertEquals(2, reader.await(2, TIMEOUT_MS));
            } finally {
                backend.stop();
            }
            assertEquals(3, got.size());
            TreeSet<Long> expected = new TreeSet<>();
            for (long[] range : pair.rxWritten) {
                for (long page = range[0] >>> 12; page <= (range[0] + range[1] - 1) >>> 12; page++) {
                    expected.add(page);
                }
            }
            assertEquals(4, expected.size(), "4 receive chains in 4 slot pages: " + expected);
            expected.add(0x2000L >>> 12);   // rx used ring: used elements, used.idx (avail_event on the same page)
            expected.add(0x12000L >>> 12);  // tx used ring
            TreeSet<Long> dirty = new TreeSet<>();
            for (long address : log.fetchAndClear()) {
                dirty.add(address >>> 12);
            }
            assertEquals(expected, dirty, "descriptor tables, avail rings, transmit buffers and the 4 unused "
                    + "receive buffers must stay clean");
        }
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"tx buffer outside guest memory", "tx chain with a writable buffer",
            "tx chain shorter than the header", "rx chain with a readable buffer", "rx descriptor loop"})
    void badGuestInputPutsOnlyThatDeviceInNeedsReset(String attack) throws Exception {
        try (GuestNetRig victim = new GuestNetRig(1, true); GuestNetRig bystander = new GuestNetRig(1, true);
                Arena arena = Arena.ofShared()) {
            bystander.pairs.get(0).postRxBuffers(GuestNetRig.SIZE);
            UserspaceDatapath healthy = UserspaceDatapath.start(bystander.memory, bystander.configs(),
                    bystander.device, null);
            GuestPair bad = victim.pairs.get(0);
            if (attack.startsWith("tx")) {
                bad.postRxBuffers(4); // good receive buffers next to the bad transmit chain
            }
            UserspaceDatapath broken = null;
            try {
                long slot = bad.txSlots;
                int expectedQueue;
                String expectedText;
                switch (attack) {
                    case "tx buffer outside guest memory" -> {
                        bad.tx.add(new long[] {slot, 0x7000_0000_0000L}, new int[] {12, 100}, 2, 0);
                        expectedQueue = 1;
                        expectedText = "buffer not inside guest memory";
                    }
                    case "tx chain with a writable buffer" -> {
                        bad.tx.add(new long[] {slot, slot + 512}, new int[] {100, 100}, 1, 1);
                        expectedQueue = 1;
                        expectedText = "1 device-writable buffer(s)";
                    }
                    case "tx chain shorter than the header" -> {
                        bad.tx.add(new long[] {slot}, new int[] {5}, 1, 0);
                        expectedQueue = 1;
                        expectedText = "has 5 bytes, less than the 12-byte virtio_net_hdr";
                    }
                    case "rx chain with a readable buffer" -> {
                        bad.rx.add(new long[] {slot, slot + 512}, new int[] {100, 1000}, 1, 1);
                        expectedQueue = 0;
                        expectedText = "1 device-readable buffer(s)";
                    }
                    case "rx descriptor loop" -> {
                        // An indirect table whose entry 1 points back to entry 0 (NEXT, next = 0).
                        long table = slot + 2048;
                        bad.rx.addIndirect(table, new long[] {slot, slot + 512}, new int[] {512, 512}, 0, 2);
                        victim.at(table + 16 + 12, 2).set(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, 0,
                                (short) 3);  // flags NEXT | WRITE on the last entry
                        victim.at(table + 16 + 14, 2).set(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, 0,
                                (short) 0);  // next = 0: a loop
                        expectedQueue = 0;
                        expectedText = "virtqueue 0";
                    }
                    default -> throw new IllegalArgumentException(attack);
                }
                // Started after the bad chain is in place (the loop is written after the chain is
                // made available, so a datapath already running could take the chain before).
                broken = UserspaceDatapath.start(victim.memory, victim.configs(), victim.device, null);
                long deadline = System.currentTimeMillis() + TIMEOUT_MS;
                while (broken.isRunning() && System.currentTimeMillis() < deadline) {
                    Thread.sleep(5);
                }
                assertFalse(broken.isRunning(), "the datapath stopped");
                String reason = broken.failure().orElseThrow();
                assertTrue(reason.contains("virtqueue " + expectedQueue), reason);
                assertTrue(reason.contains(expectedText), reason);
                assertEquals(DeviceStatus.DEVICE_NEEDS_RESET,
                        victim.device.status() & DeviceStatus.DEVICE_NEEDS_RESET, "victim in NEEDS_RESET");
                assertEquals(List.of(reason), victim.needsResetReasons);
                // Nothing was completed for the bad chain.
                assertEquals(0, bad.collectTx());
                assertEquals(null, bad.nextRxFrame());
                assertEquals(2, broken.stop().size(), "stop still reports the queues");

                // The other device carries on both ways.
                assertEquals(0, bystander.device.status() & DeviceStatus.DEVICE_NEEDS_RESET);
                GuestPair good = bystander.pairs.get(0);
                List<byte[]> frames = new ArrayList<>();
                for (int i = 0; i < 100; i++) {
                    frames.add(frame(DEVICE_MAC, 64 + i, 5, i));
                }
                List<byte[]> got = receive(bystander, arena, List.of(good), frames, 50);
                for (int i = 0; i < 100; i++) {
                    assertArrayEquals(frames.get(i), got.get(i));
                }
                try (WireReader reader = new WireReader(bystander.wire, f -> GuestNetRig.ours(f) && GuestNetRig.tagOf(f) == 0)) {
                    transmit(good, reader, 100, 0, new Random(6), 0);
                    assertEquals(100, reader.await(100, TIMEOUT_MS));
                }
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

    /** Restarts the stream must see before it ends. */
    private static final int MIN_SWITCHES = 5;

    @Test
    void restartingFromTheReportedStatesMidStreamLosesAndRepeatsNothing() throws Exception {
        int frames = 10_000;
        try (GuestNetRig rig = new GuestNetRig(1, true); Arena arena = Arena.ofShared()) {
            rig.wire.setReceiveBuffer(8 << 20);
            GuestPair pair = rig.pairs.get(0);
            pair.postRxBuffers(GuestNetRig.SIZE);
            List<QueuePairConfig> configs = rig.configs();
            AtomicReference<UserspaceDatapath> current = new AtomicReference<>(
                    UserspaceDatapath.start(rig.memory, configs, rig.device, null));
            List<QueuePairStats> finished = new ArrayList<>();
            java.util.concurrent.atomic.AtomicInteger switches = new java.util.concurrent.atomic.AtomicInteger();
            AtomicReference<Throwable> switchFailure = new AtomicReference<>();
            java.util.concurrent.atomic.AtomicBoolean streaming = new java.util.concurrent.atomic.AtomicBoolean(true);
            Thread switcher = Thread.ofPlatform().start(() -> {
                try {
                    while (streaming.get()) {
                        Thread.sleep(15);
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
            List<byte[]> sentTx = new ArrayList<>();
            List<byte[]> sentRx = new ArrayList<>();
            Random random = new Random(7);
            for (int i = 0; i < frames; i++) {
                sentTx.add(frame(BROADCAST, frameSize(random, i), 1, i));
                sentRx.add(frame(DEVICE_MAC, frameSize(random, i), 2, i));
            }
            List<byte[]> gotRx = new ArrayList<>();
            MemorySegment scratch = arena.allocate(70000);
            try (WireReader reader = new WireReader(rig.wire, f -> GuestNetRig.ours(f) && GuestNetRig.tagOf(f) == 1)) {
                int tx = 0;
                int injected = 0;
                long deadline = System.currentTimeMillis() + TIMEOUT_MS;
                while (tx < frames || gotRx.size() < frames) {
                    // The stream goes in MIN_SWITCHES + 1 parts, each after one more switch: it cannot
                    // end before MIN_SWITCHES restarts, however fast it runs against the switcher.
                    int released = (int) Math.min(frames, (long) (switches.get() + 1) * frames / (MIN_SWITCHES + 1));
                    // transmit: as many as the ring and a window towards the wire allow
                    while (tx < released && tx - reader.count() < 400 && pair.addTx(tx, sentTx.get(tx), random)) {
                        tx++;
                    }
                    pair.collectTx();
                    // receive: inject within a window the TAP's queue can hold, collect, repost
                    while (injected < released && injected - gotRx.size() < 200) {
                        rig.inject(arena, scratch, sentRx.get(injected++));
                    }
                    byte[] f;
                    boolean any = false;
                    while ((f = pair.nextRxFrame()) != null) {
                        any = true;
                        if (GuestNetRig.ours(f)) {
                            gotRx.add(f);
                        }
                    }
                    pair.postRxBuffers(GuestNetRig.SIZE);
                    if (!any) {
                        pair.awaitRx(1);
                    }
                    if (System.currentTimeMillis() > deadline) {
                        fail("stalled: tx " + tx + " sent, " + reader.count() + " on the wire; rx " + gotRx.size()
                                + " received of " + injected + " injected; " + switches.get() + " switches",
                                switchFailure.get());
                    }
                }
                assertEquals(frames, reader.await(frames, TIMEOUT_MS));
                streaming.set(false);
                switcher.join();
                assertEquals(null, switchFailure.get());
                drainTx(pair);
                List<byte[]> gotTx = reader.frames();
                Thread.sleep(100);
                assertEquals(frames, reader.count(), "no transmitted frame twice");
                for (int i = 0; i < frames; i++) {
                    assertArrayEquals(sentTx.get(i), gotTx.get(i), "tx frame " + i);
                    assertArrayEquals(sentRx.get(i), gotRx.get(i), "rx frame " + i);
                }
                assertEquals(null, pair.nextRxFrame(), "no received frame twice");
            } finally {
                streaming.set(false);
                switcher.join();
                finished.add(current.get().stats());
                current.get().stop();
            }
            long dropped = finished.stream().mapToLong(QueuePairStats::rxDropped).sum();
            assertEquals(0, dropped);
            assertTrue(switches.get() >= MIN_SWITCHES, "switched " + switches.get() + " times mid-stream");
            System.out.printf("userspace -> userspace: %d switches during %d frames each way, every frame once%n",
                    switches.get(), frames);
        }
    }
}

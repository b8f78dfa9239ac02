package io.vhostffm.testkit.device.userspace;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.testkit.Frames;
import io.vhostffm.testkit.RxFrame;
import io.vhostffm.vhost.device.userspace.UserspaceDatapath;
import io.vhostffm.vhost.virtio.net.VirtioNetCtrl;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The userspace datapath against a real TAP, with the testkit's {@link FakeGuest} as the guest and
 * an AF_PACKET socket as the network (needs root: TAP and raw sockets).
 */
class UserspaceDatapathTest {
    private static final int FRAMES = 10_000;

    static int[] lengths(Random random, int count) {
        int[] l = new int[count];
        for (int i = 0; i < count; i++) {
            l[i] = DatapathRig.frameSize(random, i);
        }
        return l;
    }

    @ParameterizedTest(name = "event idx {0}")
    @ValueSource(booleans = {false, true})
    void transmits10000FramesByteForByteInOrder(boolean eventIdx) throws Exception {
        try (DatapathRig rig = new DatapathRig(1, eventIdx)) {
            UserspaceDatapath backend = UserspaceDatapath.start(rig.memory, rig.configs(), rig.device, null);
            try {
                rig.transmitAndCheck(new int[] {0}, 0, FRAMES, lengths(new Random(eventIdx ? 1 : 2), FRAMES), 500);
                assertEquals(FRAMES, backend.stats().txFrames());
                assertEquals(0, backend.stats().txErrors());
            } finally {
                backend.stop();
            }
        }
    }

    @ParameterizedTest(name = "event idx {0}")
    @ValueSource(booleans = {true, false})
    void receives10000FramesIntoMergeableBuffers(boolean eventIdx) throws Exception {
        try (DatapathRig rig = new DatapathRig(1, eventIdx)) {
            rig.guest.postRxBuffers();
            UserspaceDatapath backend = UserspaceDatapath.start(rig.memory, rig.configs(), rig.device, null);
            try {
                Random random = new Random(eventIdx ? 3 : 4);
                List<byte[]> sent = new ArrayList<>();
                for (int i = 0; i < FRAMES; i++) {
                    sent.add(Frames.frame(i % 3 == 0 ? Frames.BROADCAST : FakeGuest.MAC, Frames.NETWORK_MAC, 0, i,
                            DatapathRig.frameSize(random, i), -1));
                }
                List<RxFrame> got = rig.receive(sent, 200, FRAMES);
                assertEquals(FRAMES, got.size());
                int merged = 0;
                for (int i = 0; i < FRAMES; i++) {
                    assertArrayEquals(sent.get(i), got.get(i).frame(), "frame " + i + " in the guest");
                    merged += got.get(i).numBuffers() > 1 ? 1 : 0;
                }
                assertTrue(merged > 1000, "frames over 1012 bytes span two 1024-byte buffers: " + merged);
                assertEquals(FRAMES, backend.stats().rxFrames());
                assertEquals(0, backend.stats().rxDropped());
            } finally {
                backend.stop();
            }
        }
    }

    @Test
    void framesLargerThanTheGatheredBuffersArriveWholeThroughTheOverflow() throws Exception {
        // A TAP MTU raised to 9000 under a datapath started for 1500, 1024-byte guest buffers: a
        // 9014-byte frame needs 9 chains, more than the datapath gathers, so its tail goes through
        // the overflow buffer, and waits there (not dropped) until the guest posts more buffers.
        try (DatapathRig rig = new DatapathRig(1, true)) {
            rig.guest.postRxBuffers(0, 4);
            UserspaceDatapath backend = UserspaceDatapath.start(rig.memory, rig.configs(), rig.device, null);
            Files.writeString(Path.of("/sys/class/net", rig.tap.name(), "mtu"), "9000");
            try {
                Path taken = Path.of("/sys/class/net", rig.tap.name(), "statistics", "tx_packets");
                long before = Long.parseLong(Files.readString(taken).trim());
                byte[] big = Frames.frame(FakeGuest.MAC, Frames.NETWORK_MAC, 0, 1, 9014, -1);
                rig.network.send(big);
                // The event: the datapath read the frame off the TAP (the TAP counts it sent).
                long deadline = System.nanoTime() + DatapathRig.TIMEOUT_MILLIS * 1_000_000L;
                while (Long.parseLong(Files.readString(taken).trim()) == before) {
                    assertTrue(System.nanoTime() < deadline, "the datapath never read the frame off the TAP");
                    rig.guest.awaitUsed(0, 20);
                }
                List<RxFrame> got = new ArrayList<>();
                assertEquals(0, rig.guest.receive(got), "4 buffers of 1 KiB cannot hold the frame yet");
                rig.guest.postRxBuffers();
                while (got.isEmpty()) {
                    assertTrue(System.nanoTime() < deadline, "the frame never arrived");
                    rig.guest.awaitUsed(0, 100);
                    rig.guest.receive(got);
                }
                assertEquals(1, got.size());
                assertArrayEquals(big, got.get(0).frame());
                assertEquals(0, backend.stats().rxDropped());
                assertEquals(1, backend.stats().rxFrames());
            } finally {
                backend.stop();
            }
        }
    }

    /** Both pairs on one shared worker thread, and each on its own. */
    @ParameterizedTest(name = "{0} worker threads")
    @ValueSource(ints = {1, 2})
    void twoQueuePairsCarryTrafficBothWays(int workers) throws Exception {
        try (DatapathRig rig = new DatapathRig(2, true)) {
            rig.guest.postRxBuffers();
            UserspaceDatapath backend = UserspaceDatapath.start(rig.memory, rig.configs(), rig.device, null, workers);
            try {
                assertEquals(workers, backend.workerThreads());
                int perQueue = FRAMES / 2;
                // TX: both queues at once, each its own stream, checked in order per stream.
                rig.transmitAndCheck(new int[] {0, 1}, 0, perQueue, lengths(new Random(10), perQueue), 500);
                assertTrue(backend.stats(0).txFrames() == perQueue && backend.stats(1).txFrames() == perQueue);

                // RX: IPv4/UDP frames of 64 flows, which the multi-queue TAP spreads over both queues.
                List<byte[]> frames = new ArrayList<>();
                Random random = new Random(12);
                for (int i = 0; i < FRAMES; i++) {
                    frames.add(Frames.frame(FakeGuest.MAC, Frames.NETWORK_MAC, i % 64, i, 64 + random.nextInt(1400),
                            i % 64));
                }
                List<RxFrame> got = rig.receive(frames, 200, FRAMES);
                assertEquals(FRAMES, got.size());
                boolean[] seen = new boolean[FRAMES];
                long[] lastPerFlow = new long[64];
                java.util.Arrays.fill(lastPerFlow, -1);
                for (RxFrame r : got) {
                    int seq = (int) Frames.sequence(r.frame());
                    int flow = Frames.stream(r.frame());
                    assertFalse(seen[seq], "frame " + seq + " twice");
                    seen[seq] = true;
                    assertTrue(seq > lastPerFlow[flow], "flow " + flow + ": frame " + seq + " after " + lastPerFlow[flow]);
                    lastPerFlow[flow] = seq;
                    assertArrayEquals(frames.get(seq), r.frame());
                }
                long queue0 = backend.stats(0).rxFrames();
                long queue1 = backend.stats(1).rxFrames();
                assertEquals(FRAMES, queue0 + queue1);
                assertTrue(queue0 > 0 && queue1 > 0, "both receive queues carried frames: " + queue0 + " / " + queue1);
            } finally {
                backend.stop();
            }
        }
    }

    /**
     * Three pairs on two workers, dealt round-robin: one thread serves pairs 0 and 2, the other
     * pair 1 (named so); all three carry their streams at once, each frame once and in order.
     */
    @Test
    void threeQueuePairsOnTwoWorkersAreDealtRoundRobin() throws Exception {
        try (DatapathRig rig = new DatapathRig(3, true)) {
            UserspaceDatapath backend = UserspaceDatapath.start(rig.memory, rig.configs(), rig.device, null, 2);
            try {
                assertEquals(2, backend.workerThreads());
                String tap = rig.tap.name();
                List<String> names = Thread.getAllStackTraces().keySet().stream().map(Thread::getName)
                        .filter(n -> n.startsWith("vhost-ffm userspace datapath ") && n.contains("(tap " + tap + " "))
                        .sorted().toList();
                assertEquals(List.of(
                        "vhost-ffm userspace datapath pair 0 (tap " + tap + " queue 0), pair 2 (tap " + tap + " queue 2)",
                        "vhost-ffm userspace datapath pair 1 (tap " + tap + " queue 1)"), names);
                int perQueue = FRAMES / 4;
                rig.transmitAndCheck(new int[] {0, 1, 2}, 0, perQueue, lengths(new Random(13), perQueue), 300);
                for (int p = 0; p < 3; p++) {
                    assertEquals(perQueue, backend.stats(p).txFrames(), "pair " + p);
                }
            } finally {
                backend.stop();
            }
        }
    }

    /** How many workers a start runs: the request when given, else one processor short of the host's; never more than the pairs. */
    @Test
    void workerThreadsAreTheRequestOrTheHostsProcessorsLessOneAtMostOnePerPair() {
        assertEquals(2, UserspaceDatapath.workerThreads(3, 2));
        assertEquals(1, UserspaceDatapath.workerThreads(1, 4));
        assertEquals(3, UserspaceDatapath.workerThreads(3, 8));
        if (System.getProperty(UserspaceDatapath.WORKER_THREADS_PROPERTY) == null) {
            int host = Math.max(1, Runtime.getRuntime().availableProcessors() - 1);
            assertEquals(Math.min(host, 64), UserspaceDatapath.workerThreads(0, 64));
            assertEquals(1, UserspaceDatapath.workerThreads(0, 1));
        }
        assertThrows(IllegalArgumentException.class,
                () -> UserspaceDatapath.workerThreads(1, 0));
    }

    @Test
    void receiveFilterDropsWhatTheGuestsRxModeRejects() throws Exception {
        try (DatapathRig rig = new DatapathRig(1, true)) {
            rig.guest.postRxBuffers();
            // Promiscuous off: only the device's MAC, broadcast and (empty) tables pass.
            try (Arena cmd = Arena.ofConfined()) {
                MemorySegment header = cmd.allocate(2);
                header.set(java.lang.foreign.ValueLayout.JAVA_BYTE, 0, (byte) VirtioNetCtrl.CLASS_RX);
                header.set(java.lang.foreign.ValueLayout.JAVA_BYTE, 1, (byte) VirtioNetCtrl.RX_PROMISC);
                MemorySegment off = cmd.allocate(1);
                assertEquals(VirtioNetCtrl.OK, rig.device.handleControl(List.of(header, off)).ackByte());
            }
            UserspaceDatapath backend = UserspaceDatapath.start(rig.memory, rig.configs(), rig.device, null);
            try {
                byte[] other = {0x52, 0x54, 0x00, 0x65, 0x43, 0x21};
                List<byte[]> sent = new ArrayList<>();
                List<byte[]> expected = new ArrayList<>();
                for (int i = 0; i < 300; i++) {
                    byte[] to = switch (i % 3) {
                        case 0 -> FakeGuest.MAC;
                        case 1 -> other;
                        default -> Frames.BROADCAST;
                    };
                    byte[] f = Frames.frame(to, Frames.NETWORK_MAC, 0, i, 100 + i, -1);
                    sent.add(f);
                    if (to != other) {
                        expected.add(f);
                    }
                }
                // The last frame sent passes the filter: once it arrived, every filtered frame
                // before it on the queue was seen and counted (the marker of this check).
                assertTrue(expected.get(expected.size() - 1) == sent.get(sent.size() - 1));
                List<RxFrame> got = rig.receive(sent, 100, expected.size());
                assertEquals(expected.size(), got.size());
                for (int i = 0; i < expected.size(); i++) {
                    assertArrayEquals(expected.get(i), got.get(i).frame());
                }
                assertEquals(100, backend.stats().rxFiltered());
            } finally {
                backend.stop();
            }
        }
    }
}

package io.vhostffm.vhost.device.userspace;

import static io.vhostffm.vhost.device.userspace.GuestNetRig.BROADCAST;
import static io.vhostffm.vhost.device.userspace.GuestNetRig.DEVICE_MAC;
import static io.vhostffm.vhost.device.userspace.GuestNetRig.frame;
import static io.vhostffm.vhost.device.userspace.GuestNetRig.ours;
import static io.vhostffm.vhost.device.userspace.GuestNetRig.tagOf;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.vhostffm.vhost.device.userspace.GuestNetRig.GuestPair;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

/**
 * The userspace datapath against a real TAP, with vring's split driver as the guest and an
 * AF_PACKET socket as the network (needs root: TAP and raw sockets).
 */
class UserspaceDatapathTest {
    private static final int FRAMES = 10_000;
    private static final long TIMEOUT_MS = 60_000;

    /** Frame sizes: minimum, maximum and random ones between (18 bytes carry our tag and sequence). */
    static int frameSize(Random random, int seq) {
        return switch (seq % 10) {
            case 0 -> 18;
            case 1 -> 1514;
            case 2 -> 60;
            default -> 18 + random.nextInt(1514 - 18 + 1);
        };
    }

    @ParameterizedTest(name = "event idx {0}")
    @ValueSource(booleans = {false, true})
    void transmits10000FramesByteForByteInOrder(boolean eventIdx) throws Exception {
        try (GuestNetRig rig = new GuestNetRig(1, eventIdx)) {
            rig.wire.setReceiveBuffer(8 << 20);
            UserspaceDatapath backend = UserspaceDatapath.start(rig.memory, rig.configs(), rig.device, null);
            try (WireReader reader = new WireReader(rig.wire, GuestNetRig::ours)) {
                GuestPair pair = rig.pairs.get(0);
                long start = System.nanoTime();
                List<byte[]> sent = transmit(pair, reader, FRAMES, 0, new Random(eventIdx ? 1 : 2), 0);
                assertEquals(FRAMES, reader.await(FRAMES, TIMEOUT_MS), "frames on the wire");
                long elapsed = System.nanoTime() - start;
                drainTx(pair);
                List<byte[]> got = reader.frames();
                for (int i = 0; i < FRAMES; i++) {
                    int index = i;
                    assertArrayEquals(sent.get(i), got.get(i), () -> "frame " + index + " on the wire");
                }
                assertEquals(FRAMES, backend.stats().txFrames());
                assertEquals(0, backend.stats().txErrors());
                System.out.printf("userspace datapath TX (event idx %s): %d frames in %.1f ms, %.0f frames/s"
                        + " (guest waits for a used notification timed out %d times)%n",
                        eventIdx, FRAMES, elapsed / 1e6, FRAMES * 1e9 / elapsed, pair.txWaitTimeouts);
            } finally {
                backend.stop();
            }
        }
    }

    @ParameterizedTest(name = "event idx {0}")
    @ValueSource(booleans = {true, false})
    void receives10000FramesIntoMergeableBuffers(boolean eventIdx) throws Exception {
        try (GuestNetRig rig = new GuestNetRig(1, eventIdx); Arena arena = Arena.ofConfined()) {
            GuestPair pair = rig.pairs.get(0);
            pair.postRxBuffers(GuestNetRig.SIZE);
            UserspaceDatapath backend = UserspaceDatapath.start(rig.memory, rig.configs(), rig.device, null);
            try {
                Random random = new Random(eventIdx ? 3 : 4);
                List<byte[]> sent = new ArrayList<>();
                for (int i = 0; i < FRAMES; i++) {
                    sent.add(frame(i % 3 == 0 ? BROADCAST : DEVICE_MAC, frameSize(random, i), 0, i));
                }
                long start = System.nanoTime();
                List<byte[]> got = receive(rig, arena, List.of(pair), sent, 200);
                long elapsed = System.nanoTime() - start;
                assertEquals(FRAMES, got.size());
                for (int i = 0; i < FRAMES; i++) {
                    int index = i;
                    assertArrayEquals(sent.get(i), got.get(i), () -> "frame " + index + " in the guest");
                }
                assertTrue(pair.mergedFrames > 1000, "frames over 1012 bytes span two 1024-byte buffers: "
                        + pair.mergedFrames);
                assertEquals(FRAMES, backend.stats().rxFrames());
                assertEquals(0, backend.stats().rxDropped());
                System.out.printf("userspace datapath RX (event idx %s): %d frames in %.1f ms, %.0f frames/s "
                        + "(%d in two buffers)%n", eventIdx, FRAMES, elapsed / 1e6, FRAMES * 1e9 / elapsed,
                        pair.mergedFrames);
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
        try (GuestNetRig rig = new GuestNetRig(1, true); Arena arena = Arena.ofConfined()) {
            GuestPair pair = rig.pairs.get(0);
            pair.postRxBuffers(4);
            UserspaceDatapath backend = UserspaceDatapath.start(rig.memory, rig.configs(), rig.device, null);
            // The MTU grows under the running datapath, which gathers for 1500-byte frames.
            java.nio.file.Files.writeString(java.nio.file.Path.of("/sys/class/net", rig.tap.name(), "mtu"), "9000");
            try {
                byte[] big = frame(DEVICE_MAC, 9014, 0, 1);
                MemorySegment scratch = arena.allocate(70000);
                rig.inject(arena, scratch, big);
                Thread.sleep(200);
                assertEquals(0, backend.stats().rxFrames(), "4 KiB of buffers cannot hold the frame yet");
                assertEquals(null, pair.nextRxFrame());
                pair.postRxBuffers(GuestNetRig.SIZE);
                byte[] got = null;
                long deadline = System.currentTimeMillis() + TIMEOUT_MS;
                while (got == null && System.currentTimeMillis() < deadline) {
                    pair.awaitRx(100);
                    got = pair.nextRxFrame();
                }
                assertArrayEquals(big, got);
                assertEquals(0, backend.stats().rxDropped());
            } finally {
                backend.stop();
            }
        }
    }

    @Test
    void twoQueuePairsCarryTrafficBothWays() throws Exception {
        try (GuestNetRig rig = new GuestNetRig(2, true); Arena arena = Arena.ofConfined()) {
            rig.wire.setReceiveBuffer(8 << 20);
            for (GuestPair pair : rig.pairs) {
                pair.postRxBuffers(GuestNetRig.SIZE);
            }
            UserspaceDatapath backend = UserspaceDatapath.start(rig.memory, rig.configs(), rig.device, null);
            try (WireReader reader = new WireReader(rig.wire, GuestNetRig::ours)) {
                int perQueue = FRAMES / 2;
                // TX: one guest thread per queue, each tagging its frames with its queue pair.
                List<List<byte[]>> sent = new ArrayList<>(List.of(new ArrayList<>(), new ArrayList<>()));
                List<Thread> drivers = new ArrayList<>();
                List<Throwable> failures = java.util.Collections.synchronizedList(new ArrayList<>());
                long start = System.nanoTime();
                for (GuestPair pair : rig.pairs) {
                    drivers.add(Thread.ofPlatform().start(() -> {
                        try {
                            sent.get(pair.index).addAll(transmit(pair, reader, perQueue, pair.index,
                                    new Random(10 + pair.index), FRAMES));
                            drainTx(pair);
                        } catch (Throwable t) {
                            failures.add(t);
                        }
                    }));
                }
                for (Thread t : drivers) {
                    t.join();
                }
                assertEquals(List.of(), failures);
                assertEquals(FRAMES, reader.await(FRAMES, TIMEOUT_MS));
                long txElapsed = System.nanoTime() - start;
                int[] next = new int[2];
                for (byte[] f : reader.frames()) {
                    int q = tagOf(f);
                    assertArrayEquals(sent.get(q).get(next[q]), f, "queue " + q + " frame " + next[q]);
                    next[q]++;
                }
                assertEquals(perQueue, next[0]);
                assertEquals(perQueue, next[1]);
                assertTrue(backend.stats(0).txFrames() == perQueue && backend.stats(1).txFrames() == perQueue);

                // RX: IPv4/UDP frames of 64 flows, which the multi-queue TAP spreads over both queues.
                List<byte[]> frames = new ArrayList<>();
                Random random = new Random(12);
                for (int i = 0; i < FRAMES; i++) {
                    frames.add(udpFrame(i % 64, i, 64 + random.nextInt(1400)));
                }
                start = System.nanoTime();
                List<byte[]> got = receive(rig, arena, rig.pairs, frames, 200);
                long rxElapsed = System.nanoTime() - start;
                assertEquals(FRAMES, got.size());
                boolean[] seen = new boolean[FRAMES];
                int[] lastPerFlow = new int[64];
                java.util.Arrays.fill(lastPerFlow, -1);
                for (byte[] f : got) {
                    int seq = udpSeq(f);
                    assertFalse(seen[seq], "frame " + seq + " twice");
                    seen[seq] = true;
                    assertArrayEquals(frames.get(seq), f);
                }
                long queue0 = backend.stats(0).rxFrames();
                long queue1 = backend.stats(1).rxFrames();
                assertEquals(FRAMES, queue0 + queue1);
                assertTrue(queue0 > 0 && queue1 > 0, "both receive queues carried frames: " + queue0 + " / " + queue1);
                System.out.printf("userspace datapath, 2 queue pairs: TX %.0f frames/s, RX %.0f frames/s "
                        + "(rx queue 0: %d, queue 1: %d)%n", FRAMES * 1e9 / txElapsed, FRAMES * 1e9 / rxElapsed,
                        queue0, queue1);
            } finally {
                backend.stop();
            }
        }
    }

    @Test
    void receiveFilterDropsWhatTheGuestsRxModeRejects() throws Exception {
        try (GuestNetRig rig = new GuestNetRig(1, true); Arena arena = Arena.ofConfined()) {
            GuestPair pair = rig.pairs.get(0);
            pair.postRxBuffers(GuestNetRig.SIZE);
            // Promiscuous off: only the device's MAC, broadcast and (empty) tables pass.
            try (Arena cmd = Arena.ofConfined()) {
                MemorySegment header = cmd.allocate(2);
                header.set(java.lang.foreign.ValueLayout.JAVA_BYTE, 0, (byte) 0); // VIRTIO_NET_CTRL_RX
                header.set(java.lang.foreign.ValueLayout.JAVA_BYTE, 1, (byte) 0); // PROMISC
                MemorySegment off = cmd.allocate(1);
                assertEquals(0, rig.device.handleControl(List.of(header, off)).ackByte());
            }
            UserspaceDatapath backend = UserspaceDatapath.start(rig.memory, rig.configs(), rig.device, null);
            try {
                byte[] other = {0x52, 0x54, 0x00, 0x65, 0x43, 0x21};
                List<byte[]> sent = new ArrayList<>();
                List<byte[]> expected = new ArrayList<>();
                for (int i = 0; i < 300; i++) {
                    byte[] to = switch (i % 3) {
                        case 0 -> DEVICE_MAC;
                        case 1 -> other;
                        default -> BROADCAST;
                    };
                    byte[] f = frame(to, 100 + i, 0, i);
                    sent.add(f);
                    if (to != other) {
                        expected.add(f);
                    }
                }
                List<byte[]> got = receive(rig, arena, List.of(pair), sent, 100, expected.size());
                assertEquals(expected.size(), got.size());
                for (int i = 0; i < expected.size(); i++) {
                    assertArrayEquals(expected.get(i), got.get(i));
                }
                long deadline = System.currentTimeMillis() + TIMEOUT_MS;
                while (backend.stats().rxFiltered() < 100 && System.currentTimeMillis() < deadline) {
                    Thread.sleep(10);
                }
                assertEquals(100, backend.stats().rxFiltered());
            } finally {
                backend.stop();
            }
        }
    }

    // ---------------------------------------------------------------- helpers

    /**
     * Transmits {@code count} frames tagged {@code tag} on {@code pair}, keeping at most 500 frames
     * between the guest and {@code reader} (beyond what the reader's socket buffer holds, the
     * network side would drop).
     */
    static List<byte[]> transmit(GuestPair pair, WireReader reader, int count, int tag, Random random, int readerTotal)
            throws Exception {
        List<byte[]> sent = new ArrayList<>();
        long deadline = System.currentTimeMillis() + TIMEOUT_MS;
        int done = 0;
        for (int seq = 0; seq < count; seq++) {
            byte[] f = frame(BROADCAST, frameSize(random, seq), tag, seq);
            sent.add(f);
            while (!pair.addTx(seq, f, random)) {
                if (pair.collectTx() == 0) {
                    pair.awaitTx(20);
                }
                if (System.currentTimeMillis() > deadline) {
                    fail("tx stalled at frame " + seq + " of queue pair " + pair.index);
                }
            }
            done++;
            if (readerTotal == 0) {
                while (reader.count() < done - 500) {
                    pair.collectTx();
                    reader.await(done - 500, 20);
                    if (System.currentTimeMillis() > deadline) {
                        fail("wire stalled at frame " + seq + " (" + reader.count() + " arrived)");
                    }
                }
            }
        }
        return sent;
    }

    static void drainTx(GuestPair pair) throws Exception {
        long deadline = System.currentTimeMillis() + TIMEOUT_MS;
        while (pair.txInFlight > 0) {
            if (pair.collectTx() == 0) {
                pair.awaitTx(20);
            }
            if (System.currentTimeMillis() > deadline) {
                fail(pair.txInFlight + " tx chains never completed");
            }
        }
    }

    static List<byte[]> receive(GuestNetRig rig, Arena arena, List<GuestPair> pairs, List<byte[]> frames, int window)
            throws Exception {
        return receive(rig, arena, pairs, frames, window, frames.size());
    }

    /**
     * Injects {@code frames} on the network side, at most {@code window} ahead of what the guest
     * received (the TAP's queue holds 500 and drops beyond), and collects {@code expect} frames from
     * the receive queues of {@code pairs}, reposting buffers as it goes. Frames of queue pair 0
     * first, then 1 (order is only kept within a queue).
     */
    static List<byte[]> receive(GuestNetRig rig, Arena arena, List<GuestPair> pairs, List<byte[]> frames, int window,
            int expect) throws Exception {
        MemorySegment scratch = arena.allocate(70000);
        List<byte[]> got = new ArrayList<>();
        int injected = 0;
        long deadline = System.currentTimeMillis() + TIMEOUT_MS;
        int received = 0;
        while (received < expect) {
            while (injected < frames.size() && injected - received - (frames.size() - expect) < window) {
                rig.inject(arena, scratch, frames.get(injected++));
            }
            boolean any = false;
            for (GuestPair pair : pairs) {
                byte[] f;
                while ((f = pair.nextRxFrame()) != null) {
                    any = true;
                    if (isOurs(f)) {
                        got.add(f);
                        received++;
                    }
                }
                pair.postRxBuffers(GuestNetRig.SIZE);
            }
            if (!any) {
                if (pairs.size() == 1) {
                    pairs.get(0).awaitRx(20);
                } else {
                    Thread.sleep(1);
                }
            }
            if (System.currentTimeMillis() > deadline) {
                fail("rx stalled: " + received + " of " + expect + " received, " + injected + " injected");
            }
        }
        return got;
    }

    private static boolean isOurs(byte[] f) {
        return ours(f) || (f.length >= 42 && (f[12] & 0xff) == 0x08 && f[13] == 0 && f[23] == 17);
    }

    /** An IPv4/UDP frame of flow {@code flow} carrying sequence number {@code seq}. */
    static byte[] udpFrame(int flow, int seq, int length) {
        byte[] f = new byte[Math.max(length, 46)];
        System.arraycopy(DEVICE_MAC, 0, f, 0, 6);
        f[6] = 0x02;
        f[7] = (byte) 0xbb;
        f[12] = 0x08; // IPv4
        f[14] = 0x45;
        int ipLength = f.length - 14;
        f[16] = (byte) (ipLength >>> 8);
        f[17] = (byte) ipLength;
        f[22] = 64; // ttl
        f[23] = 17; // UDP
        f[26] = 10;
        f[29] = (byte) (1 + flow);   // source 10.0.0.(1+flow)
        f[30] = 10;
        f[33] = (byte) 200;          // destination 10.0.0.200
        int sport = 10_000 + flow;
        f[34] = (byte) (sport >>> 8);
        f[35] = (byte) sport;
        f[36] = 0x13;
        f[37] = (byte) 0x88;         // destination port 5000
        int udpLength = f.length - 34;
        f[38] = (byte) (udpLength >>> 8);
        f[39] = (byte) udpLength;
        f[42] = (byte) (seq >>> 24);
        f[43] = (byte) (seq >>> 16);
        f[44] = (byte) (seq >>> 8);
        f[45] = (byte) seq;
        for (int i = 46; i < f.length; i++) {
            f[i] = (byte) (seq + i);
        }
        // IPv4 header checksum
        int sum = 0;
        for (int i = 14; i < 34; i += 2) {
            sum += (f[i] & 0xff) << 8 | (f[i + 1] & 0xff);
        }
        while ((sum >>> 16) != 0) {
            sum = (sum & 0xffff) + (sum >>> 16);
        }
        sum = ~sum & 0xffff;
        f[24] = (byte) (sum >>> 8);
        f[25] = (byte) sum;
        return f;
    }

    static int udpSeq(byte[] f) {
        return (f[42] & 0xff) << 24 | (f[43] & 0xff) << 16 | (f[44] & 0xff) << 8 | (f[45] & 0xff);
    }
}

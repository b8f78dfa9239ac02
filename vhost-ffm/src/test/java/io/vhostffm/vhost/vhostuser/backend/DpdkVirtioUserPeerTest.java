package io.vhostffm.vhost.vhostuser.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.vhost.device.userspace.QueuePairStats;
import io.vhostffm.vhost.os.PacketSocket;
import io.vhostffm.vhost.virtio.VirtioFeature;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * DPDK's virtio-user driver (testpmd, a real and independent virtio-net driver) against our
 * backend: numbered frames sent into the TAP reach testpmd through the receive ring, come back
 * through the transmit ring with their MACs swapped (macswap forwarding), and are checked byte
 * for byte on the TAP; testpmd's own counters must match and show no drop.
 */
@Tag("peer")
class DpdkVirtioUserPeerTest {
    private static final int FRAMES = 256;
    private static final Duration START = Duration.ofSeconds(60);
    private static final Duration ROUND_TRIP = Duration.ofSeconds(30);

    @TempDir
    Path dir;

    @ParameterizedTest(name = "packed_vq={0}, {1} queue pair(s)")
    @CsvSource({"1, 1", "0, 1", "1, 2", "0, 2"})
    void framesRoundTripThroughTestpmd(int packed, int queues) throws Exception {
        String testpmd = PeerTools.executable("dpdk-testpmd");
        Map<Integer, String> before = PeerTools.sessionDescriptors();
        Path socket = dir.resolve("vhost-user.sock");
        long features;
        QueuePairStats stats;
        String sessionEnd;
        String output;
        try (ServedBackend served = new ServedBackend("vudpdk%d", queues, 1500, socket)) {
            PeerProcess pmd = PeerProcess.start("testpmd", List.of(testpmd, "-l", "0-1", "--no-pci", "--no-huge", "-m", "512",
                    "--file-prefix=vhostffm-peer-" + ProcessHandle.current().pid(),
                    "--vdev", "net_virtio_user0,path=" + socket + ",queues=" + queues + ",packed_vq=" + packed
                            + (queues > 1 ? ",cq=1" : ""),
                    "--", "--total-num-mbufs=16384", "--forward-mode=macswap", "--rxq=" + queues, "--txq=" + queues,
                    "--auto-start", "--stats-period=1"));
            try (pmd) {
                served.status.await(queues + " queue pair(s) started", l -> l.startsWith("queue pair ") && l.contains(" started"),
                        queues, START);
                // testpmd flushes its receive rings when the port starts: send only once it forwards
                // (its first periodic statistics). With standard input at end of file, only
                // --stats-period keeps it running until SIGTERM.
                pmd.await("forwarding started", l -> l.startsWith("Port statistics"), START);
                roundTrip(served);
                int exit = pmd.stop(30);
                assertEquals(0, exit, "testpmd's exit status");
            }
            output = pmd.output();
            sessionEnd = served.sessionEnd(Duration.ofSeconds(20));
            features = served.backend.ackedFeatures();
            stats = served.backend.stats();
        }
        long rx = total(output, "RX-packets"), rxDropped = total(output, "RX-dropped");
        long tx = total(output, "TX-packets"), txDropped = total(output, "TX-dropped");
        assertEquals(0, rxDropped, "testpmd RX-dropped");
        assertEquals(0, txDropped, "testpmd TX-dropped");
        assertEquals(FRAMES, rx, "testpmd RX-packets: every frame sent into the TAP, nothing else");
        assertEquals(FRAMES, tx, "testpmd TX-packets: every frame forwarded back");
        assertEquals(FRAMES, stats.rxFrames(), "frames the backend put into testpmd's receive rings");
        assertEquals(FRAMES, stats.txFrames(), "frames the backend took from testpmd's transmit rings");
        assertEquals(0, stats.rxDropped() + stats.txErrors(), "backend drops and transmit errors");
        assertEquals("the peer closed the connection", sessionEnd);
        assertEquals(packed == 1, VirtioFeature.RING_PACKED.in(features), "RING_PACKED negotiated: " + VirtioFeature.describe(features));
        assertTrue(VirtioFeature.VERSION_1.in(features) && VirtioFeature.MRG_RXBUF.in(features), VirtioFeature.describe(features));
        System.out.printf("dpdk virtio-user packed_vq=%d queues=%d: features 0x%x, %d frames each way%n", packed, queues,
                features, FRAMES);
        assertEquals(before, PeerTools.sessionDescriptors(), "descriptors left open after the session");
    }

    /** Sends FRAMES numbered frames into the TAP and checks each comes back once, MAC-swapped, byte-exact. */
    private static void roundTrip(ServedBackend served) throws Exception {
        byte[][] sent = new byte[FRAMES][];
        boolean[] back = new boolean[FRAMES];
        int returned = 0;
        try (PacketSocket host = PacketSocket.bind(served.tap.name()); Arena arena = Arena.ofConfined()) {
            host.setReceiveBuffer(4 << 20);
            MemorySegment out = arena.allocate(2048);
            MemorySegment in = arena.allocate(65536);
            for (int n = 0; n < FRAMES; n++) {
                sent[n] = Frames.numbered(n, Frames.lengthOf(n), Frames.GUEST_MAC, Frames.HOST_MAC);
                MemorySegment.copy(sent[n], 0, out, ValueLayout.JAVA_BYTE, 0, sent[n].length);
                host.send(out.asSlice(0, sent[n].length));
            }
            long deadline = System.nanoTime() + ROUND_TRIP.toNanos();
            while (returned < FRAMES) {
                int left = (int) ((deadline - System.nanoTime()) / 1_000_000);
                long length = left > 0 ? host.receive(in, left) : -1;
                if (length < 0) {
                    throw new AssertionError(returned + " of " + FRAMES + " frames came back within " + ROUND_TRIP.toSeconds() + " s");
                }
                byte[] frame = in.asSlice(0, Math.min(length, in.byteSize())).toArray(ValueLayout.JAVA_BYTE);
                int n = Frames.numberOf(frame, frame.length);
                // Our own sends show up on the packet socket too (outgoing); returned ones come from the guest's MAC.
                if (n < 0 || !java.util.Arrays.equals(frame, 6, 12, Frames.GUEST_MAC, 0, 6)) {
                    continue;
                }
                assertTrue(n < FRAMES, "frame number " + n);
                assertTrue(!back[n], "frame " + n + " came back twice");
                assertArrayEquals(Frames.macSwapped(sent[n]), frame, "frame " + n + " as it came back");
                back[n] = true;
                returned++;
            }
        }
    }

    /** A counter of testpmd's "Accumulated forward statistics for all ports" block. */
    private static long total(String output, String counter) {
        int block = output.lastIndexOf("Accumulated forward statistics for all ports");
        assertTrue(block >= 0, "testpmd printed no final statistics");
        Matcher m = Pattern.compile(counter + ":\\s+(\\d+)").matcher(output.substring(block));
        assertTrue(m.find(), "no " + counter + " in testpmd's final statistics");
        return Long.parseLong(m.group(1));
    }
}

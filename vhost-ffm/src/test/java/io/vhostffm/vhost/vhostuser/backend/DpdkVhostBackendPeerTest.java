package io.vhostffm.vhost.vhostuser.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.vhost.device.BackendStart;
import io.vhostffm.vhost.device.DirtyLog;
import io.vhostffm.vhost.vhostuser.VhostUserProtocolFeature;
import io.vhostffm.vhost.vhostuser.VhostUserRequest;
import io.vhostffm.vhost.vhostuser.frontend.VhostUserFrontendBackend;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vring.QueuePosition;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Our vhost-user frontend ({@link VhostUserFrontendBackend}) against DPDK's vhost-user backend
 * (testpmd's net_vhost, macswap forwarding), started by the test: a driver-side guest over memfd
 * memory ({@link FrontendGuest}) sends numbered frames and gets each back exactly once with the
 * MACs swapped; the backend's positions after a stop agree with the guest's own indices; a
 * second start at those positions continues with nothing lost; testpmd's final counters show no
 * drop. Split and packed rings, one and two queue pairs.
 */
@Tag("peer")
class DpdkVhostBackendPeerTest {
    private static final Duration START = Duration.ofSeconds(60);
    private static final Duration REPLY = Duration.ofSeconds(10);
    private static final int PROGRESS_MILLIS = 30_000;

    @TempDir
    Path dir;

    private static int cases;

    /** testpmd as the vhost-user backend, listening on {@code socket}; returns once its port started. */
    private static PeerProcess testpmd(Path socket, int pairs) throws Exception {
        String testpmd = PeerTools.executable("dpdk-testpmd");
        PeerProcess pmd = PeerProcess.start("testpmd", List.of(testpmd, "-l", "0-1", "--no-pci", "--no-huge", "-m", "512",
                "--file-prefix=vhostffm-fe-" + ProcessHandle.current().pid() + "-" + (cases++),
                "--vdev", "net_vhost0,iface=" + socket + ",queues=" + pairs + ",client=0",
                "--", "--total-num-mbufs=16384", "--forward-mode=macswap", "--rxq=" + pairs, "--txq=" + pairs,
                "--auto-start", "--stats-period=5"));
        try {
            // The port (and with it the vhost-user socket's listen) is started before forwarding is.
            pmd.await("forwarding started", l -> l.contains("Start automatic packet forwarding")
                    || l.startsWith("Port statistics"), START);
            return pmd;
        } catch (Throwable t) {
            pmd.close();
            throw t;
        }
    }

    @ParameterizedTest(name = "packed={0}, {1} queue pair(s)")
    @CsvSource({"false, 1", "true, 1", "false, 2", "true, 2"})
    void framesRoundTripThroughDpdkAndResumeAfterStop(boolean packed, int pairs) throws Exception {
        Map<Integer, String> before = PeerTools.sessionDescriptors();
        Path socket = dir.resolve("dpdk-vhost.sock");
        long frames = 3_000L * pairs;
        String output;
        try (PeerProcess pmd = testpmd(socket, pairs); FrontendGuest guest = new FrontendGuest(packed, pairs, 0, true)) {
            try (VhostUserFrontendBackend backend = VhostUserFrontendBackend.connect(socket, REPLY, pairs)) {
                assertEquals(pairs, backend.maxQueuePairs(), "GET_QUEUE_NUM");
                assertTrue(backend.capabilities().packedRings(), "DPDK offers packed rings: "
                        + VirtioFeature.describe(backend.backendFeatures()));
                long protocol = backend.protocolFeatures();
                assertTrue(VhostUserProtocolFeature.REPLY_ACK.in(protocol) && VhostUserProtocolFeature.STATUS.in(protocol)
                        && VhostUserProtocolFeature.MQ.in(protocol), VhostUserProtocolFeature.describe(protocol));
                BackendStart start = guest.start();

                // Prestart, then a counted quickstart: per ring SET_VRING_BASE and SET_VRING_ENABLE, one SET_STATUS.
                backend.prestart(start);
                List<VhostUserRequest> quick = new ArrayList<>();
                backend.setMessageObserver((r, ring) -> quick.add(r));
                long t0 = System.nanoTime();
                backend.quickstart(start.positions());
                long quickNanos = System.nanoTime() - t0;
                backend.setMessageObserver(null);
                assertEquals(4 * pairs + 1, quick.size(), "quickstart requests: " + quick);
                assertEquals(2 * pairs, quick.stream().filter(r -> r == VhostUserRequest.SET_VRING_BASE).count());
                assertEquals(2 * pairs, quick.stream().filter(r -> r == VhostUserRequest.SET_VRING_ENABLE).count());

                t0 = System.nanoTime();
                guest.roundTrip(frames, PROGRESS_MILLIS);
                long nanos = System.nanoTime() - t0;
                List<QueuePosition> positions = backend.stop();
                guest.assertPositionsAgree(positions);

                // Again from where it stopped: the backend forgot the rings at GET_VRING_BASE, so a prestart first.
                BackendStart again = start.withPositions(positions);
                backend.prestart(again);
                backend.quickstart(positions);
                guest.roundTrip(frames, PROGRESS_MILLIS);
                guest.assertPositionsAgree(backend.stop());
                assertEquals(2 * frames, guest.returned(), "frames back");
                assertNull(guest.awaitEvent(0), "no backend event");
                System.out.printf("dpdk vhost backend packed=%b pairs=%d: %d frames each way in %.1f ms (%.0f frames/s); "
                        + "quickstart %d requests in %.2f ms%n", packed, pairs, frames, nanos / 1e6, frames * 1e9 / nanos,
                        quick.size(), quickNanos / 1e6);
            }
            assertEquals(0, pmd.stop(30), "testpmd's exit status");
            output = pmd.output();
        }
        assertEquals(0, total(output, "RX-dropped"), "testpmd RX-dropped");
        assertEquals(0, total(output, "TX-dropped"), "testpmd TX-dropped");
        assertEquals(2 * frames, total(output, "RX-packets"), "testpmd RX-packets: every frame, nothing else");
        assertEquals(2 * frames, total(output, "TX-packets"), "testpmd TX-packets");
        assertEquals(before, PeerTools.sessionDescriptors(), "descriptors left open");
    }

    /**
     * The rings start just below the 16-bit index wrap (split) or near the ring's end on lap 0
     * (packed), so the backend's vring base crosses both; the stop positions agree afterwards.
     */
    @ParameterizedTest(name = "packed={0}")
    @CsvSource({"false, 65000", "true, 200"})
    void indicesWrapThroughDpdk(boolean packed, int start) throws Exception {
        Map<Integer, String> before = PeerTools.sessionDescriptors();
        Path socket = dir.resolve("dpdk-vhost.sock");
        try (PeerProcess pmd = testpmd(socket, 1); FrontendGuest guest = new FrontendGuest(packed, 1, start, false)) {
            try (VhostUserFrontendBackend backend = VhostUserFrontendBackend.connect(socket, REPLY, 1)) {
                BackendStart s = guest.start();
                backend.start(s);
                guest.roundTrip(2_000, PROGRESS_MILLIS);
                List<QueuePosition> positions = backend.stop();
                guest.assertPositionsAgree(positions);
                if (!packed) {
                    int tx = positions.get(1).lastAvailIdx();
                    assertEquals((start + 2_000) & 0xffff, tx, "tx last_avail_idx past the wrap");
                }
            }
            assertEquals(0, pmd.stop(30), "testpmd's exit status");
        }
        assertEquals(before, PeerTools.sessionDescriptors(), "descriptors left open");
    }

    /** More than 65,536 frames through one split and one packed pair: every index value taken, each frame once. */
    @ParameterizedTest(name = "packed={0}")
    @CsvSource({"false", "true"})
    void moreThan65536Frames(boolean packed) throws Exception {
        Map<Integer, String> before = PeerTools.sessionDescriptors();
        Path socket = dir.resolve("dpdk-vhost.sock");
        long frames = 70_000;
        try (PeerProcess pmd = testpmd(socket, 1); FrontendGuest guest = new FrontendGuest(packed, 1, 0, true)) {
            try (VhostUserFrontendBackend backend = VhostUserFrontendBackend.connect(socket, REPLY, 1)) {
                backend.start(guest.start());
                long t0 = System.nanoTime();
                guest.roundTrip(frames, PROGRESS_MILLIS);
                long nanos = System.nanoTime() - t0;
                guest.assertPositionsAgree(backend.stop());
                System.out.printf("dpdk vhost backend packed=%b: %d frames each way in %.1f ms (%.0f frames/s)%n", packed,
                        frames, nanos / 1e6, frames * 1e9 / nanos);
            }
            assertEquals(0, pmd.stop(30), "testpmd's exit status");
        }
        assertEquals(before, PeerTools.sessionDescriptors(), "descriptors left open");
    }

    /**
     * testpmd killed (SIGKILL) with frames in the transmit ring: the backend reports it as gone,
     * once; stop gives the positions guest memory shows; a new backend process on the same rings
     * resumes from them, and every frame comes back exactly once.
     */
    @Test
    void killedBackendIsReportedAndAnotherResumesOnTheSameRings() throws Exception {
        Map<Integer, String> before = PeerTools.sessionDescriptors();
        Path socket = dir.resolve("dpdk-vhost.sock");
        try (FrontendGuest guest = new FrontendGuest(false, 1, 0, true)) {
            List<QueuePosition> positions;
            BackendStart start = guest.start();
            try (PeerProcess pmd = testpmd(socket, 1);
                    VhostUserFrontendBackend backend = VhostUserFrontendBackend.connect(socket, REPLY, 1)) {
                backend.start(start);
                guest.roundTrip(1_000, PROGRESS_MILLIS);
                pmd.process().destroyForcibly();
                String event = guest.awaitEvent(20_000);
                assertNotNull(event, "no event within 20 s of killing testpmd");
                assertTrue(event.startsWith("gone: "), event);
                System.out.println("event after SIGKILL: " + event);
                assertNotNull(backend.goneReason());
                guest.transmitOnly(50); // into the ring of a dead backend: must not be lost
                assertThrows(IllegalStateException.class, () -> backend.prestart(start), "a gone backend refuses a start");
                positions = backend.stop();
                pmd.awaitExit(Duration.ofSeconds(20));
                assertNull(guest.awaitEvent(0), "the backend is reported gone once");
            }
            // A new testpmd on a new socket takes over the same rings at those positions.
            Path second = dir.resolve("dpdk-vhost-2.sock");
            try (PeerProcess pmd = testpmd(second, 1);
                    VhostUserFrontendBackend backend = VhostUserFrontendBackend.connect(second, REPLY, 1)) {
                backend.start(start.withPositions(positions));
                guest.roundTrip(500, PROGRESS_MILLIS); // the 50 left in the ring come back first, then 500 more
                assertEquals(1_550, guest.returned(), "every frame back exactly once");
                guest.assertPositionsAgree(backend.stop());
                assertEquals(0, pmd.stop(30), "testpmd's exit status");
            }
        }
        assertEquals(before, PeerTools.sessionDescriptors(), "descriptors left open");
    }

    /**
     * A failure injected at each request of the prestart and quickstart sequences (per-ring ones on
     * the last ring, SET_STATUS at both of its places): the start fails naming the request, the
     * backend is left stopped, and a clean start on the same connection afterwards carries every
     * frame. testpmd's counters show no drop.
     */
    @Test
    void injectedFailureAtEveryStartRequestLeavesTheBackendStopped() throws Exception {
        Map<Integer, String> before = PeerTools.sessionDescriptors();
        Path socket = dir.resolve("dpdk-vhost.sock");
        record Fault(VhostUserRequest request, int occurrence) {}
        List<Fault> faults = List.of(new Fault(VhostUserRequest.SET_OWNER, 1), new Fault(VhostUserRequest.SET_FEATURES, 1),
                new Fault(VhostUserRequest.SET_STATUS, 1), new Fault(VhostUserRequest.SET_MEM_TABLE, 1),
                new Fault(VhostUserRequest.SET_VRING_NUM, 4), new Fault(VhostUserRequest.SET_VRING_ADDR, 4),
                new Fault(VhostUserRequest.SET_VRING_KICK, 4), new Fault(VhostUserRequest.SET_VRING_CALL, 4),
                new Fault(VhostUserRequest.SET_VRING_ERR, 4), new Fault(VhostUserRequest.SET_VRING_BASE, 4),
                new Fault(VhostUserRequest.SET_VRING_ENABLE, 4), new Fault(VhostUserRequest.SET_STATUS, 2));
        try (PeerProcess pmd = testpmd(socket, 2); FrontendGuest guest = new FrontendGuest(false, 2, 0, true)) {
            try (VhostUserFrontendBackend backend = VhostUserFrontendBackend.connect(socket, REPLY, 2)) {
                BackendStart start = guest.start();
                for (Fault fault : faults) {
                    int[] seen = {0};
                    backend.setMessageObserver((r, ring) -> {
                        if (r == fault.request() && ++seen[0] == fault.occurrence()) {
                            throw new IOException("injected failure of " + r + " (ring " + ring + ")");
                        }
                    });
                    IOException e = assertThrows(IOException.class, () -> backend.start(start), fault.toString());
                    assertTrue(e.getMessage().startsWith("injected failure of " + fault.request()), e.getMessage());
                    assertTrue(!backend.isRunning() && !backend.isPrestarted(), fault + ": the backend is stopped");
                }
                backend.setMessageObserver(null);
                backend.start(start);
                guest.roundTrip(2_000, PROGRESS_MILLIS);
                guest.assertPositionsAgree(backend.stop());
                System.out.println("injected faults survived: " + faults.size() + "; then 2000 frames round trip");
            }
            assertEquals(0, pmd.stop(30), "testpmd's exit status");
            String output = pmd.output();
            assertEquals(0, total(output, "RX-dropped") + total(output, "TX-dropped"), "testpmd drops");
            assertEquals(2_000, total(output, "RX-packets"), "testpmd RX-packets");
        }
        assertEquals(before, PeerTools.sessionDescriptors(), "descriptors left open");
    }

    /**
     * The dirty log through LOG_SHMFD: DPDK marks, in our {@link DirtyLog}'s own memfd, the pages it
     * writes (receive buffers, used rings; packed: the descriptor ring) and never a transmit buffer
     * (it only reads those); from a start with the log, and from {@code startDirtyLog} on a
     * running backend; after {@code stopDirtyLog} it marks nothing more.
     */
    @ParameterizedTest(name = "packed={0}")
    @CsvSource({"false", "true"})
    void dirtyLogThroughLogShmfd(boolean packed) throws Exception {
        Map<Integer, String> before = PeerTools.sessionDescriptors();
        Path socket = dir.resolve("dpdk-vhost.sock");
        try (PeerProcess pmd = testpmd(socket, 1); FrontendGuest guest = new FrontendGuest(packed, 1, 0, true);
                DirtyLog log = DirtyLog.covering(guest.memory)) {
            try (VhostUserFrontendBackend backend = VhostUserFrontendBackend.connect(socket, REPLY, 1)) {
                assertTrue(VhostUserProtocolFeature.LOG_SHMFD.in(backend.protocolFeatures()),
                        VhostUserProtocolFeature.describe(backend.protocolFeatures()));
                // Logging from the start.
                BackendStart start = guest.start().withDirtyLog(log);
                backend.start(start);
                guest.roundTrip(300, PROGRESS_MILLIS);
                assertLogged(guest, log, packed, "from the start");
                List<QueuePosition> positions = backend.stop();
                guest.assertPositionsAgree(positions);

                // Started without a log, then logging switched on and off while running.
                log.clear();
                backend.start(start.withPositions(positions).withDirtyLog(null));
                guest.roundTrip(100, PROGRESS_MILLIS);
                assertEquals(0, log.fetchAndClear().length, "pages marked before logging started");
                backend.startDirtyLog(log);
                guest.roundTrip(300, PROGRESS_MILLIS);
                assertLogged(guest, log, packed, "after startDirtyLog");
                backend.stopDirtyLog();
                log.clear();
                guest.roundTrip(100, PROGRESS_MILLIS);
                assertEquals(0, log.fetchAndClear().length, "pages marked after stopDirtyLog");
                guest.assertPositionsAgree(backend.stop());
            }
            assertEquals(0, pmd.stop(30), "testpmd's exit status");
        }
        assertEquals(before, PeerTools.sessionDescriptors(), "descriptors left open");
    }

    /** The receive ring's written area and first buffers and the transmit ring's are marked; no transmit buffer is. */
    private static void assertLogged(FrontendGuest guest, DirtyLog log, boolean packed, String when) {
        // Packed rings are written in the descriptor ring itself; split ones in the used ring.
        long rxRing = packed ? guest.descriptors(0) : guest.deviceArea(0);
        long txRing = packed ? guest.descriptors(1) : guest.deviceArea(1);
        assertTrue(log.isDirty(rxRing), when + ": the receive ring's written page is not marked");
        assertTrue(log.isDirty(txRing), when + ": the transmit ring's written page is not marked");
        assertTrue(log.isDirty(guest.slotAddress(0, 0)), when + ": the first receive buffer's page is not marked");
        for (int slot = 0; slot < FrontendGuest.SIZE; slot += 2) {
            long page = guest.slotAddress(1, slot);
            assertTrue(!log.isDirty(page), when + ": transmit buffer page 0x" + Long.toHexString(page) + " marked");
        }
    }

    /** A reply that never comes: the frontend's deadline names the request. */
    @Test
    void silentBackendMissesTheReplyDeadline() throws Exception {
        Map<Integer, String> before = PeerTools.sessionDescriptors();
        Path socket = dir.resolve("silent.sock");
        try (var listener = io.vhostffm.vhost.os.UnixSocketListener.bind(socket)) {
            java.util.concurrent.CountDownLatch gaveUp = new java.util.concurrent.CountDownLatch(1);
            Thread acceptor = Thread.ofPlatform().start(() -> {
                try (var accepted = listener.accept(Duration.ofSeconds(20))) {
                    // holds the connection open, answering nothing, until the frontend gave up
                    gaveUp.await(30, java.util.concurrent.TimeUnit.SECONDS);
                } catch (IOException | InterruptedException e) {
                    // nothing connected, or interrupted: the assertion below says what the frontend saw
                }
            });
            IOException e = assertThrows(IOException.class,
                    () -> VhostUserFrontendBackend.connect(socket, Duration.ofMillis(300), 1));
            gaveUp.countDown();
            assertTrue(e.getMessage().contains("no reply to GET_FEATURES(1) within 300 ms"), e.getMessage());
            acceptor.join(30_000);
        }
        assertEquals(before, PeerTools.sessionDescriptors(), "descriptors left open");
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

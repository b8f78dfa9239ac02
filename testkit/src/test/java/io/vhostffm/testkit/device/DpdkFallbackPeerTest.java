package io.vhostffm.testkit.device;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.testkit.Frames;
import io.vhostffm.testkit.OpenDescriptors;
import io.vhostffm.vhost.device.BackendCapabilities;
import io.vhostffm.vhost.device.BackendStart;
import io.vhostffm.vhost.device.BackendTransfer;
import io.vhostffm.vhost.device.DirtyLog;
import io.vhostffm.vhost.device.NetBackend;
import io.vhostffm.vhost.device.userspace.UserspaceNetBackend;
import io.vhostffm.vhost.vhostuser.frontend.VhostUserFrontendBackend;
import io.vhostffm.vring.QueuePosition;
import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.BitSet;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A device on DPDK's vhost-user backend (testpmd's net_vhost, macswap) through
 * {@link VhostUserFrontendBackend}, driven by the fake guest: frames go round through testpmd;
 * then testpmd is killed (SIGKILL), the frontend reports it gone, and the runtime switches to its
 * fallback, the userspace datapath on a TAP, on the same rings: the frames the guest transmits
 * from then on (including those it queued while the switch happened) leave through the TAP
 * exactly once, and frames from the TAP reach the guest.
 */
@Tag("peer")
class DpdkFallbackPeerTest {
    private static final int EVENT_MILLIS = 30_000;

    @TempDir
    Path dir;

    /** The thread reading the last testpmd's output. */
    private static Thread reader;
    /** The last testpmd's output lines. */
    private static final List<String> lines = java.util.Collections.synchronizedList(new java.util.ArrayList<>());

    @Test
    void killedDpdkBackendFallsBackToUserspaceWithNothingLost() throws Exception {
        java.util.Map<Integer, String> before = OpenDescriptors.snapshot();
        Path socket = dir.resolve("dpdk-vhost.sock");
        Process pmd = startTestpmd(socket);
        Thread output = reader;
        try {
            CountDownLatch fellBack = new CountDownLatch(1);
            NetBackend[] fallback = new NetBackend[1];
            try (RuntimeRig rig = RuntimeRig.on(1,
                    tap -> VhostUserFrontendBackend.connect(socket, Duration.ofSeconds(10), 1))) {
                assertTrue(rig.device.isDatapathRunning(), "the datapath runs on testpmd");
                try (UserspaceNetBackend userspace = UserspaceNetBackend.open(rig.tap)) {
                    fallback[0] = new Started(userspace, fellBack);
                    rig.device.setFallbackBackend(fallback[0]);
                    FakeGuest guest = rig.guest;
                    guest.postRxBuffers();

                    // Through testpmd: broadcast frames come back with the guest's MAC as destination.
                    int first = 500;
                    roundTripThroughTestpmd(guest, first);

                    // Kill it; queue more frames while the device notices and switches.
                    pmd.destroyForcibly();
                    assertTrue(pmd.waitFor(20, TimeUnit.SECONDS), "testpmd did not die of SIGKILL");
                    int during = guest.transmitNumbered(0, 100);
                    assertTrue(fellBack.await(EVENT_MILLIS, TimeUnit.MILLISECONDS),
                            "no switch to the fallback within " + EVENT_MILLIS + " ms");
                    assertSame(fallback[0], rig.device.backend(), "the device runs on the fallback");
                    int after = 400;
                    int sentAfter = 0;
                    BitSet seen = new BitSet();
                    int out = 0;
                    long deadline = System.nanoTime() + EVENT_MILLIS * 1_000_000L;
                    while (out < during + after) {
                        if (sentAfter < after) {
                            sentAfter += guest.transmitNumbered(0, after - sentAfter);
                        }
                        guest.collectTx();
                        byte[] frame = rig.network.nextFromGuest(100);
                        if (frame != null) {
                            long seq = Frames.sequence(frame);
                            assertTrue(seq >= first && seq < first + during + after, "sequence " + seq + " out of range");
                            assertTrue(!seen.get((int) seq), "frame " + seq + " left the TAP twice");
                            seen.set((int) seq);
                            out++;
                        }
                        assertTrue(System.nanoTime() < deadline, out + " of " + (during + after)
                                + " frames left the TAP after the fallback");
                    }
                    // And towards the guest through the TAP.
                    rig.network.sendToGuest(0, 200);
                    assertTrue(rig.network.awaitDelivered(EVENT_MILLIS), "frames from the TAP delivered");
                    while (guest.receivedCount(0) < first + 200) {
                        if (guest.collectRx() == 0) {
                            assertTrue(guest.awaitCall(EVENT_MILLIS, 0), (guest.receivedCount(0) - first)
                                    + " of 200 frames from the TAP reached the guest");
                        }
                    }
                    assertEquals(first + 200, guest.receivedCount(0), "frames the guest received in all");
                    System.out.printf("fallback: %d frames through testpmd, %d queued during the switch, %d after, "
                            + "200 from the TAP: all once%n", first, during, after);
                    rig.device.stopDatapath();
                }
            }
        } finally {
            pmd.destroyForcibly();
            pmd.waitFor(20, TimeUnit.SECONDS);
            output.join(20_000); // it closes our end of testpmd's output pipe at end of stream
        }
        assertEquals(List.of(), OpenDescriptors.opened(before, OpenDescriptors.snapshot()), "descriptors left open");
    }

    /** Without a fallback, a killed testpmd puts the device in DEVICE_NEEDS_RESET naming the backend. */
    @Test
    void killedDpdkBackendWithoutFallbackNeedsReset() throws Exception {
        java.util.Map<Integer, String> before = OpenDescriptors.snapshot();
        Path socket = dir.resolve("dpdk-vhost.sock");
        Process pmd = startTestpmd(socket);
        Thread output = reader;
        try {
            try (RuntimeRig rig = RuntimeRig.on(1,
                    tap -> VhostUserFrontendBackend.connect(socket, Duration.ofSeconds(10), 1))) {
                rig.guest.postRxBuffers();
                roundTripThroughTestpmd(rig.guest, 100);
                pmd.destroyForcibly();
                assertTrue(pmd.waitFor(20, TimeUnit.SECONDS), "testpmd did not die of SIGKILL");
                rig.awaitNeedsReset();
                String error = rig.device.lastError().orElse("");
                assertTrue(error.contains("is gone (the peer closed the connection)")
                        && error.contains("no fallback backend is set"), error);
                System.out.println("without fallback: " + error);
            }
        } finally {
            pmd.destroyForcibly();
            pmd.waitFor(20, TimeUnit.SECONDS);
            output.join(20_000);
        }
        assertEquals(List.of(), OpenDescriptors.opened(before, OpenDescriptors.snapshot()), "descriptors left open");
    }

    /**
     * A live switch between testpmd (through the vhost-user frontend) and the userspace datapath
     * on a TAP, both ways, every 200 frames the guest transmits, while it keeps transmitting: each
     * frame comes back from testpmd (MAC-swapped, into the guest) or leaves through the TAP, exactly
     * once in all.
     */
    @Test
    void liveSwitchBetweenDpdkAndUserspaceLosesNothing() throws Exception {
        java.util.Map<Integer, String> before = OpenDescriptors.snapshot();
        Path socket = dir.resolve("dpdk-vhost.sock");
        Process pmd = startTestpmd(socket);
        Thread output = reader;
        int frames = 2_000;
        int switches = 0;
        try {
            try (RuntimeRig rig = RuntimeRig.on(1,
                    tap -> VhostUserFrontendBackend.connect(socket, Duration.ofSeconds(10), 1));
                    UserspaceNetBackend userspace = UserspaceNetBackend.open(rig.tap)) {
                FakeGuest guest = rig.guest;
                guest.postRxBuffers();
                NetBackend other = userspace;
                BitSet viaTap = new BitSet();
                int sent = 0;
                int nextSwitch = 200;
                long deadline = System.nanoTime() + 4L * EVENT_MILLIS * 1_000_000L;
                int quietRounds = 0;
                // Until every frame is accounted for, or every transmit chain was used and nothing
                // arrived for 50 rounds of 20 ms (what testpmd dropped never comes).
                while (guest.receivedCount(0) + viaTap.cardinality() < frames
                        && !(sent >= frames && guest.txInFlight(0) == 0 && quietRounds >= 50)) {
                    if (sent < frames) {
                        sent += guest.transmitNumbered(0, Math.min(32, frames - sent));
                    }
                    if (sent >= nextSwitch && nextSwitch < frames) {
                        other = rig.device.switchBackend(other); // live, mid-stream
                        switches++;
                        nextSwitch += 200;
                    }
                    guest.collectTx();
                    boolean progress = guest.collectRx() > 0;
                    byte[] frame;
                    while ((frame = rig.network.nextFromGuest(0)) != null) {
                        int seq = (int) Frames.sequence(frame);
                        assertTrue(seq >= 0 && seq < frames, "sequence " + seq);
                        assertTrue(!viaTap.get(seq), "frame " + seq + " left the TAP twice");
                        viaTap.set(seq);
                        progress = true;
                    }
                    if (!progress && sent >= frames) {
                        quietRounds = guest.awaitCall(20, 0, 1) ? 0 : quietRounds + 1;
                    } else {
                        quietRounds = 0;
                    }
                    assertTrue(System.nanoTime() < deadline, guest.receivedCount(0) + " back from testpmd and "
                            + viaTap.cardinality() + " through the TAP of " + frames + " after " + switches + " switches");
                }
                rig.device.stopDatapath();
                // Ring level: every chain the guest made available was used once (collectTx checks ids).
                guest.collectTx();
                assertEquals(0, guest.txInFlight(0), "transmit chains not used");
                guest.collectRx(); // what was used before the stop
                byte[] late;
                while ((late = rig.network.nextFromGuest(0)) != null) {
                    int seq = (int) Frames.sequence(late);
                    assertTrue(!viaTap.get(seq), "frame " + seq + " left the TAP twice");
                    viaTap.set(seq);
                }
                BitSet all = (BitSet) viaTap.clone();
                for (long seq : guest.received(0)) {
                    assertTrue(!all.get((int) seq), "frame " + seq + " arrived twice (testpmd and TAP, or twice from testpmd)");
                    all.set((int) seq);
                }
                assertTrue(guest.receivedCount(0) > 0 && viaTap.cardinality() > 0, "both datapaths carried frames");
                // SIGTERM: testpmd prints its final statistics.
                pmd.toHandle().destroy();
                assertTrue(pmd.waitFor(30, TimeUnit.SECONDS), "testpmd did not exit on SIGTERM");
                output.join(20_000);
                String printed = String.join("\n", lines);
                long tookFromGuest = total(printed, "RX-packets");
                long gaveToGuest = total(printed, "TX-packets");
                long droppedByTestpmd = total(printed, "TX-dropped");
                // What testpmd took from the transmit ring is what did not leave through the TAP; what
                // it gave back is what the guest received; the difference is what its own forwarding
                // dropped (a frame it held when the device switched away and disabled its receive ring).
                assertEquals(frames - viaTap.cardinality(), tookFromGuest, "frames testpmd took from the transmit ring");
                assertEquals(guest.receivedCount(0), gaveToGuest, "frames testpmd put into the receive ring");
                assertEquals(tookFromGuest - gaveToGuest, droppedByTestpmd, "testpmd's own TX-dropped");
                assertEquals(frames, all.cardinality() + droppedByTestpmd, "every frame once, or counted dropped by testpmd");
                System.out.printf("live switch: %d switches, %d frames through testpmd (%d dropped by its forwarding), "
                        + "%d through the TAP, each once%n", switches, gaveToGuest, droppedByTestpmd, viaTap.cardinality());
            }
            assertEquals(9, switches);
        } finally {
            pmd.destroyForcibly();
            pmd.waitFor(20, TimeUnit.SECONDS);
            output.join(20_000);
        }
        assertEquals(List.of(), OpenDescriptors.opened(before, OpenDescriptors.snapshot()), "descriptors left open");
    }

    /** A counter of testpmd's "Accumulated forward statistics for all ports" block. */
    private static long total(String output, String counter) {
        int block = output.lastIndexOf("Accumulated forward statistics for all ports");
        assertTrue(block >= 0, "testpmd printed no final statistics");
        java.util.regex.Matcher m = java.util.regex.Pattern.compile(counter + ":\\s+(\\d+)").matcher(output.substring(block));
        assertTrue(m.find(), "no " + counter + " in testpmd's final statistics");
        return Long.parseLong(m.group(1));
    }

    /** Sends {@code count} numbered frames and waits for each to come back from testpmd. */
    private static void roundTripThroughTestpmd(FakeGuest guest, int count) throws Exception {
        int sent = 0;
        long deadline = System.nanoTime() + EVENT_MILLIS * 1_000_000L;
        while (guest.receivedCount(0) < count) {
            if (sent < count) {
                sent += guest.transmitNumbered(0, Math.min(64, count - sent));
            }
            guest.collectTx();
            if (guest.collectRx() == 0) {
                guest.awaitCall(100, 0, 1);
            }
            assertTrue(System.nanoTime() < deadline, guest.receivedCount(0) + " of " + count + " frames came back");
        }
        assertEquals(count, guest.receivedCount(0));
        List<Long> order = guest.received(0);
        for (int i = 0; i < count; i++) {
            assertEquals(i, order.get(i).longValue(), "frame " + i + " back in order, once");
        }
    }

    /** testpmd as vhost-user backend on {@code socket}; returns once its port is started. */
    private static Process startTestpmd(Path socket) throws Exception {
        String testpmd = "/usr/bin/dpdk-testpmd";
        assertTrue(new File(testpmd).canExecute(), "dpdk-testpmd is not installed; bin/peer-bench installs it");
        List<String> command = List.of(testpmd, "-l", "0-1", "--no-pci", "--no-huge", "-m", "512",
                "--file-prefix=vhostffm-fallback-" + ProcessHandle.current().pid(),
                "--vdev", "net_vhost0,iface=" + socket + ",queues=1,client=0",
                "--", "--total-num-mbufs=16384", "--forward-mode=macswap", "--auto-start", "--stats-period=5");
        System.out.println("testpmd: " + String.join(" ", command));
        lines.clear();
        Process p = new ProcessBuilder(command).redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                .redirectErrorStream(true).start();
        CountDownLatch started = new CountDownLatch(1);
        reader = Thread.ofPlatform().daemon().name("testpmd output").start(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                    System.out.println("testpmd| " + line);
                    lines.add(line);
                    if (line.contains("Start automatic packet forwarding") || line.startsWith("Port statistics")) {
                        started.countDown();
                    }
                }
            } catch (IOException e) {
                // the process is gone
            }
        });
        if (!started.await(60, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError("testpmd did not start forwarding within 60 s");
        }
        return p;
    }

    /** A backend that counts down a latch once it started: the runtime's switch to the fallback, as an event. */
    private static final class Started implements NetBackend {
        private final NetBackend delegate;
        private final CountDownLatch started;

        Started(NetBackend delegate, CountDownLatch started) {
            this.delegate = delegate;
            this.started = started;
        }

        @Override
        public BackendCapabilities capabilities() {
            return delegate.capabilities();
        }

        @Override
        public int maxQueuePairs() {
            return delegate.maxQueuePairs();
        }

        @Override
        public void prestart(BackendStart start) throws IOException {
            delegate.prestart(start);
        }

        @Override
        public void quickstart(List<QueuePosition> finalPositions) throws IOException {
            delegate.quickstart(finalPositions);
            started.countDown();
        }

        @Override
        public void start(BackendStart start) throws IOException {
            delegate.start(start);
            started.countDown();
        }

        @Override
        public boolean isRunning() {
            return delegate.isRunning();
        }

        @Override
        public List<QueuePosition> stop() throws IOException {
            return delegate.stop();
        }

        @Override
        public void setQueuePairEnabled(int pair, boolean enabled) throws IOException {
            delegate.setQueuePairEnabled(pair, enabled);
        }

        @Override
        public void setOffloads(int tunOffloadFlags) throws IOException {
            delegate.setOffloads(tunOffloadFlags);
        }

        @Override
        public void setRxFilter(io.vhostffm.vhost.virtio.net.RxFilter filter) throws IOException {
            delegate.setRxFilter(filter);
        }

        @Override
        public void setRss(io.vhostffm.vhost.virtio.net.RssState rss) throws IOException {
            delegate.setRss(rss);
        }

        @Override
        public void startDirtyLog(DirtyLog log) throws IOException {
            delegate.startDirtyLog(log);
        }

        @Override
        public void stopDirtyLog() throws IOException {
            delegate.stopDirtyLog();
        }

        @Override
        public BackendTransfer transfer() {
            return delegate.transfer();
        }

        @Override
        public void close() {
            // the delegate is closed by its owner
        }

        @Override
        public String toString() {
            return delegate.toString();
        }
    }
}

package io.vhostffm.programs.demo;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.testkit.Frames;
import io.vhostffm.testkit.OpenDescriptors;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vhost.vhostuser.VhostUserRequest;
import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.io.TempDir;

/**
 * Early migration with a vhost-user backend: each side of the migration ({@link MigrationRig}:
 * source and destination over a socket pair, guest memory and the TAP handed over by SCM_RIGHTS,
 * the old side closed) connects its own DPDK testpmd ({@code net_vhost}, macswap) through
 * {@link Backends#vhostUser}. The destination prestarts against its testpmd while the guest runs
 * on the source; the switchover with no delta is SET_VRING_BASE and SET_VRING_ENABLE per ring and
 * SET_STATUS(DRIVER_OK), nothing else. The guest sends numbered frames; testpmd sends each back
 * into the guest's receive ring, MAC-swapped. Every frame comes back once, in order, or is counted
 * by a testpmd as its own TX-dropped (a frame it held when its rings were disabled at the stop);
 * while the destination runs its fallback (the userspace datapath), frames leave through the TAP
 * instead, each once too.
 */
@Tag("peer")
class DpdkMigrationPeerTest {
    /** Migrations back and forth per ring format ({@code -Dvhostffm.peer.dpdkMigrations=N} for another count). */
    static final int MIGRATIONS = Integer.getInteger("vhostffm.peer.dpdkMigrations", 100);
    /** Frames the guest sends between two migrations. */
    static final int FRAMES = 200;
    private static final int EVENT_MILLIS = 30_000;
    private static final Duration REPLY = Duration.ofSeconds(10);

    @TempDir
    Path dir;

    /** Two-side migrations A -> B -> A ..., no delta: the quickstart, counted. */
    @ParameterizedTest(name = "packed={0}")
    @ValueSource(booleans = {false, true})
    void migrationsBackAndForthThroughTwoTestpmds(boolean packed) throws Exception {
        Map<Integer, String> before = OpenDescriptors.snapshot();
        Path a = dir.resolve("a.sock");
        Path b = dir.resolve("b.sock");
        Accounting count;
        List<Long> switchover = new ArrayList<>();
        List<Long> deviceStart = new ArrayList<>();
        List<Long> stopAndCopy = new ArrayList<>();
        try (Testpmd pmdA = Testpmd.start(a, "a"); Testpmd pmdB = Testpmd.start(b, "b")) {
            try (MigrationRig rig = MigrationRig.boot(1, wanted(packed), Backends.vhostUser(a, REPLY))) {
                rig.wireDuringDowntime = false; // no side serves the TAP: testpmd is the network
                count = new Accounting(rig);
                assertEquals(packed, rig.guest.packed(), "packed rings");
                count.roundTrip(FRAMES);
                for (int i = 0; i < MIGRATIONS; i++) {
                    rig.destinationBackends = Backends.vhostUser(i % 2 == 0 ? b : a, REPLY);
                    MigrationRig.Migrated m = rig.migrate(d -> {}, g -> {});
                    assertEquals("QUICKSTART", m.figures().path(), m.figures()::toString);
                    assertEquals("vhost-user backend process", m.figures().datapath());
                    assertQuickstartOnly(m.figures().switchoverIoctls());
                    switchover.add(m.figures().switchoverNanos());
                    deviceStart.add(m.figures().deviceStartNanos());
                    stopAndCopy.add(m.report().stopAndCopyNanos());
                    count.roundTrip(FRAMES);
                }
                rig.device().stopDatapath();
                count.drain();
            }
            pmdA.stop();
            pmdB.stop();
            count.check(List.of(pmdA, pmdB));
            System.out.printf("dpdk migrations (%s): %d back and forth, %d frames sent, %d back through testpmd once each "
                    + "and in order, %d dropped by testpmd (a %d, b %d); switchover requests %s; medians: "
                    + "stop-and-copy %d us, switchover %d us, device start %d us%n", packed ? "packed" : "split", MIGRATIONS,
                    count.sent(),
                    count.back(), pmdA.dropped + pmdB.dropped, pmdA.dropped, pmdB.dropped, "2 x SET_VRING_BASE, "
                    + "2 x SET_VRING_ENABLE, SET_STATUS", median(stopAndCopy) / 1000, median(switchover) / 1000,
                    median(deviceStart) / 1000);
        }
        assertEquals(List.of(), OpenDescriptors.opened(before, OpenDescriptors.snapshot()), "descriptors left open");
    }

    /**
     * A failure injected at each request of the destination's prestart and quickstart: the
     * destination falls back to the userspace datapath (frames leave through the TAP), then moves
     * back to its testpmd ({@code retryPrimary}); the next migration goes back the other way.
     */
    @ParameterizedTest(name = "packed={0}")
    @ValueSource(booleans = {false, true})
    void injectedFailuresFallBackToUserspace(boolean packed) throws Exception {
        record Fault(VhostUserRequest request, int occurrence) {}
        // One pair: two rings; the second ring's request, or the only one (SET_STATUS: 1 prestart, 2 DRIVER_OK).
        List<Fault> faults = List.of(new Fault(VhostUserRequest.SET_OWNER, 1), new Fault(VhostUserRequest.SET_FEATURES, 1),
                new Fault(VhostUserRequest.SET_STATUS, 1), new Fault(VhostUserRequest.SET_MEM_TABLE, 1),
                new Fault(VhostUserRequest.SET_VRING_NUM, 2), new Fault(VhostUserRequest.SET_VRING_ADDR, 2),
                new Fault(VhostUserRequest.SET_VRING_KICK, 2), new Fault(VhostUserRequest.SET_VRING_CALL, 2),
                new Fault(VhostUserRequest.SET_VRING_ERR, 2), new Fault(VhostUserRequest.SET_VRING_BASE, 2),
                new Fault(VhostUserRequest.SET_VRING_ENABLE, 2), new Fault(VhostUserRequest.SET_STATUS, 2));
        Map<Integer, String> before = OpenDescriptors.snapshot();
        Path a = dir.resolve("a.sock");
        Path b = dir.resolve("b.sock");
        Accounting count;
        List<String> outcomes = new ArrayList<>();
        try (Testpmd pmdA = Testpmd.start(a, "fa"); Testpmd pmdB = Testpmd.start(b, "fb")) {
            try (MigrationRig rig = MigrationRig.boot(1, wanted(packed), Backends.vhostUser(a, REPLY))) {
                rig.wireDuringDowntime = false;
                count = new Accounting(rig);
                assertEquals(packed, rig.guest.packed(), "packed rings");
                count.roundTrip(FRAMES);
                for (int i = 0; i < faults.size(); i++) {
                    Fault fault = faults.get(i);
                    rig.destinationBackends = Backends.vhostUser(i % 2 == 0 ? b : a, REPLY);
                    MigrationRig.Migrated m = rig.migrate(
                            d -> d.messages().failAt(fault.request(), fault.occurrence()), g -> {});
                    String injected = m.destination().messages().injected();
                    assertNotNull(injected, "no failure injected at " + fault);
                    assertEquals("FALLBACK", m.figures().path(), fault + ": " + m.figures());
                    assertEquals("userspace datapath", m.figures().datapath(), fault.toString());
                    count.roundTrip(FRAMES); // through the TAP
                    assertTrue(m.destination().migration().retryPrimary(), fault + ": no return to testpmd");
                    count.roundTrip(FRAMES); // through testpmd again
                    outcomes.add(injected + " -> " + m.figures().path() + " (" + m.figures().fallbackReason()
                            + "), then back on testpmd");
                }
                rig.device().stopDatapath();
                count.drain();
            }
            pmdA.stop();
            pmdB.stop();
            count.check(List.of(pmdA, pmdB));
            outcomes.forEach(o -> System.out.println("dpdk migration fault: " + o));
            System.out.printf("dpdk migration faults (%s): %d injected, each fell back; %d frames sent, %d back through "
                    + "testpmd, %d through the TAP, %d dropped by testpmd%n", packed ? "packed" : "split", faults.size(), count.sent(), count.back(),
                    count.viaTap(), pmdA.dropped + pmdB.dropped);
        }
        assertEquals(List.of(), OpenDescriptors.opened(before, OpenDescriptors.snapshot()), "descriptors left open");
    }

    /** What the guest acknowledges: the demo's features, with packed rings or without. */
    private static long wanted(boolean packed) {
        return packed ? DemoDevice.FEATURES | VirtioFeature.RING_PACKED.mask() : DemoDevice.FEATURES;
    }

    /** The switchover's requests: per ring SET_VRING_BASE and SET_VRING_ENABLE, one SET_STATUS; nothing else. */
    private static void assertQuickstartOnly(List<String> requests) {
        assertEquals(5, requests.size(), requests::toString);
        assertEquals(2, requests.stream().filter(r -> r.startsWith("SET_VRING_BASE(")).count(), requests::toString);
        assertEquals(2, requests.stream().filter(r -> r.startsWith("SET_VRING_ENABLE(")).count(), requests::toString);
        assertEquals(1, requests.stream().filter(r -> r.equals("SET_STATUS")).count(), requests::toString);
    }

    private static long median(List<Long> values) {
        List<Long> sorted = new ArrayList<>(values);
        Collections.sort(sorted);
        return sorted.isEmpty() ? 0 : sorted.get(sorted.size() / 2);
    }

    /**
     * The frames of pair 0: what the guest sent, what came back into it (through testpmd, or from
     * the TAP: never here, nothing sends into it), what left through the TAP.
     */
    private static final class Accounting {
        private final MigrationRig rig;
        private final BitSet viaTap = new BitSet();
        private int checkedBack;
        private long lastBack = -1;

        Accounting(MigrationRig rig) {
            this.rig = rig;
        }

        long sent() {
            return rig.guest.transmitted(0);
        }

        int back() {
            return rig.guest.receivedCount(0);
        }

        int viaTap() {
            return viaTap.cardinality();
        }

        /**
         * {@code frames} more, then until the last frame sent came back or left through the TAP:
         * both paths keep order, so every earlier frame then arrived or was dropped by a testpmd.
         */
        void roundTrip(int frames) throws Exception {
            FakeGuest guest = rig.guest;
            long target = guest.transmitted(0) + frames;
            long deadline = System.nanoTime() + EVENT_MILLIS * 1_000_000L;
            while (!seen(target - 1)) {
                if (guest.transmitted(0) < target) {
                    guest.transmitNumbered(0, (int) Math.min(32, target - guest.transmitted(0)));
                }
                guest.collectTx();
                boolean progress = guest.collectRx() > 0;
                progress |= pumpTap();
                if (!progress) {
                    guest.awaitCall(10, 0, 1);
                }
                assertTrue(System.nanoTime() < deadline, "frame " + (target - 1) + " neither came back nor left the TAP: "
                        + back() + " back, " + viaTap() + " through the TAP of " + guest.transmitted(0));
            }
        }

        /** After the datapath stopped: what was used before the stop. */
        void drain() throws Exception {
            rig.guest.collectTx();
            rig.guest.collectRx();
            pumpTap();
            assertEquals(0, rig.guest.txInFlight(0), "transmit chains not used");
        }

        private boolean seen(long seq) {
            checkBack();
            return lastBack == seq || viaTap.get((int) seq);
        }

        /** Frames back from testpmd: each once, in increasing order (gaps: testpmd's drops, or the TAP's). */
        private void checkBack() {
            int n = rig.guest.receivedCount(0);
            if (n == checkedBack) {
                return;
            }
            List<Long> order = rig.guest.received(0);
            for (int i = checkedBack; i < n; i++) {
                long seq = order.get(i);
                assertTrue(seq > lastBack, "frame " + seq + " back after " + lastBack + ": duplicated or out of order");
                assertTrue(!viaTap.get((int) seq), "frame " + seq + " back from testpmd and through the TAP");
                lastBack = seq;
            }
            checkedBack = n;
        }

        private boolean pumpTap() throws Exception {
            boolean any = false;
            byte[] frame;
            while ((frame = rig.wire.nextFromGuest(0)) != null) {
                int seq = (int) Frames.sequence(frame);
                assertTrue(seq >= 0 && seq < sent(), "sequence " + seq + " through the TAP");
                assertTrue(!viaTap.get(seq), "frame " + seq + " left the TAP twice");
                viaTap.set(seq);
                any = true;
            }
            return any;
        }

        /**
         * Against testpmd's own counters: what they took from transmit rings is what did not leave
         * through the TAP; what they gave back is what the guest received; the difference is their
         * own TX-dropped; every frame once, or dropped by a testpmd.
         */
        void check(List<Testpmd> pmds) {
            checkBack();
            long took = pmds.stream().mapToLong(p -> p.rx).sum();
            long gave = pmds.stream().mapToLong(p -> p.tx).sum();
            long dropped = pmds.stream().mapToLong(p -> p.dropped).sum();
            assertEquals(sent() - viaTap(), took, "frames the testpmds took from the transmit rings");
            assertEquals(back(), gave, "frames the testpmds put into the receive rings");
            assertEquals(took - gave, dropped, "the testpmds' own TX-dropped");
            assertEquals(sent(), back() + viaTap() + dropped, "every frame once, or counted dropped by a testpmd");
        }
    }

    /** testpmd as vhost-user backend (net_vhost, server, macswap), and its final counters. */
    private static final class Testpmd implements AutoCloseable {
        private final Process process;
        private final Thread reader;
        private final List<String> lines;
        long rx;
        long tx;
        long dropped;

        private Testpmd(Process process, Thread reader, List<String> lines) {
            this.process = process;
            this.reader = reader;
            this.lines = lines;
        }

        static Testpmd start(Path socket, String name) throws Exception {
            String testpmd = "/usr/bin/dpdk-testpmd";
            assertTrue(new File(testpmd).canExecute(), "dpdk-testpmd is not installed; bin/peer-bench installs it");
            List<String> command = List.of(testpmd, "-l", "0-1", "--no-pci", "--no-huge", "-m", "512",
                    "--file-prefix=vhostffm-migration-" + name + "-" + ProcessHandle.current().pid(),
                    "--vdev", "net_vhost0,iface=" + socket + ",queues=1,client=0",
                    "--", "--total-num-mbufs=16384", "--forward-mode=macswap", "--auto-start", "--stats-period=5");
            System.out.println("testpmd " + name + ": " + String.join(" ", command));
            Process p = new ProcessBuilder(command).redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                    .redirectErrorStream(true).start();
            CountDownLatch started = new CountDownLatch(1);
            List<String> lines = Collections.synchronizedList(new ArrayList<>());
            Thread reader = Thread.ofPlatform().daemon().name("testpmd " + name).start(() -> {
                try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                    String line;
                    while ((line = r.readLine()) != null) {
                        System.out.println("testpmd " + name + "| " + line);
                        lines.add(line);
                        if (line.contains("Start automatic packet forwarding") || line.startsWith("Port statistics")) {
                            started.countDown();
                        }
                    }
                } catch (IOException e) {
                    // the process is gone
                }
            });
            Testpmd pmd = new Testpmd(p, reader, lines);
            if (!started.await(60, TimeUnit.SECONDS)) {
                pmd.close();
                throw new AssertionError("testpmd " + name + " did not start forwarding within 60 s");
            }
            return pmd;
        }

        /** SIGTERM (not closing its output first: it would die of SIGPIPE); reads its final counters. */
        void stop() throws Exception {
            process.toHandle().destroy();
            assertTrue(process.waitFor(30, TimeUnit.SECONDS), "testpmd did not exit on SIGTERM");
            reader.join(20_000);
            String printed = String.join("\n", lines);
            rx = total(printed, "RX-packets");
            tx = total(printed, "TX-packets");
            dropped = total(printed, "TX-dropped");
        }

        @Override
        public void close() {
            process.destroyForcibly();
            try {
                process.waitFor(20, TimeUnit.SECONDS);
                reader.join(20_000); // closes our end of its output pipe at end of stream
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
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
}

package io.vhostffm.programs.demo;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.testkit.Frames;
import io.vhostffm.testkit.OpenDescriptors;
import io.vhostffm.testkit.Testpmd;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vhost.vhostuser.VhostUserRequest;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.Collections;
import java.util.List;
import java.util.Map;
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
    private static final Duration START = Duration.ofSeconds(60);

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
        try (Testpmd pmdA = Testpmd.start(a, "migration-a", 1, START, System.out);
                Testpmd pmdB = Testpmd.start(b, "migration-b", 1, START, System.out)) {
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
            Testpmd.Counters countedA = pmdA.stop(START);
            Testpmd.Counters countedB = pmdB.stop(START);
            count.check(countedA.plus(countedB));
            System.out.printf("dpdk migrations (%s): %d back and forth, %d frames sent, %d back through testpmd once each "
                    + "and in order, %d dropped by testpmd (a %d, b %d); switchover requests %s; medians: "
                    + "stop-and-copy %d us, switchover %d us, device start %d us%n", packed ? "packed" : "split", MIGRATIONS,
                    count.sent(),
                    count.back(), countedA.txDropped() + countedB.txDropped(), countedA.txDropped(),
                    countedB.txDropped(), "2 x SET_VRING_BASE, "
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
        try (Testpmd pmdA = Testpmd.start(a, "migration-fa", 1, START, System.out);
                Testpmd pmdB = Testpmd.start(b, "migration-fb", 1, START, System.out)) {
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
            Testpmd.Counters countedA = pmdA.stop(START);
            Testpmd.Counters countedB = pmdB.stop(START);
            count.check(countedA.plus(countedB));
            outcomes.forEach(o -> System.out.println("dpdk migration fault: " + o));
            System.out.printf("dpdk migration faults (%s): %d injected, each fell back; %d frames sent, %d back through "
                    + "testpmd, %d through the TAP, %d dropped by testpmd%n", packed ? "packed" : "split", faults.size(), count.sent(), count.back(),
                    count.viaTap(), countedA.txDropped() + countedB.txDropped());
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
        void check(Testpmd.Counters pmds) {
            checkBack();
            long took = pmds.rxPackets();
            long gave = pmds.txPackets();
            long dropped = pmds.txDropped();
            assertEquals(sent() - viaTap(), took, "frames the testpmds took from the transmit rings");
            assertEquals(back(), gave, "frames the testpmds put into the receive rings");
            assertEquals(took - gave, dropped, "the testpmds' own TX-dropped");
            assertEquals(sent(), back() + viaTap() + dropped, "every frame once, or counted dropped by a testpmd");
        }
    }
}

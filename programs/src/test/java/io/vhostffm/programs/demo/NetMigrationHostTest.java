package io.vhostffm.programs.demo;


import io.vhostffm.vhost.virtio.VirtioFeature;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.migration.MigrationException;
import io.vhostffm.migration.MigrationStreamException;
import io.vhostffm.programs.demo.MigrationDemo;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import java.io.OutputStream;
import java.io.PrintStream;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Early live migration on this host's datapath (the userspace one where /dev/vhost-net is missing),
 * real TAP, real memfds, real sockets; only the guest is fake.
 */
// A hang (a blocked socket read) fails the one test instead of the whole suite.
@Timeout(value = 3, unit = java.util.concurrent.TimeUnit.MINUTES, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class NetMigrationHostTest {

    private static long openFds() throws IOException {
        try (Stream<Path> s = Files.list(Path.of("/proc/self/fd"))) {
            return s.count();
        }
    }

    @Test
    void aThousandMigrationsBackAndForthLoseNoFrame() throws Exception {
        try (MigrationRig rig = MigrationRig.boot(1)) {
            rig.traffic(32);
            long fdsAfterFirst = -1;
            int quickstarts = 0;
            for (int i = 1; i <= 1000; i++) {
                MigrationRig.Migrated m = rig.migrate(d -> {}, g -> {});
                if (m.figures().path().equals("QUICKSTART")) {
                    quickstarts++;
                }
                rig.traffic(8);
                if (i == 1) {
                    fdsAfterFirst = openFds();
                }
                if (i % 100 == 0) {
                    rig.assertEveryFrameExactlyOnceInOrder();
                }
            }
            rig.assertEveryFrameExactlyOnceInOrder();
            assertEquals(1000, quickstarts, "every no-delta migration is a quickstart");
            long fds = openFds();
            assertTrue(fds <= fdsAfterFirst + 4, "descriptors leak: " + fdsAfterFirst + " after the first migration, "
                    + fds + " after the 1000th");
        }
    }

    @Test
    void precopyAndSwitchoverDeltasAreAppliedFinelyOnThisDatapath() throws Exception {
        try (MigrationRig rig = MigrationRig.boot(2)) {
            rig.traffic(50);
            MigrationRig.Migrated precopy = rig.migrate(d -> {}, g -> g.setPromiscuous(false));
            assertTrue(precopy.switchoverSections().isEmpty());
            assertTrue(precopy.report().precopyDeltaMessages() >= 1, precopy.report()::toString);
            assertEquals("QUICKSTART_AFTER_FINE_DELTAS", precopy.figures().path());
            rig.traffic(50);
            rig.precopyDeltas = false;
            MigrationRig.Migrated atSwitchover = rig.migrate(d -> {}, g -> {
                g.setQueuePairs(2);
                rig.activePairs = 2;
            });
            assertFalse(atSwitchover.switchoverSections().isEmpty());
            assertTrue(atSwitchover.figures().fineChanges().contains("virtio-net.queuePairs"),
                    atSwitchover.figures().fineChanges()::toString);
            rig.traffic(50);
            rig.assertEveryFrameExactlyOnceInOrder();
        }
    }

    @Test
    void aGuestThatRebootsWithOtherFeaturesDuringPrecopyIsAFullReload() throws Exception {
        try (MigrationRig rig = MigrationRig.boot(1)) {
            rig.traffic(50);
            MigrationRig.Migrated m = rig.migrate(d -> {},
                    g -> rig.rebootGuest(DemoDevice.FEATURES
                            & ~io.vhostffm.vhost.virtio.VirtioFeature.EVENT_IDX.mask()));
            assertEquals("FULL_RELOAD", m.figures().path());
            assertTrue(m.figures().fullReloadReasons().stream().anyMatch(r -> r.startsWith("virtio.ackedFeatures")),
                    m.figures().fullReloadReasons()::toString);
            assertTrue(m.report().precopyDeltaMessages() >= 1);
            rig.traffic(50);
            rig.assertEveryFrameExactlyOnceInOrder();
        }
    }

    @Test
    void betweenTwoHostsGuestMemoryGoesByDirtyLogPrecopy() throws Exception {
        try (MigrationRig rig = MigrationRig.boot(1)) {
            rig.ramCopy = true;
            rig.traffic(100);
            for (int i = 0; i < 4; i++) {
                MigrationRig.Migrated m = rig.migrate(d -> {}, g -> {});
                assertEquals("QUICKSTART", m.figures().path());
                assertTrue(rig.lastRamPages > 0);
                rig.traffic(100);
                rig.assertEveryFrameExactlyOnceInOrder();
            }
        }
    }

    /** Stream offsets to damage: the header, the manifest, the setup state, the switchover. */
    static Stream<Arguments> malformed() {
        return Stream.of(
                Arguments.of("wrong magic", 0L, 0x01),
                Arguments.of("wrong version", 5L, 0x02),
                Arguments.of("reserved bits", 7L, 0x01),
                Arguments.of("unknown section id in the manifest frame", 8L, 0x0e),
                Arguments.of("unknown flag on the manifest", 10L, 0x40),
                Arguments.of("length beyond the limit", 12L, 0x7f),
                Arguments.of("bad checksum in the manifest", 20L, 0x01),
                Arguments.of("a damaged frame header in the setup", 200L, 0x80),
                Arguments.of("bad checksum further in the setup state", 900L, 0x10));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("malformed")
    void aMalformedStreamLeavesTheDestinationUnstartedAndTheGuestRunningAtTheSource(String what, long offset, int xor)
            throws Exception {
        try (MigrationRig rig = MigrationRig.boot(1)) {
            rig.traffic(50);
            MigrationRig.Failed f = rig.failedMigration(CorruptingChannel.flip(offset, xor), false);
            assertNotNull(f.destinationFailure(), what + ": the destination accepted it");
            assertInstanceOf(MigrationStreamException.class, f.destinationFailure(), f.destinationFailure()::toString);
            assertFalse(f.destinationDatapathRunning(), "the destination must stay unstarted");
            assertInstanceOf(MigrationException.class, f.sourceFailure());
            assertTrue(rig.device().isDatapathRunning(), "the source resumed its datapath");
            rig.traffic(50);
            rig.assertEveryFrameExactlyOnceInOrder();
        }
    }

    @Test
    void aStreamCutInTheSwitchoverLeavesTheDestinationUnstartedAndTheGuestAtTheSource() throws Exception {
        try (MigrationRig rig = MigrationRig.boot(1)) {
            rig.traffic(50);
            // the setup message is a little over 1 KiB; cut after it, inside the switchover
            long setupBytes = setupBytes();
            MigrationRig.Failed f = rig.failedMigration(CorruptingChannel.cut(setupBytes + 20), true);
            assertNotNull(f.destinationFailure());
            assertFalse(f.destinationDatapathRunning());
            assertTrue(rig.device().isDatapathRunning());
            rig.traffic(50);
            rig.assertEveryFrameExactlyOnceInOrder();
        }
    }

    private static long setupBytes() throws Exception {
        try (MigrationRig rig = MigrationRig.boot(1)) {
            return rig.migrate(d -> {}, g -> {}).report().setupBytes();
        }
    }

    @Test
    void theDemoRunsBetweenTwoProcesses() throws Exception {
        MigrationDemo.Result r = MigrationDemo.run(new MigrationDemo.Settings(1, 300, true, true, false), QUIET);
        assertTrue(r.ok(), () -> r.problems().toString());
        assertEquals(300 + 64 + 300, r.framesToGuest(), "before, during the downtime, after");
        assertEquals(300 + 32 + 300, r.framesFromGuest(), "before, in flight at the pause, after");
        assertFalse(r.report().noDeltaAtSwitchover(), "the VLAN added before the pause travels at stop-and-copy");
        assertTrue(r.report().precopyDeltaMessages() >= 1);
    }

    /**
     * 256 pairs, the most a TAP takes: VQ_PAIRS_SET restarts the datapath on 256 pair threads
     * (its answer waited for per pair, {@code FakeGuest.QUEUE_PAIRS_SET_MILLIS_PER_PAIR}), the
     * handoff passes 512 TAP and eventfd descriptors in batches, and the guest's transmit on 256
     * pairs stays within the observer's window, so no frame is lost on the network side.
     */
    @Test
    @Timeout(180)
    void theDemoRunsWithTheMostPairsATapTakes() throws Exception {
        // Every ring of 256 pairs (513 virtqueues) placed by computation: none overlaps another.
        int pairs = 256;
        MigrationDemo.Result r = MigrationDemo.run(new MigrationDemo.Settings(pairs, 16, false, false, false), QUIET);
        assertTrue(r.ok(), () -> r.problems().toString());
        // during the downtime: the network side's window towards the guest (4096 frames, half a
        // TAP queue) shared by 256 streams
        assertEquals(pairs * (16 + 16 + 16L), r.framesToGuest(), "before, 16 each during the downtime, after");
        assertEquals(pairs * (16 + 32 + 16L), r.framesFromGuest(), "before, in flight at the pause, after");
    }

    @Test
    @Timeout(120)
    void theDemoCarriesFarMoreFramesThanTheRingsHold() throws Exception {
        // 50,000 frames each way before and after: 195 times the receive ring; the network side's
        // window keeps the TAP from dropping any of them, and the guest's transmit stays within a
        // window of what the network side saw (credits from the source after the migration), so
        // its socket drops none either.
        int frames = 50_000;
        MigrationDemo.Result r = MigrationDemo.run(new MigrationDemo.Settings(1, frames, false, false, false), QUIET);
        assertTrue(r.ok(), () -> r.problems().toString());
        assertEquals(frames + 64L + frames, r.framesToGuest(), "before, during the downtime, after");
        assertEquals(frames + 32L + frames, r.framesFromGuest(), "before, in flight at the pause, after");
    }

    /** The demo's narration goes nowhere: tests print nothing. */
    private static final PrintStream QUIET = new PrintStream(OutputStream.nullOutputStream());
}

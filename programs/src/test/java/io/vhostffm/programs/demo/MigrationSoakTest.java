package io.vhostffm.programs.demo;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.migration.MigrationException;
import io.vhostffm.migration.MigrationStreamException;
import io.vhostffm.testkit.ResourceLedger;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Migrations of one device run many times in one process ({@link MigrationRig}: source and
 * destination over a socket pair, memory and TAP handed over by SCM_RIGHTS, the old side closed),
 * with a few frames each way between any two, every frame checked exactly once and in order, and
 * the process's {@link ResourceLedger} flat from the end of the warm-up to the last cycle. The
 * device-level transitions are soaked in the testkit module ({@code LifeCycleSoak}); these need
 * the migration harness of this module.
 *
 * <p>{@value #CYCLES} cycles per transition: a migration builds a whole destination (device,
 * backend, threads) and closes the source, so it costs several times a datapath restart; 1,000 of
 * each still keep these three within about half of the soak's three-minute budget on a two-core
 * machine (the testkit's life-cycle soak takes most of the rest).
 */
@Timeout(value = 3, unit = TimeUnit.MINUTES, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class MigrationSoakTest {
    static final int CYCLES = 1000;
    /** Migrations before the first ledger (classes loaded, the JDK's own threads started). */
    static final int WARM_UP = 5;
    /** Frames each way between two migrations. */
    static final int FRAMES = 4;

    /** One cycle of a transition. */
    @FunctionalInterface
    interface Cycle {
        void run(MigrationRig rig, int cycle) throws Exception;
    }

    private static void soak(String transition, Cycle cycle) throws Exception {
        try (MigrationRig rig = MigrationRig.boot(1)) {
            rig.traffic(FRAMES);
            for (int i = 0; i < WARM_UP; i++) {
                cycle.run(rig, i);
                rig.traffic(FRAMES);
            }
            ResourceLedger.Snapshot warm = ResourceLedger.take();
            for (int i = WARM_UP; i < CYCLES; i++) {
                cycle.run(rig, i);
                rig.traffic(FRAMES);
            }
            ResourceLedger.Snapshot end = ResourceLedger.take();
            // The ledger (counts, not times): what the soak's record of each transition shows.
            System.out.println("soak " + transition + ": after " + WARM_UP + " cycles [" + warm + "]; after " + CYCLES
                    + " [" + end + "]");
            rig.assertEveryFrameExactlyOnceInOrder();
            ResourceLedger.requireFlat(transition + " (" + (CYCLES - WARM_UP) + " cycles after " + WARM_UP
                    + " to warm up)", warm, end);
        }
    }

    /** A migration nothing changes during: the destination quickstarts on the setup state alone. */
    @Test
    void migrationWithoutDelta() throws Exception {
        soak("migrationWithoutDelta", (rig, i) -> {
            MigrationRig.Migrated m = rig.migrate(d -> {}, g -> {});
            assertEquals("QUICKSTART", m.figures().path());
        });
    }

    /**
     * A migration during whose precopy the guest turns promiscuous mode off (it boots on) or back
     * on: a fine delta.
     */
    @Test
    void migrationWithDelta() throws Exception {
        soak("migrationWithDelta", (rig, i) -> {
            MigrationRig.Migrated m = rig.migrate(d -> {}, g -> g.setPromiscuous(i % 2 != 0));
            assertEquals("QUICKSTART_AFTER_FINE_DELTAS", m.figures().path());
            assertTrue(m.report().precopyDeltaMessages() >= 1, m.report()::toString);
        });
    }

    /**
     * A migration whose stream arrives damaged (the magic): the destination refuses it and the
     * source resumes its datapath where it stopped (resumeAtSource).
     */
    @Test
    void resumeAtSourceAfterARefusedMigration() throws Exception {
        soak("resumeAtSourceAfterARefusedMigration", (rig, i) -> {
            MigrationRig.Failed f = rig.failedMigration(CorruptingChannel.flip(0, 0x01), false);
            assertInstanceOf(MigrationStreamException.class, f.destinationFailure());
            assertInstanceOf(MigrationException.class, f.sourceFailure());
            assertFalse(f.destinationDatapathRunning(), "the destination must stay unstarted");
            assertTrue(rig.device().isDatapathRunning(), "the source resumed its datapath");
        });
    }
}

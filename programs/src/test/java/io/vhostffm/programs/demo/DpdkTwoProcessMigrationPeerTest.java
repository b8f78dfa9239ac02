package io.vhostffm.programs.demo;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.testkit.OpenDescriptors;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Early migration with a vhost-user backend between two real processes: {@link DowntimeBench}
 * with {@code --backend vhost-user}, this JVM and a child JVM each with its own DPDK testpmd
 * ({@code net_vhost}, macswap) behind our frontend. The destination prestarts against its testpmd
 * while the guest runs at the source; the switchover is the quickstart. Each configuration
 * checks on the destination's connection what the switchover sent (with no delta: per ring
 * SET_VRING_BASE and SET_VRING_ENABLE, one SET_STATUS, nothing else); the bench itself fails when
 * a frame did not come back once and in order without a testpmd counting it as TX-dropped (read
 * from both testpmds' final statistics), or when the child left a descriptor open; this JVM's
 * descriptors are checked here.
 */
@Tag("peer")
class DpdkTwoProcessMigrationPeerTest {
    /** Migrations of the long configuration ({@code -Dvhostffm.peer.twoProcessMigrations=N} for another count). */
    static final int MIGRATIONS = Integer.getInteger("vhostffm.peer.twoProcessMigrations", 100);
    /** Migrations of the shorter configurations. */
    static final int SHORT = 6;
    /** Frames per pair the guest sends between two migrations. */
    static final int FRAMES = 64;

    @TempDir
    Path out;

    @Test
    void onePairSplitRingsHundredMigrationsBackAndForth() throws Exception {
        List<DowntimeBench.Sample> samples = run(1, MIGRATIONS, false, false);
        samples.forEach(s -> assertQuickstartOnly(s, 1, "QUICKSTART"));
    }

    @Test
    void twoPairs() throws Exception {
        List<DowntimeBench.Sample> samples = run(2, SHORT, false, false);
        samples.forEach(s -> assertQuickstartOnly(s, 2, "QUICKSTART"));
    }

    @Test
    void packedRings() throws Exception {
        List<DowntimeBench.Sample> samples = run(1, SHORT, false, true);
        samples.forEach(s -> assertQuickstartOnly(s, 1, "QUICKSTART"));
    }

    /**
     * The guest adds a VLAN during each precopy, found by the stop-and-copy: the destination applies
     * it to its model as a fine delta and still quickstarts ({@code QUICKSTART_AFTER_FINE_DELTAS});
     * its vhost-user requests are the quickstart's alone: the VLAN filter is the device model's
     * (the frontend sends no request for a receive filter, as QEMU's vhost-user does not).
     */
    @Test
    void switchoverWithADelta() throws Exception {
        List<DowntimeBench.Sample> samples = run(1, SHORT, true, false);
        samples.forEach(s -> assertQuickstartOnly(s, 1, "QUICKSTART_AFTER_FINE_DELTAS"));
        samples.forEach(s -> assertTrue(!s.fineChanges().isEmpty(), "migration " + s.index() + ": no delta applied"));
    }

    private List<DowntimeBench.Sample> run(int pairs, int migrations, boolean delta, boolean packed) throws Exception {
        Map<Integer, String> before = OpenDescriptors.snapshot();
        String label = "vhost-user-" + pairs + "p-" + (delta ? "delta" : "nodelta") + (packed ? "-packed" : "");
        DowntimeBench.Settings settings = new DowntimeBench.Settings(pairs, migrations, FRAMES, delta, label, out,
                packed, true);
        List<DowntimeBench.Sample> samples = DowntimeBench.run(settings, System.out);
        assertEquals(migrations, samples.size(), "migrations");
        assertEquals(List.of(), DowntimeBench.leaked(before), "descriptors left open");
        return samples;
    }

    /**
     * Prestarted during the early load, the switchover took {@code path}, and it sent per ring
     * SET_VRING_BASE and SET_VRING_ENABLE, then one SET_STATUS: nothing else.
     */
    private static void assertQuickstartOnly(DowntimeBench.Sample s, int pairs, String path) {
        String which = "migration " + s.index() + " " + (s.toChild() ? "to the child" : "back") + ": "
                + s.switchoverRequests();
        assertTrue(s.prestarted(), which + ": not prestarted");
        assertEquals(path, s.path(), which);
        List<String> requests = s.switchoverRequests();
        assertEquals(4 * pairs + 1, requests.size(), which);
        for (int ring = 0; ring < 2 * pairs; ring++) {
            assertTrue(requests.contains("SET_VRING_BASE(" + ring + ")"), which);
            assertTrue(requests.contains("SET_VRING_ENABLE(" + ring + ")"), which);
        }
        assertEquals("SET_STATUS", requests.get(requests.size() - 1), which);
    }
}

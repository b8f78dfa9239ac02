package io.vhostffm.jmh;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.testkit.OpenDescriptors;
import io.vhostffm.vhost.vhostuser.VhostUserRequest;
import io.vhostffm.vhost.vhostuser.frontend.VhostUserFrontendBackend;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Runs the vhost-user benchmarks' fixtures and operations directly, without JMH, against DPDK
 * testpmd (peer-tagged: needs {@code dpdk-testpmd}, and root for the TAP):
 * {@link VhostUserSwitchoverBenchmark}'s bare frontend sends exactly the backend's requests, in the
 * same order, around and in each quickstart (so the two leave testpmd in the same state); and
 * {@link VhostUserDatapathBenchmark} gets every frame of its batches back, in order, through both
 * backends, ring formats and frame sizes. Nothing leaks.
 */
@Tag("peer")
class VhostUserFixturesPeerTest {
    private static final int ROUNDS = 2;

    /**
     * The JDK opens /dev/random and /dev/urandom once, for good, the first time it names a
     * temporary directory (as testpmd's fixture does): before any descriptor count is taken.
     */
    @BeforeAll
    static void openTheJdksRandomSource() throws Exception {
        Files.delete(Files.createTempDirectory("vhostffm-fixture"));
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 4, 16})
    void bareFrontendSendsTheBackendsRequests(int pairs) throws Exception {
        Map<Integer, String> fdsBefore = OpenDescriptors.snapshot();
        VhostUserSwitchoverBenchmark.Peer peer = new VhostUserSwitchoverBenchmark.Peer();
        peer.pairs = pairs;
        peer.setUp();
        VhostUserSwitchoverBenchmark bench = new VhostUserSwitchoverBenchmark();
        List<BareVhostUserFrontend.Sent> byBackend = new ArrayList<>();
        List<BareVhostUserFrontend.Sent> bare = new ArrayList<>();
        List<BareVhostUserFrontend.Sent> backendQuickstart = new ArrayList<>();
        List<BareVhostUserFrontend.Sent> bareQuickstart = new ArrayList<>();
        try {
            var pre = new VhostUserSwitchoverBenchmark.Prestarted();
            pre.connect(peer);
            pre.backend.setMessageObserver((request, ring) -> byBackend.add(new BareVhostUserFrontend.Sent(request, ring)));
            for (int round = 0; round < ROUNDS; round++) {
                pre.prestart(peer);
                int before = byBackend.size();
                VhostUserFrontendBackend b = bench.quickstart(peer, pre);
                assertTrue(b.isRunning());
                backendQuickstart.addAll(byBackend.subList(before, byBackend.size()));
                pre.stop();
            }
            pre.close();

            var bareState = new VhostUserSwitchoverBenchmark.Bare();
            bareState.connect(peer);
            bareState.frontend.record(bare);
            for (int round = 0; round < ROUNDS; round++) {
                bareState.prestart(peer);
                int before = bare.size();
                bench.bareMessages(bareState);
                bareQuickstart.addAll(bare.subList(before, bare.size()));
                int[] bases = bareState.frontend.stop();
                for (int i = 0; i < bases.length; i++) {
                    assertEquals(0, bases[i], "virtqueue " + i + "'s base after the bare quickstart");
                }
            }
            bareState.close();
        } finally {
            peer.tearDown();
        }
        assertEquals(ROUNDS * (4 * pairs + 1), backendQuickstart.size(), "the backend's quickstart: " + backendQuickstart);
        assertEquals(backendQuickstart, bareQuickstart, "quickstart's requests");
        assertEquals(VhostUserRequest.SET_STATUS, bareQuickstart.get(4 * pairs).request());
        assertEquals(byBackend, bare, "every request from the first prestart to the last stop");
        Map<Integer, String> after = OpenDescriptors.snapshot();
        assertEquals(fdsBefore.size(), after.size(), () -> "descriptors after the trial: "
                + OpenDescriptors.diff(fdsBefore, after));
    }

    @ParameterizedTest
    @CsvSource({"dpdk,split", "dpdk,packed", "userspace,split", "userspace,packed"})
    void everyFrameComesBackInOrder(String backend, String format) throws Exception {
        Map<Integer, String> fdsBefore = OpenDescriptors.snapshot();
        for (int frameSize : new int[] {64, 1514}) {
            VhostUserDatapathBenchmark bench = new VhostUserDatapathBenchmark();
            bench.backend = backend;
            bench.format = format;
            bench.frameSize = frameSize;
            bench.setUp();
            String tapName = bench.tap != null ? bench.tap.name() : null;
            try {
                for (int round = 0; round < 20; round++) {
                    assertEquals((round + 1L) * VhostUserDatapathBenchmark.BATCH, bench.roundTrip(),
                            "frames back in order after round " + round);
                }
                assertEquals(20L * VhostUserDatapathBenchmark.BATCH, bench.framesBack);
                if (bench.reflector != null) {
                    assertTrue(bench.reflector.reflected() >= bench.framesBack, "the reflector sent them back");
                }
            } finally {
                bench.tearDown();
            }
            if (tapName != null) {
                assertFalse(Files.exists(Path.of("/sys/class/net", tapName)), "the TAP is gone after the trial");
            }
        }
        Map<Integer, String> after = OpenDescriptors.snapshot();
        assertEquals(fdsBefore.size(), after.size(), () -> "descriptors after the trials: "
                + OpenDescriptors.diff(fdsBefore, after));
    }
}

package io.vhostffm.programs.demo;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.programs.demo.Backends;
import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.testkit.IoctlRecorder;
import io.vhostffm.programs.demo.MigrationDemo;
import io.vhostffm.vhost.device.kernel.VhostNetBackend;
import io.vhostffm.vhost.virtio.VirtioFeature;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Early live migration of a virtio-net device on the kernel's vhost-net, with a fake guest and
 * real TAP traffic. Fails (never skips) where /dev/vhost-net does not open: run it in the VM
 * bench ({@code bin/kernel-bench}).
 */
// A hang (a blocked socket read) fails the one test instead of the whole suite.
@Timeout(value = 6, unit = java.util.concurrent.TimeUnit.MINUTES, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
@Tag("kernel")
class NetMigrationKernelTest {
    private static final List<String> QUICKSTART_IOCTLS = List.of("VHOST_SET_VRING_BASE", "VHOST_NET_SET_BACKEND");

    @BeforeAll
    static void needsVhostNet() {
        assertTrue(Backends.kernelAvailable(), "/dev/vhost-net does not open on this host: the kernel tests need it "
                + "(run bin/kernel-bench)");
    }

    private static void assertOnKernel(MigrationRig rig) {
        assertTrue(rig.device().backend() instanceof VhostNetBackend, () -> "the device runs on " + rig.device().backend());
    }

    @Test
    void noDeltaSwitchoverIsTheQuickstartWithOnlySetVringBaseAndSetBackend() throws Exception {
        try (MigrationRig rig = MigrationRig.boot(2)) {
            assertOnKernel(rig);
            rig.guest.setQueuePairs(2);
            rig.activePairs = 2;
            rig.traffic(300);
            MigrationRig.Migrated m = rig.migrate(d -> {}, g -> {});
            assertTrue(m.switchoverSections().isEmpty(), "no delta: only the indices at stop-and-copy");
            assertEquals("QUICKSTART", m.figures().path());
            assertOnKernel(rig);
            List<String> ioctls = m.figures().switchoverIoctls();
            assertTrue(QUICKSTART_IOCTLS.containsAll(ioctls), () -> "switchover ioctls " + ioctls);
            // per queue one SET_VRING_BASE; per queue of each enabled pair one NET_SET_BACKEND
            assertEquals(4, ioctls.stream().filter("VHOST_SET_VRING_BASE"::equals).count());
            assertEquals(4, ioctls.stream().filter("VHOST_NET_SET_BACKEND"::equals).count());
            rig.traffic(300);
            rig.assertEveryFrameExactlyOnceInOrder();
        }
    }

    /** One guest action per state group, and the path it must take. */
    static Stream<Arguments> deltas() {
        return Stream.of(
                Arguments.of("mac-table", "QUICKSTART_AFTER_FINE_DELTAS", "virtio-net.macTable"),
                Arguments.of("mac", "QUICKSTART_AFTER_FINE_DELTAS", "virtio-net.mac"),
                Arguments.of("rx-mode", "QUICKSTART_AFTER_FINE_DELTAS", "virtio-net.rxMode"),
                Arguments.of("vlan", "QUICKSTART_AFTER_FINE_DELTAS", "virtio-net.vlanTable"),
                Arguments.of("guest-offloads", "QUICKSTART_AFTER_FINE_DELTAS", "virtio-net.guestOffloads"),
                Arguments.of("queue-pairs", "QUICKSTART_AFTER_FINE_DELTAS", "virtio-net.queuePairs"),
                Arguments.of("net-status", "QUICKSTART_AFTER_FINE_DELTAS", "virtio-net.netStatus"),
                Arguments.of("features", "FULL_RELOAD", "virtio.ackedFeatures"));
    }

    static void change(MigrationRig rig, String kind) throws Exception {
        FakeGuest g = rig.guest;
        int ack = switch (kind) {
            case "mac-table" -> g.setMacTable(new byte[] {0x52, 0x54, 0, 0, 0, 0x77});
            case "mac" -> g.setMac(new byte[] {0x52, 0x54, 0, 0x12, 0x34, 0x57});
            case "rx-mode" -> g.setPromiscuous(false);
            case "vlan" -> g.addVlan(42);
            case "guest-offloads" -> g.setGuestOffloads(0);
            case "queue-pairs" -> {
                int a = g.setQueuePairs(2);
                rig.activePairs = 2;
                yield a;
            }
            case "net-status" -> {
                rig.device().model().setLinkUp(false); // the host's link went down: VIRTIO_NET_S_LINK_UP cleared
                yield 0;
            }
            case "features" -> {
                rig.rebootGuest(DemoDevice.FEATURES & ~VirtioFeature.EVENT_IDX.mask());
                yield 0;
            }
            default -> throw new IllegalArgumentException(kind);
        };
        assertEquals(0, ack, kind + ": the device refused the command");
    }

    @ParameterizedTest(name = "{0} as a precopy delta: {1}")
    @MethodSource("deltas")
    void eachKindOfPrecopyDeltaTakesItsPath(String kind, String path, String field) throws Exception {
        runDelta(kind, path, field, true);
    }

    @ParameterizedTest(name = "{0} at stop-and-copy: {1}")
    @MethodSource("deltas")
    void eachKindOfSwitchoverDeltaTakesItsPath(String kind, String path, String field) throws Exception {
        runDelta(kind, path, field, false);
    }

    private static void runDelta(String kind, String path, String field, boolean precopy) throws Exception {
        try (MigrationRig rig = MigrationRig.boot(2)) {
            rig.precopyDeltas = precopy;
            rig.traffic(100);
            MigrationRig.Migrated m = rig.migrate(d -> {}, g -> change(rig, kind));
            assertEquals(path, m.figures().path());
            assertEquals(precopy, m.switchoverSections().isEmpty(), "a precopy delta leaves the stop-and-copy without one");
            List<String> touched = new ArrayList<>(m.figures().fineChanges());
            touched.addAll(m.figures().fullReloadReasons());
            assertTrue(touched.stream().anyMatch(f -> f.startsWith(field)), () -> field + " not among " + touched);
            if (path.startsWith("QUICKSTART")) {
                assertTrue(QUICKSTART_IOCTLS.containsAll(m.figures().switchoverIoctls()),
                        () -> "no vhost restart for " + kind + ": " + m.figures().switchoverIoctls());
            } else {
                assertTrue(m.figures().switchoverIoctls().contains("VHOST_SET_FEATURES"),
                        () -> "a full reload programs the features again: " + m.figures().switchoverIoctls());
            }
            assertOnKernel(rig);
            rig.traffic(100);
            rig.assertEveryFrameExactlyOnceInOrder();
        }
    }

    @Test
    void aFailureAtEachIoctlOfPrestartAndQuickstartFallsBackToUserspaceAndVhostComesBack() throws Exception {
        int count = countPrestartAndQuickstartIoctls();
        for (int i = 0; i < count; i++) {
            final int at = i;
            try (MigrationRig rig = MigrationRig.boot(1)) {
                assertNotNull(rig.backends().fallback(), "this build has no userspace fallback datapath");
                rig.traffic(20);
                IoctlRecorder[] recorder = new IoctlRecorder[1];
                MigrationRig.Migrated m = rig.migrate(d -> {
                    recorder[0] = d.ioctls();
                    d.ioctls().failAt(at); // counted from the first ioctl of the early load
                }, g -> {});
                String injected = recorder[0].injected();
                assertNotNull(injected, "ioctl #" + at + " was not reached");
                assertEquals("FALLBACK", m.figures().path(), "failure at " + injected);
                assertFalse(rig.device().backend() instanceof VhostNetBackend, "the userspace datapath runs after " + injected);
                rig.traffic(20);
                rig.assertEveryFrameExactlyOnceInOrder();
                assertTrue(m.destination().migration().retryPrimary(), "vhost retried after the switchover");
                assertOnKernel(rig);
                rig.traffic(20);
                rig.assertEveryFrameExactlyOnceInOrder();
            }
        }
    }

    /** The ioctls the destination issues from the start of the early load to the end of the quickstart. */
    private static int countPrestartAndQuickstartIoctls() throws Exception {
        try (MigrationRig rig = MigrationRig.boot(1)) {
            List<List<String>> early = new ArrayList<>();
            MigrationRig.Migrated m = rig.migrate(d -> {
                d.ioctls().clear(); // SET_OWNER and GET_FEATURES happened when the backend opened
                d.addBeforeSwitchover(() -> early.add(d.ioctls().names()));
            }, g -> {});
            List<String> all = m.destination().ioctls().names();
            List<String> prestart = early.get(0);
            List<String> quickstart = all.subList(prestart.size(), all.size());
            assertEquals(List.of("VHOST_SET_VRING_BASE", "VHOST_SET_VRING_BASE", "VHOST_NET_SET_BACKEND",
                    "VHOST_NET_SET_BACKEND"), quickstart);
            assertTrue(prestart.containsAll(List.of("VHOST_SET_FEATURES", "VHOST_SET_MEM_TABLE", "VHOST_SET_VRING_NUM",
                    "VHOST_SET_VRING_ADDR", "VHOST_SET_VRING_KICK", "VHOST_SET_VRING_CALL")), prestart::toString);
            return all.size();
        }
    }

    @Test
    void quickstartClassicAndStopAndCopyWithAndWithoutDeltaAlternateWithoutLoss() throws Exception {
        int warmUp = 2; // the first migrations of each kind, before the rounds
        int rounds = 7;
        try (MigrationRig rig = MigrationRig.boot(1)) {
            rig.precopyDeltas = false;
            for (int w = 0; w < warmUp; w++) {
                rig.migrate(d -> {}, g -> {});
                rig.migrate(d -> d.migration().setEarlyStart(false), g -> {});
                final int vid = 200 + w;
                rig.migrate(x -> {}, g -> g.addVlan(vid));
            }
            for (int r = 0; r < rounds; r++) {
                MigrationRig.Migrated q = rig.migrate(d -> {}, g -> {});
                assertEquals("QUICKSTART", q.figures().path());
                MigrationRig.Migrated c = rig.migrate(d -> d.migration().setEarlyStart(false), g -> {});
                assertEquals("CLASSIC", c.figures().path());
                final int vid = 100 + r;
                MigrationRig.Migrated d = rig.migrate(x -> {}, g -> g.addVlan(vid));
                assertFalse(d.switchoverSections().isEmpty());
                rig.traffic(20);
            }
            rig.assertEveryFrameExactlyOnceInOrder();
        }
    }

    @Test
    void theDemoMigratesBetweenTwoProcessesOnKernelVhostNet() throws Exception {
        MigrationDemo.Result r = MigrationDemo.run(new MigrationDemo.Settings(2, 300, false, false, false),
                new java.io.PrintStream(java.io.OutputStream.nullOutputStream()));
        assertTrue(r.ok(), () -> r.problems().toString());
        assertTrue(r.datapath().startsWith("kernel vhost-net"), r.datapath());
        assertEquals("QUICKSTART", r.destination().path());
        assertEquals("kernel vhost-net", r.destination().datapath());
        assertTrue(QUICKSTART_IOCTLS.containsAll(r.destination().switchoverIoctls()), () -> r.destination().switchoverIoctls().toString());
    }
}

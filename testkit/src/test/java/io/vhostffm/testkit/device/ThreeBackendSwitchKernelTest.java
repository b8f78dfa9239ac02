package io.vhostffm.testkit.device;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.vhostffm.testkit.OpenDescriptors;
import io.vhostffm.testkit.Testpmd;
import io.vhostffm.vhost.device.NetBackend;
import io.vhostffm.vhost.device.kernel.VhostNetBackend;
import io.vhostffm.vhost.device.userspace.UserspaceNetBackend;
import io.vhostffm.vhost.vhostuser.frontend.VhostUserFrontendBackend;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Live switches among all three backends of one device on one TAP, in the middle of a frame
 * stream the fake guest transmits: DPDK's vhost-user backend (testpmd's net_vhost, macswap,
 * through {@link VhostUserFrontendBackend}), the kernel's vhost-net and the userspace datapath,
 * twice round the cycle in each direction. A frame the guest transmits while on testpmd comes back
 * MAC-swapped into the guest's receive ring; one transmitted while on a TAP backend leaves through
 * the TAP; a frame testpmd held when the device switched away from it is in its own TX-dropped
 * counter: every frame is counted exactly once in one of the three. Needs /dev/vhost-net and
 * dpdk-testpmd (bin/kernel-bench runs it in a VM and installs DPDK on the host it shares); without
 * either it FAILS.
 */
@Tag("kernel")
class ThreeBackendSwitchKernelTest {
    /** Frames the guest transmits in each test. */
    private static final int FRAMES = 1_400;
    /** Frames the guest transmits between switches: six switches, twice round the cycle. */
    private static final int PER_BACKEND = 200;
    /** The whole stream's deadline: under the bench's TCG emulation a round of 32 frames takes tens of ms. */
    private static final long STREAM_NANOS = 300_000_000_000L;
    private static final Duration TESTPMD = Duration.ofSeconds(120);

    @TempDir
    Path dir;

    @Test
    void vhostUserToKernelToUserspaceAndBack() throws Exception {
        List<String> names = run(false);
        assertEquals(List.of("vhost-user", "kernel", "userspace", "vhost-user", "kernel", "userspace", "vhost-user"), names);
    }

    @Test
    void vhostUserToUserspaceToKernelAndBack() throws Exception {
        List<String> names = run(true);
        assertEquals(List.of("vhost-user", "userspace", "kernel", "vhost-user", "userspace", "kernel", "vhost-user"), names);
    }

    /** One stream on a device that starts on testpmd and switches round the cycle twice; returns the order it ran in. */
    private List<String> run(boolean reverse) throws Exception {
        Map<Integer, String> before = OpenDescriptors.snapshot();
        Path socket = dir.resolve("dpdk-vhost.sock");
        long began = System.nanoTime();
        List<String> order = new ArrayList<>();
        try (Testpmd pmd = Testpmd.start(socket, "three" + (reverse ? "-reverse" : ""), 1, TESTPMD, System.out)) {
            try (RuntimeRig rig = RuntimeRig.on(1,
                    tap -> VhostUserFrontendBackend.connect(socket, Duration.ofSeconds(10), 1));
                    VhostNetBackend kernel = VhostNetBackend.open(rig.tap);
                    UserspaceNetBackend userspace = UserspaceNetBackend.open(rig.tap)) {
                NetBackend vhostUser = rig.backend;
                List<NetBackend> cycle = reverse ? List.of(vhostUser, userspace, kernel) : List.of(vhostUser, kernel, userspace);
                rig.guest.postRxBuffers();
                EchoSwitching.Result r = EchoSwitching.streamWhileSwitching(rig, pmd, cycle, FRAMES, PER_BACKEND,
                        Duration.ofNanos(STREAM_NANOS), TESTPMD);
                r.order().forEach(b -> order.add(label(b, vhostUser, kernel)));
                assertEquals(6, r.switches());
                System.out.printf("three backends (%s): %d frames, %d switches %s in %d ms: %d back from testpmd "
                                + "(%d dropped by its forwarding), %d through the TAP, each once%n",
                        reverse ? "reverse" : "forward", FRAMES, r.switches(), order,
                        (System.nanoTime() - began) / 1_000_000, r.counted().txPackets(), r.counted().txDropped(),
                        r.viaTap().cardinality());
            }
        }
        assertEquals(List.of(), OpenDescriptors.opened(before, OpenDescriptors.snapshot()), "descriptors left open");
        return order;
    }

    private static String label(NetBackend backend, NetBackend vhostUser, NetBackend kernel) {
        return backend == vhostUser ? "vhost-user" : backend == kernel ? "kernel" : "userspace";
    }
}

package io.vhostffm.testkit.device;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.testkit.Frames;
import io.vhostffm.testkit.OpenDescriptors;
import io.vhostffm.testkit.Testpmd;
import io.vhostffm.vhost.device.NetBackend;
import io.vhostffm.vhost.device.kernel.VhostNetBackend;
import io.vhostffm.vhost.device.userspace.UserspaceNetBackend;
import io.vhostffm.vhost.vhostuser.frontend.VhostUserFrontendBackend;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
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
                FakeGuest guest = rig.guest;
                guest.postRxBuffers();
                order.add(label(rig.device.backend(), vhostUser, kernel));

                BitSet viaTap = new BitSet();
                int sent = 0;
                int switches = 0;
                int nextSwitch = PER_BACKEND;
                long deadline = System.nanoTime() + STREAM_NANOS;
                int quietRounds = 0;
                // Until every frame is accounted for, or every transmit chain was used and nothing
                // arrived for 50 rounds of 20 ms (what testpmd dropped never comes).
                while (guest.receivedCount(0) + viaTap.cardinality() < FRAMES
                        && !(sent >= FRAMES && guest.txInFlight(0) == 0 && quietRounds >= 50)) {
                    if (sent < FRAMES) {
                        sent += guest.transmitNumbered(0, Math.min(32, FRAMES - sent));
                    }
                    if (sent >= nextSwitch && nextSwitch < FRAMES) {
                        NetBackend next = cycle.get((switches + 1) % cycle.size());
                        rig.device.switchBackend(next); // live, mid-stream
                        switches++;
                        order.add(label(next, vhostUser, kernel));
                        nextSwitch += PER_BACKEND;
                    }
                    guest.collectTx();
                    boolean progress = guest.collectRx() > 0;
                    progress |= drainTap(rig, viaTap);
                    if (!progress && sent >= FRAMES) {
                        quietRounds = guest.awaitCall(20, 0, 1) ? 0 : quietRounds + 1;
                    } else {
                        quietRounds = 0;
                    }
                    assertTrue(System.nanoTime() < deadline, guest.receivedCount(0) + " back from testpmd and "
                            + viaTap.cardinality() + " through the TAP of " + FRAMES + " after " + switches
                            + " switches (" + order + ")");
                }
                assertFalse(guest.needsReset(), () -> "NEEDS_RESET: " + rig.device.model().lastError());
                rig.device.stopDatapath();
                // Ring level: every chain the guest made available was used once (collectTx checks ids).
                guest.collectTx();
                assertEquals(0, guest.txInFlight(0), "transmit chains not used");
                guest.collectRx(); // what was used before the stop
                drainTap(rig, viaTap);
                BitSet all = (BitSet) viaTap.clone();
                for (long seq : guest.received(0)) {
                    assertTrue(!all.get((int) seq), "frame " + seq + " arrived twice (testpmd and TAP, or twice from testpmd)");
                    all.set((int) seq);
                }
                assertTrue(guest.receivedCount(0) > 0 && viaTap.cardinality() > 0, "both ways out carried frames");
                // SIGTERM: testpmd prints its final statistics.
                Testpmd.Counters counted = pmd.stop(Duration.ofSeconds(60));
                // What testpmd took from the transmit ring is what did not leave through the TAP; what
                // it gave back is what the guest received; the difference is what its forwarding
                // dropped (frames it held when the device switched away and disabled its receive ring).
                assertEquals(FRAMES - viaTap.cardinality(), counted.rxPackets(), "frames testpmd took from the transmit ring");
                assertEquals(guest.receivedCount(0), counted.txPackets(), "frames testpmd put into the receive ring");
                assertEquals(counted.rxPackets() - counted.txPackets(), counted.txDropped(), "testpmd's own TX-dropped");
                assertEquals(FRAMES, all.cardinality() + counted.txDropped(), "every frame once, or counted dropped by testpmd");
                assertEquals(6, switches);
                System.out.printf("three backends (%s): %d frames, %d switches %s in %d ms: %d back from testpmd "
                                + "(%d dropped by its forwarding), %d through the TAP, each once%n",
                        reverse ? "reverse" : "forward", FRAMES, switches, order,
                        (System.nanoTime() - began) / 1_000_000, counted.txPackets(), counted.txDropped(),
                        viaTap.cardinality());
            }
        }
        assertEquals(List.of(), OpenDescriptors.opened(before, OpenDescriptors.snapshot()), "descriptors left open");
        return order;
    }

    /** Takes every frame the TAP has from the guest into {@code viaTap}; true when there was one. */
    private static boolean drainTap(RuntimeRig rig, BitSet viaTap) throws Exception {
        boolean any = false;
        byte[] frame;
        while ((frame = rig.network.nextFromGuest(0)) != null) {
            int seq = (int) Frames.sequence(frame);
            assertTrue(seq >= 0 && seq < FRAMES, "sequence " + seq);
            assertTrue(!viaTap.get(seq), "frame " + seq + " left the TAP twice");
            viaTap.set(seq);
            any = true;
        }
        return any;
    }

    private static String label(NetBackend backend, NetBackend vhostUser, NetBackend kernel) {
        return backend == vhostUser ? "vhost-user" : backend == kernel ? "kernel" : "userspace";
    }
}

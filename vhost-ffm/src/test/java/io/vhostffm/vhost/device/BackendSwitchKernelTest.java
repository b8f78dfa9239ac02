package io.vhostffm.vhost.device;

import io.vhostffm.vhost.device.kernel.VhostNetBackend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.vhost.device.userspace.UserspaceNetBackend;
import java.lang.foreign.Arena;
import java.util.Arrays;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Live switches between the kernel's vhost-net and the userspace datapath on the same TAP, in the
 * middle of a 10,000-frame stream each way, both starting points: every frame arrives exactly
 * once, byte for byte, in order per queue / flow. Needs /dev/vhost-net (bin/kernel-bench runs it
 * in a VM); without it every test FAILS (opening vhost-net throws).
 */
@Tag("kernel")
class BackendSwitchKernelTest {
    private static final int FRAMES = 10_000;
    /** Milliseconds between switches: under the bench's TCG emulation a round of 32 frames takes tens of ms. */
    private static final int PERIOD_MS = 300;

    @Test
    void kernelToUserspaceToKernelMidStream() throws Exception {
        try (GuestNet guest = GuestNet.kernel(2); UserspaceNetBackend userspace = UserspaceNetBackend.open(guest.tap)) {
            guest.setQueuePairs(2);
            BackendSwitching.Result r = BackendSwitching.streamWhileSwitching(guest, userspace, FRAMES, PERIOD_MS, 2);
            assertEquals("kernel vhost-net", r.sequence().get(0));
            assertEquals(UserspaceNetBackend.NAME, r.sequence().get(1));
            assertEquals("kernel vhost-net", r.sequence().get(2));
            System.out.printf("kernel -> userspace -> kernel ...: %d live switches during %d frames each way "
                    + "(TX %.0f, RX %.0f frames/s), every frame exactly once%n", r.switches(), FRAMES,
                    r.txFramesPerSecond(), r.rxFramesPerSecond());
        }
    }

    @Test
    void userspaceToKernelToUserspaceMidStream() throws Exception {
        try (GuestNet guest = GuestNet.on(2, UserspaceNetBackend::open); VhostNetBackend kernel = VhostNetBackend.open(guest.tap);
             Arena arena = Arena.ofConfined()) {
            guest.setQueuePairs(2);
            // First the userspace datapath alone, for its frames/s next to the kernel's in this VM.
            long start = System.nanoTime();
            assertEquals(FRAMES, VhostNetBackendKernelTest.transmitAndCheck(guest, 0, FRAMES, arena.allocate(4096)));
            double tx = FRAMES / ((System.nanoTime() - start) / 1e9);
            guest.postAllRxBuffers();
            start = System.nanoTime();
            int[] perPair = VhostNetBackendKernelTest.receiveAndCheck(guest, 0, FRAMES, arena, null);
            double rx = FRAMES / ((System.nanoTime() - start) / 1e9);
            assertTrue(perPair[0] > 0 && perPair[1] > 0, Arrays.toString(perPair));
            System.out.printf("userspace datapath alone (2 pairs): TX %.0f frames/s, RX %.0f frames/s%n", tx, rx);

            // The stream starts again at sequence 0 (the checks are per stream), on rings that go on.
            BackendSwitching.Result r = BackendSwitching.streamWhileSwitching(guest, kernel, FRAMES, PERIOD_MS, 2);
            assertEquals(UserspaceNetBackend.NAME, r.sequence().get(0));
            assertEquals("kernel vhost-net", r.sequence().get(1));
            assertEquals(UserspaceNetBackend.NAME, r.sequence().get(2));
            System.out.printf("userspace -> kernel -> userspace ...: %d live switches during %d frames each way "
                    + "(TX %.0f, RX %.0f frames/s), every frame exactly once%n", r.switches(), FRAMES,
                    r.txFramesPerSecond(), r.rxFramesPerSecond());
            assertFalse(guest.needsReset());
        }
    }
}

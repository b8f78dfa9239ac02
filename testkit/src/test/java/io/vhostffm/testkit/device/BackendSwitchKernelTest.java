package io.vhostffm.testkit.device;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.vhost.device.kernel.VhostNetBackend;
import io.vhostffm.vhost.device.userspace.UserspaceNetBackend;
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
        try (RuntimeRig rig = RuntimeRig.kernel(2); UserspaceNetBackend userspace = UserspaceNetBackend.open(rig.tap)) {
            rig.setQueuePairs(2);
            BackendSwitching.Result r = BackendSwitching.streamWhileSwitching(rig, userspace, FRAMES, PERIOD_MS, 2);
            assertEquals("kernel vhost-net", r.sequence().get(0));
            assertEquals(UserspaceNetBackend.NAME, r.sequence().get(1));
            assertEquals("kernel vhost-net", r.sequence().get(2));
        }
    }

    @Test
    void userspaceToKernelToUserspaceMidStream() throws Exception {
        try (RuntimeRig rig = RuntimeRig.on(2, UserspaceNetBackend::open);
             VhostNetBackend kernel = VhostNetBackend.open(rig.tap)) {
            rig.setQueuePairs(2);
            // First the userspace datapath alone.
            assertEquals(FRAMES, DeviceTraffic.transmitAndCheck(rig, 0, FRAMES));
            rig.guest.postRxBuffers();
            int[] perPair = DeviceTraffic.receiveAndCheck(rig, 0, FRAMES, null);
            assertTrue(perPair[0] > 0 && perPair[1] > 0, Arrays.toString(perPair));

            // The stream starts again at sequence 0 (the checks are per stream), on rings that go on.
            BackendSwitching.Result r = BackendSwitching.streamWhileSwitching(rig, kernel, FRAMES, PERIOD_MS, 2);
            assertEquals(UserspaceNetBackend.NAME, r.sequence().get(0));
            assertEquals("kernel vhost-net", r.sequence().get(1));
            assertEquals(UserspaceNetBackend.NAME, r.sequence().get(2));
            assertFalse(rig.guest.needsReset());
        }
    }
}

package io.vhostffm.vhost.virtio.net;

import static io.vhostffm.vhost.virtio.net.NetTestSupport.ALL_CONTROL;
import static io.vhostffm.vhost.virtio.net.NetTestSupport.USERSPACE;
import static io.vhostffm.vhost.virtio.net.NetTestSupport.options;
import static io.vhostffm.vhost.virtio.net.NetTestSupport.running;
import static io.vhostffm.vhost.virtio.net.NetTestSupport.split;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import io.vhostffm.vhost.virtio.net.NetTestSupport.RecordingListener;

/**
 * Coverage-guided fuzzing of the control queue: up to four commands per input, each of any class,
 * command and length, split across up to four readable buffers, sent to a running device with
 * every control feature negotiated.
 *
 * <p>Invariants, checked after every command: the ack is OK or ERR; OK has no reason and ERR has
 * one that names what was wrong (never the catch-all for an unexpected exception); an ERR leaves
 * the device's state exactly as it was; the state reached is one that {@link
 * VirtioNetDevice#restore} accepts on a fresh device, and restores to an equal state.
 *
 * <p>Without {@code JAZZER_FUZZ=1} this runs the stored inputs under {@code ControlCommandFuzzTestInputs}.
 */
class ControlCommandFuzzTest {
    private static final String CATCH_ALL = "unexpected failure";

    @FuzzTest
    void controlCommands(FuzzedDataProvider data) throws Exception {
        VirtioNetDevice device = running(new RecordingListener());
        int commands = data.consumeInt(1, 4);
        for (int c = 0; c < commands && data.remainingBytes() > 0; c++) {
            int cutCount = data.consumeInt(0, 3);
            byte[] command = c == commands - 1 ? data.consumeRemainingAsBytes()
                    : data.consumeBytes(data.consumeInt(0, 512));
            int[] cuts = new int[cutCount];
            for (int i = 0; i < cutCount; i++) {
                cuts[i] = Math.floorMod(command.length == 0 ? 0 : (i * 7 + command.length / (i + 2)), command.length + 1);
            }
            java.util.Arrays.sort(cuts);
            NetDeviceState before = device.snapshot();
            ControlAck ack = device.handleControl(split(command, cuts));
            assertTrue(ack.ack() == VirtioNetCtrl.OK || ack.ack() == VirtioNetCtrl.ERR, ack::toString);
            assertEquals(ack.isOk(), ack.reason().isEmpty(), ack::toString);
            assertFalse(ack.reason().startsWith(CATCH_ALL), ack::toString);
            NetDeviceState after = device.snapshot();
            if (!ack.isOk()) {
                assertEquals(before, after, () -> "an ERR changed the state: " + ack);
            }
            VirtioNetDevice fresh = new VirtioNetDevice(options(ALL_CONTROL, 4), USERSPACE, new RecordingListener());
            fresh.restore(after);
            assertEquals(after, fresh.snapshot(), "restored state");
        }
    }
}

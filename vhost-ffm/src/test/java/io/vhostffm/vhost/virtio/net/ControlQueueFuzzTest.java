package io.vhostffm.vhost.virtio.net;

import static io.vhostffm.vhost.virtio.net.NetTestSupport.*;
import static org.junit.jupiter.api.Assertions.*;

import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Random and half-valid control commands, split across random buffers: the device never throws,
 * always answers OK or ERR, and whatever state it reaches is one that restore accepts (the
 * handler and the validator agree on what is valid).
 */
class ControlQueueFuzzTest {

    @Test
    void randomCommandsNeverEscapeAndLeaveARestorableState() throws Exception {
        Random random = new Random(0x5eed);
        VirtioNetDevice device = running(new RecordingListener());
        int ok = 0;
        for (int i = 0; i < 20_000; i++) {
            byte[] cmd = randomCommand(random);
            int[] cuts = random.ints(random.nextInt(4), 0, cmd.length + 1).sorted().toArray();
            ControlAck ack = device.handleControl(split(cmd, cuts));
            assertTrue(ack.ack() == VirtioNetCtrl.OK || ack.ack() == VirtioNetCtrl.ERR);
            assertEquals(ack.isOk(), ack.reason().isEmpty(), ack.reason());
            if (ack.isOk()) {
                ok++;
            }
            if (i % 500 == 0) {
                VirtioNetDevice fresh = new VirtioNetDevice(options(ALL_CONTROL, 4), USERSPACE, new RecordingListener());
                fresh.restore(device.snapshot());
                assertEquals(device.snapshot(), fresh.snapshot());
            }
        }
        assertTrue(ok > 1000, "enough commands were valid to move the state: " + ok);
        VirtioNetDevice fresh = new VirtioNetDevice(options(ALL_CONTROL, 4), USERSPACE, new RecordingListener());
        fresh.restore(device.snapshot());
    }

    /** A command whose class and command are mostly known, with a payload of plausible size and random bytes. */
    private static byte[] randomCommand(Random r) {
        int ctrlClass = r.nextInt(8);
        int command = r.nextInt(4);
        int length = switch (r.nextInt(4)) {
            case 0 -> r.nextInt(3);
            case 1 -> 1 + r.nextInt(8);
            case 2 -> 10 + r.nextInt(30);
            default -> 4 + 6 * r.nextInt(70) + 4 + 6 * r.nextInt(10); // MAC table sized
        };
        byte[] out = new byte[2 + length];
        r.nextBytes(out);
        out[0] = (byte) ctrlClass;
        out[1] = (byte) command;
        if (ctrlClass == VirtioNetCtrl.CLASS_MAC && command == VirtioNetCtrl.MAC_TABLE_SET && length >= 8
                && r.nextBoolean()) {
            // A well-formed table of random sizes, some overflowing.
            int uni = r.nextInt(70);
            int multi = r.nextInt(70);
            out = new byte[2 + 4 + uni * 6 + 4 + multi * 6];
            r.nextBytes(out);
            out[0] = (byte) ctrlClass;
            out[1] = (byte) command;
            putLe32(out, 2, uni);
            putLe32(out, 6 + uni * 6, multi);
        } else if (ctrlClass == VirtioNetCtrl.CLASS_MQ && length >= 2 && r.nextBoolean()) {
            out[2] = (byte) r.nextInt(6); // small numbers, often in range
            out[3] = 0;
        } else if (ctrlClass == VirtioNetCtrl.CLASS_VLAN && length >= 2) {
            out[3] &= 0x1f; // ids up to 8191, half valid
        }
        return out;
    }

    private static void putLe32(byte[] b, int at, int v) {
        b[at] = (byte) v;
        b[at + 1] = (byte) (v >> 8);
        b[at + 2] = (byte) (v >> 16);
        b[at + 3] = (byte) (v >> 24);
    }
}

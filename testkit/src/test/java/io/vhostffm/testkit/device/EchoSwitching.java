package io.vhostffm.testkit.device;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.testkit.Frames;
import io.vhostffm.testkit.Testpmd;
import io.vhostffm.vhost.device.NetBackend;
import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;

/**
 * A frame stream while the device switches live round a cycle of backends, one of them testpmd
 * (macswap) through the vhost-user frontend, the others on the rig's TAP: a frame the guest
 * transmits while on testpmd comes back MAC-swapped into its receive ring, one transmitted while
 * on a TAP backend leaves through the TAP, and one testpmd held when the device switched away is
 * in testpmd's own TX-dropped counter. Checks that every frame is counted exactly once in one of
 * the three, every transmit chain was used once, and testpmd's final counters agree with the
 * guest's and the TAP's; stops testpmd (SIGTERM) to read them.
 */
final class EchoSwitching {
    private EchoSwitching() {}

    /**
     * What a stream did.
     *
     * @param order the backends the device ran on, in turn (the first is where it started)
     * @param viaTap the sequence numbers that left through the TAP
     * @param counted testpmd's final counters
     */
    record Result(List<NetBackend> order, BitSet viaTap, Testpmd.Counters counted) {
        int switches() {
            return order.size() - 1;
        }
    }

    /**
     * Pair 0 transmits {@code frames} numbered frames from 0 (the rig's guest, its receive buffers
     * posted); after every {@code perBackend} the device switches to the cycle's next backend
     * ({@code cycle.get(0)} is the one it runs on now). Fails when the stream is not accounted for
     * within {@code streamDeadline} or a frame arrived twice.
     */
    static Result streamWhileSwitching(RuntimeRig rig, Testpmd pmd, List<NetBackend> cycle, int frames, int perBackend,
            Duration streamDeadline, Duration testpmdStop) throws Exception {
        FakeGuest guest = rig.guest;
        List<NetBackend> order = new ArrayList<>(List.of(rig.device.backend()));
        BitSet viaTap = new BitSet();
        int sent = 0;
        int nextSwitch = perBackend;
        long deadline = System.nanoTime() + streamDeadline.toNanos();
        int quietRounds = 0;
        // Until every frame is accounted for, or every transmit chain was used and nothing
        // arrived for 50 rounds of 20 ms (what testpmd dropped never comes).
        while (guest.receivedCount(0) + viaTap.cardinality() < frames
                && !(sent >= frames && guest.txInFlight(0) == 0 && quietRounds >= 50)) {
            if (sent < frames) {
                sent += guest.transmitNumbered(0, Math.min(32, frames - sent));
            }
            if (sent >= nextSwitch && nextSwitch < frames) {
                NetBackend next = cycle.get(order.size() % cycle.size());
                rig.device.switchBackend(next); // live, mid-stream
                order.add(next);
                nextSwitch += perBackend;
            }
            guest.collectTx();
            boolean progress = guest.collectRx() > 0;
            progress |= drainTap(rig, viaTap, frames);
            if (!progress && sent >= frames) {
                quietRounds = guest.awaitCall(20, 0, 1) ? 0 : quietRounds + 1;
            } else {
                quietRounds = 0;
            }
            assertTrue(System.nanoTime() < deadline, guest.receivedCount(0) + " back from testpmd and "
                    + viaTap.cardinality() + " through the TAP of " + frames + " after " + (order.size() - 1)
                    + " switches");
        }
        assertFalse(guest.needsReset(), () -> "NEEDS_RESET: " + rig.device.model().lastError());
        rig.device.stopDatapath();
        // Ring level: every chain the guest made available was used once (collectTx checks ids).
        guest.collectTx();
        assertEquals(0, guest.txInFlight(0), "transmit chains not used");
        guest.collectRx(); // what was used before the stop
        drainTap(rig, viaTap, frames);
        BitSet all = (BitSet) viaTap.clone();
        for (long seq : guest.received(0)) {
            assertFalse(all.get((int) seq), "frame " + seq + " arrived twice (testpmd and TAP, or twice from testpmd)");
            all.set((int) seq);
        }
        assertTrue(guest.receivedCount(0) > 0 && viaTap.cardinality() > 0, "both ways out carried frames");
        // SIGTERM: testpmd prints its final statistics.
        Testpmd.Counters counted = pmd.stop(testpmdStop);
        // What testpmd took from the transmit ring is what did not leave through the TAP; what it
        // gave back is what the guest received; the difference is what its own forwarding dropped
        // (frames it held when the device switched away and disabled its receive ring).
        assertEquals(frames - viaTap.cardinality(), counted.rxPackets(), "frames testpmd took from the transmit ring");
        assertEquals(guest.receivedCount(0), counted.txPackets(), "frames testpmd put into the receive ring");
        assertEquals(counted.rxPackets() - counted.txPackets(), counted.txDropped(), "testpmd's own TX-dropped");
        assertEquals(frames, all.cardinality() + counted.txDropped(), "every frame once, or counted dropped by testpmd");
        return new Result(List.copyOf(order), viaTap, counted);
    }

    /** Takes every frame the TAP has from the guest into {@code viaTap}; true when there was one. */
    private static boolean drainTap(RuntimeRig rig, BitSet viaTap, int frames) throws Exception {
        boolean any = false;
        byte[] frame;
        while ((frame = rig.network.nextFromGuest(0)) != null) {
            int seq = (int) Frames.sequence(frame);
            assertTrue(seq >= 0 && seq < frames, "sequence " + seq);
            assertFalse(viaTap.get(seq), "frame " + seq + " left the TAP twice");
            viaTap.set(seq);
            any = true;
        }
        return any;
    }
}

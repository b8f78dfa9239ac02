package io.vhostffm.testkit.device.userspace;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.testkit.Frames;
import io.vhostffm.testkit.TapBackPressure;
import io.vhostffm.testkit.TxShape;
import io.vhostffm.vhost.device.userspace.QueuePairConfig;
import io.vhostffm.vhost.device.userspace.UserspaceDatapath;
import io.vhostffm.vhost.device.userspace.UserspaceDatapath.TransmitIo;
import io.vhostffm.vring.QueueState;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The transmit path's order and hold rules, for each way it hands writevs to the kernel (one
 * writev per chain; a round's chains as linked writevs through an io_uring): a TAP that runs out
 * of room mid-batch holds that chain and every later one, and each frame still leaves once, in
 * order; a frame the TAP refuses mid-batch is completed and counted, the ones after it follow in
 * order; a stop while chains are held gives back exactly those, and a datapath started from the
 * states sends each of them once (needs root, {@code ip} and {@code tc}).
 */
class UserspaceTransmitOrderTest {
    /** A few frames' worth: the TAP is full after a handful of writes. */
    private static final int SEND_BUFFER = 16_384;

    private static UserspaceDatapath start(DatapathRig rig, List<QueuePairConfig> configs, TransmitIo io)
            throws Exception {
        UserspaceDatapath.Settings settings = new UserspaceDatapath.Settings(rig.device::rxFilter,
                (queue, reason) -> rig.device.reportBadGuestInput(reason), () -> null, UserspaceDatapath.DEVICE_QUEUES,
                rig.device.options().mtu(), true, 1, io);
        return UserspaceDatapath.start(rig.memory, configs, settings);
    }

    /** Header and frame of a stream no check here counts: what the test itself writes into the TAP. */
    private static byte[] foreignWrite() {
        byte[] frame = Frames.frame(Frames.BROADCAST, FakeGuest.MAC, 99, 0, 1514, -1);
        byte[] written = new byte[FakeGuest.HEADER + frame.length];
        System.arraycopy(frame, 0, written, FakeGuest.HEADER, frame.length);
        return written;
    }

    @ParameterizedTest
    @EnumSource(TransmitIo.class)
    void aTapFullMidBatchHoldsTheRestAndEveryFrameLeavesOnceInOrder(TransmitIo io) throws Exception {
        int frames = 600;
        try (DatapathRig rig = new DatapathRig(1, true);
                TapBackPressure hold = TapBackPressure.apply(rig.tap, SEND_BUFFER, 20_000)) {
            assertTrue(TapBackPressure.writeUntilFull(rig.tap.queue(0), foreignWrite(), 1000) >= 0,
                    "the TAP refuses writes once its send buffer is full");
            UserspaceDatapath backend = start(rig, rig.configs(), io);
            try {
                // A window far above what the TAP holds: the datapath meets a full TAP again and again.
                rig.transmitAndCheck(new int[] {0}, 0, frames, UserspaceDatapathTest.lengths(new Random(11), frames), 200);
                assertEquals(frames, backend.stats().txFrames());
                assertEquals(0, backend.stats().txErrors());
            } finally {
                backend.stop();
            }
        }
    }

    @ParameterizedTest
    @EnumSource(TransmitIo.class)
    void aFrameTheTapRefusesMidBatchIsCountedAndTheRestFollowInOrder(TransmitIo io) throws Exception {
        try (DatapathRig rig = new DatapathRig(1, true)) {
            // All in the ring before the datapath starts: its first round takes them as one batch.
            for (int seq = 0; seq < 20; seq++) {
                if (seq == 10) {
                    // Shorter than an Ethernet header: the TAP fails its write with EINVAL.
                    assertTrue(rig.guest.transmit(0, new byte[10], TxShape.SINGLE) >= 0);
                }
                assertTrue(rig.guest.transmit(0, Frames.frame(Frames.BROADCAST, FakeGuest.MAC, 0, seq, 100 + seq, -1),
                        TxShape.cycle(seq)) >= 0);
            }
            UserspaceDatapath backend = start(rig, rig.configs(), io);
            try {
                for (int seq = 0; seq < 20; seq++) {
                    byte[] f = nextOfStream(rig, 0);
                    assertEquals(seq, Frames.sequence(f), "frame " + seq + " in order, once");
                    assertEquals(100 + seq, f.length);
                    assertNull(Frames.damage(f));
                }
                rig.drainTx(0);
                assertEquals(20, backend.stats().txFrames());
                assertEquals(1, backend.stats().txErrors(), "the refused frame, completed and counted");
            } finally {
                backend.stop();
            }
        }
    }

    @ParameterizedTest
    @EnumSource(TransmitIo.class)
    void aStopWhileTheTapIsFullGivesBackTheHeldChainsAndTheNextDatapathSendsThemOnce(TransmitIo io)
            throws Exception {
        int frames = 60;
        try (DatapathRig rig = new DatapathRig(1, true)) {
            List<QueuePairConfig> configs = rig.configs();
            List<QueueState> states;
            UserspaceDatapath first;
            int seen = 0;
            // 1514-byte frames let go at 2 Mbit/s: 6 ms each, so most are still in the ring at the stop.
            try (TapBackPressure hold = TapBackPressure.apply(rig.tap, SEND_BUFFER, 2_000)) {
                for (int seq = 0; seq < frames; seq++) {
                    assertTrue(rig.guest.transmit(0, Frames.frame(Frames.BROADCAST, FakeGuest.MAC, 0, seq, 1514, -1),
                            TxShape.cycle(seq)) >= 0);
                }
                first = start(rig, configs, io);
                try {
                    rig.guest.kickIfNeeded(1);
                    for (; seen < 3; seen++) {
                        assertEquals(seen, Frames.sequence(nextOfStream(rig, 0)), "in order, once");
                    }
                } finally {
                    states = first.stop();
                }
                assertTrue(first.stats().txFrames() < frames, "stopped with chains held: " + first.stats());
            }
            UserspaceDatapath second = start(rig, List.of(configs.get(0).withStates(states.get(0), states.get(1))), io);
            try {
                rig.guest.kickIfNeeded(1);
                for (; seen < frames; seen++) {
                    assertEquals(seen, Frames.sequence(nextOfStream(rig, 0)), "frame " + seen + " in order, once");
                }
                // A chain given back that had been sent would have come again before these (out
                // of order); one held and not given back would be missing: both fail above.
                rig.drainTx(0);
                assertEquals(frames - first.stats().txFrames(), second.stats().txFrames());
            } finally {
                second.stop();
            }
        }
    }

    /** The next frame of {@code stream} the network side sees (others skipped), waiting for it. */
    private static byte[] nextOfStream(DatapathRig rig, int stream) throws Exception {
        long deadline = System.nanoTime() + DatapathRig.TIMEOUT_MILLIS * 1_000_000L;
        while (System.nanoTime() < deadline) {
            byte[] f = rig.network.nextFromGuest(100);
            if (f != null && Frames.isNumbered(f) && Frames.stream(f) == stream) {
                return f;
            }
        }
        assertNotNull(null, "no frame of stream " + stream + " within " + DatapathRig.TIMEOUT_MILLIS + " ms");
        return null;
    }
}

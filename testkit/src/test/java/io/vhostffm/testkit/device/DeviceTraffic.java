package io.vhostffm.testkit.device;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.testkit.Frames;
import io.vhostffm.testkit.RxFrame;
import io.vhostffm.testkit.TxShape;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Streams of numbered frames through a {@link RuntimeRig}'s device, in rounds, each frame checked
 * on arrival: exactly once, byte for byte, in order per queue (transmit) or per flow (receive),
 * with a plain virtio-net header and {@code num_buffers} equal to the buffers it spans.
 */
final class DeviceTraffic {
    /** Frames per round. */
    static final int BATCH = 32;
    /** How long a round may take, even in the bench's emulated VM. */
    static final int ROUND_TIMEOUT_MILLIS = 20_000;
    /** Flows of the received frames (the TAP spreads them over the queues by their hash). */
    static final int FLOWS = 16;

    private DeviceTraffic() {}

    /** A step run once, after the first round is made available and before it is checked. */
    interface MidStream {
        void run() throws Exception;
    }

    /** Frame {@code seq} the guest transmits on pair {@code pair} (stream = pair). */
    static byte[] txFrame(int pair, long seq) {
        return Frames.frame(Frames.BROADCAST, FakeGuest.MAC, pair, seq, Frames.variedLength(seq), -1);
    }

    /** Frame {@code seq} the network sends into the guest, of flow {@code seq % FLOWS} (stream = flow). */
    static byte[] rxFrame(long seq) {
        int flow = (int) (seq % FLOWS);
        return Frames.frame(FakeGuest.MAC, Frames.NETWORK_MAC, flow, seq, Frames.variedLength(seq), flow);
    }

    static int transmitAndCheck(RuntimeRig rig, int first, int count) throws Exception {
        return transmitAndCheck(rig, first, count, null);
    }

    /**
     * Sends frames {@code first .. first+count-1} alternately on every pair in rounds of
     * {@value #BATCH}, every transmit chain shape in turn; checks each arrives on the network
     * side and that the guest gets every chain back with used length 0.
     *
     * @return frames that arrived
     */
    static int transmitAndCheck(RuntimeRig rig, int first, int count, MidStream midStream) throws Exception {
        FakeGuest guest = rig.guest;
        int pairs = guest.pairs();
        long[] lastSeqPerPair = new long[pairs];
        Arrays.fill(lastSeqPerPair, -1);
        boolean[] seen = new boolean[first + count];
        int received = 0;
        for (int roundStart = first; roundStart < first + count; roundStart += BATCH) {
            int roundEnd = Math.min(first + count, roundStart + BATCH);
            for (int seq = roundStart; seq < roundEnd; seq++) {
                int pair = seq % pairs;
                int id = guest.transmit(pair, txFrame(pair, seq), TxShape.cycle(seq));
                assertTrue(id >= 0, "tx ring of pair " + pair + " has room");
            }
            for (int p = 0; p < pairs; p++) {
                guest.kickIfNeeded(2 * p + 1);
            }
            if (midStream != null && roundStart == first) {
                midStream.run();
            }
            for (int k = roundStart; k < roundEnd; k++) {
                byte[] frame = rig.network.nextFromGuest(ROUND_TIMEOUT_MILLIS);
                if (frame == null) {
                    throw new AssertionError("frame missing on the network side in round " + roundStart + "; status "
                            + guest.status() + ", last error " + rig.device.model().lastError() + "; "
                            + rig.network.observerDrops());
                }
                int pair = Frames.stream(frame);
                long seq = Frames.sequence(frame);
                assertTrue(pair >= 0 && pair < pairs, "a numbered frame of stream " + pair);
                assertTrue(seq >= roundStart && seq < roundEnd, "frame " + seq + " outside round " + roundStart);
                assertFalse(seen[(int) seq], "frame " + seq + " arrived twice");
                seen[(int) seq] = true;
                assertTrue(seq > lastSeqPerPair[pair], "pair " + pair + ": frame " + seq + " after " + lastSeqPerPair[pair]);
                lastSeqPerPair[pair] = seq;
                assertEquals(Frames.variedLength(seq), frame.length, "frame " + seq + " length");
                assertNull(Frames.damage(frame));
                assertEquals(seq % pairs, pair, "frame " + seq + " on its pair");
                received++;
            }
            int outstanding = roundEnd - roundStart;
            long deadline = System.nanoTime() + ROUND_TIMEOUT_MILLIS * 1_000_000L;
            while (outstanding > 0) {
                outstanding -= guest.collectTx(); // checks each used length is 0
                if (outstanding > 0) {
                    assertTrue(System.nanoTime() < deadline, outstanding + " tx chains not returned");
                    guest.awaitCall(20, guest.txQueues());
                }
            }
            assertEquals(0, outstanding);
        }
        return received;
    }

    static int[] receiveAndCheck(RuntimeRig rig, int first, int count, List<RxFrame> all) throws Exception {
        return receiveAndCheck(rig, first, count, all, null);
    }

    /**
     * Sends frames {@code first .. first+count-1} into the TAP in rounds; checks each arrives
     * exactly once, byte for byte, in order per flow, with a plain virtio_net_hdr_v1 and
     * {@code num_buffers} = the buffers it spans. Adds every frame received to {@code all} when
     * not null.
     *
     * @return frames per pair
     */
    static int[] receiveAndCheck(RuntimeRig rig, int first, int count, List<RxFrame> all, MidStream midStream)
            throws Exception {
        FakeGuest guest = rig.guest;
        long[] lastSeqPerFlow = new long[FLOWS];
        Arrays.fill(lastSeqPerFlow, -1);
        boolean[] seen = new boolean[first + count];
        int[] perPair = new int[guest.pairs()];
        List<RxFrame> frames = new ArrayList<>();
        for (int roundStart = first; roundStart < first + count; roundStart += BATCH) {
            int roundEnd = Math.min(first + count, roundStart + BATCH);
            for (int seq = roundStart; seq < roundEnd; seq++) {
                rig.network.send(rxFrame(seq));
            }
            if (midStream != null && roundStart == first) {
                midStream.run();
            }
            int ours = 0;
            long deadline = System.nanoTime() + ROUND_TIMEOUT_MILLIS * 1_000_000L;
            while (ours < roundEnd - roundStart) {
                frames.clear();
                guest.receive(frames);
                for (RxFrame r : frames) {
                    if (all != null) {
                        all.add(r);
                    }
                    if (!Frames.isNumbered(r.frame())) {
                        continue; // host chatter
                    }
                    long seq = Frames.sequence(r.frame());
                    int flow = Frames.stream(r.frame());
                    assertTrue(seq >= roundStart && seq < roundEnd, "frame " + seq + " outside round " + roundStart);
                    assertFalse(seen[(int) seq], "frame " + seq + " arrived twice");
                    seen[(int) seq] = true;
                    assertEquals(seq % FLOWS, flow, "frame " + seq + " flow");
                    assertTrue(seq > lastSeqPerFlow[flow], "flow " + flow + ": frame " + seq + " after " + lastSeqPerFlow[flow]);
                    lastSeqPerFlow[flow] = seq;
                    assertEquals(Frames.variedLength(seq), r.frame().length, "frame " + seq + " length");
                    assertNull(Frames.damage(r.frame()));
                    checkHeader(r, seq);
                    perPair[r.pair()]++;
                    ours++;
                }
                if (ours < roundEnd - roundStart) {
                    if (System.nanoTime() > deadline) {
                        throw new AssertionError("rx round " + roundStart + ": " + (roundEnd - roundStart - ours)
                                + " frames missing; status " + guest.status() + ", last error "
                                + rig.device.model().lastError());
                    }
                    guest.awaitCall(20, guest.rxQueues());
                }
            }
        }
        return perPair;
    }

    /** virtio_net_hdr_v1: no offload asked, so no flags but DATA_VALID, GSO_NONE, num_buffers = buffers used. */
    static void checkHeader(RxFrame r, long seq) {
        byte[] h = r.header();
        assertEquals(0, h[0] & ~2, "frame " + seq + ": flags " + h[0]);
        assertEquals(0, h[1], "frame " + seq + ": gso_type");
        for (int i = 2; i < 10; i++) {
            assertEquals(0, h[i], "frame " + seq + ": header byte " + i);
        }
        int expected = (FakeGuest.HEADER + r.frame().length + RuntimeRig.RX_BUFFER - 1) / RuntimeRig.RX_BUFFER;
        assertEquals(expected, r.numBuffers(), "frame " + seq + ": num_buffers");
        assertEquals(expected, r.buffers().size());
    }
}

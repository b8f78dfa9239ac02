package io.vhostffm.testkit;

import io.vhostffm.vring.DriverState;
import java.util.ArrayList;
import java.util.List;

/**
 * What a {@link FakeGuest} keeps outside guest memory, as plain data: the driver side of every
 * virtqueue, which guest buffer each chain in flight uses, and its own traffic record. A
 * hypervisor carries it as it carries vCPU state; the rings and buffers travel with guest memory.
 *
 * @param queues the driver state of every virtqueue, data queues in order, then the control queue
 * @param rxSlots per pair, the receive buffer slots
 * @param txSlots per pair, the transmit buffer slots
 * @param nextTxSeq per pair, the sequence number of the next numbered frame to transmit
 * @param received per stream, the numbered frames received so far
 * @param foreignFrames frames received that were not numbered ones
 * @param rxBufferBytes the device-writable bytes of each receive chain
 * @param rxChainShape the receive chain shape, by {@link RxChainShape#ordinal()}
 */
public record FakeGuestState(List<DriverState> queues, List<Slots> rxSlots, List<Slots> txSlots, long[] nextTxSeq,
        List<Stream> received, long foreignFrames, int rxBufferBytes, int rxChainShape) {

    /**
     * A state of the shape a guest on {@code layout} carries: every queue's driver state as set
     * up (split, EVENT_IDX), every slot free, one run of frames received per pair. Its values
     * mean nothing; its shape (how many queues, slots per queue, runs per stream) is a real
     * guest's, so encoding and decoding it runs the code a real one does: a process that will
     * receive a guest's state rehearses with it (the demo's destination, before the pause).
     */
    public static FakeGuestState shapedLike(GuestLayout layout) {
        List<DriverState> queues = new ArrayList<>();
        for (int q = 0; q < layout.queueCount(); q++) {
            int size = layout.queueSize(q);
            queues.add(new DriverState(size, layout.descAddress(q), layout.driverAreaAddress(q),
                    layout.deviceAreaAddress(q), true, false, 0, true, 0, true, 0, size, 0, true, new int[0]));
        }
        int size = layout.spec().queueSize();
        List<Slots> rx = new ArrayList<>();
        List<Slots> tx = new ArrayList<>();
        List<Stream> received = new ArrayList<>();
        for (int p = 0; p < layout.pairs(); p++) {
            rx.add(new FakeGuest.Slots(size).save()); // every slot free, as a guest sets them up
            tx.add(new FakeGuest.Slots(size).save());
            received.add(new Stream(new long[] {0}, new int[] {1}, new int[] {p}));
        }
        return new FakeGuestState(queues, rx, tx, new long[layout.pairs()], received, 0,
                layout.spec().rxBufferSize(), 0);
    }

    /**
     * One queue's buffer slots.
     *
     * @param ofId per chain id, the slot it uses (times 2, plus 1 when its buffer is split), or -1
     * @param free the free slots, the next to use last
     */
    public record Slots(int[] ofId, int[] free) {}

    /**
     * One stream's numbered frames as they arrived, run-length encoded: a run is consecutive
     * sequence numbers that arrived one after the other on one queue pair. Traffic that arrives
     * exactly once and in order on each pair is one run per pair, however long the guest ran, so
     * the state a hypervisor carries at each migration (as it carries vCPU state) stays small; a
     * duplicate, a gap or a reordering starts a new run, so nothing the checks look at is lost.
     *
     * @param runFirst per run, its first sequence number
     * @param runLength per run, how many frames (at least 1)
     * @param runPair per run, the queue pair its frames arrived on
     */
    public record Stream(long[] runFirst, int[] runLength, int[] runPair) {

        /** The record of {@code seqs} in arrival order, {@code arrivedOn} the pair of each. */
        public static Stream of(long[] seqs, int[] arrivedOn) {
            if (seqs.length != arrivedOn.length) {
                throw new IllegalArgumentException(seqs.length + " sequence numbers but " + arrivedOn.length + " pairs");
            }
            int runs = 0;
            for (int i = 0; i < seqs.length; i++) {
                if (startsRun(seqs, arrivedOn, i)) {
                    runs++;
                }
            }
            long[] first = new long[runs];
            int[] length = new int[runs];
            int[] pair = new int[runs];
            int r = -1;
            for (int i = 0; i < seqs.length; i++) {
                if (startsRun(seqs, arrivedOn, i)) {
                    r++;
                    first[r] = seqs[i];
                    pair[r] = arrivedOn[i];
                }
                length[r]++;
            }
            return new Stream(first, length, pair);
        }

        private static boolean startsRun(long[] seqs, int[] arrivedOn, int i) {
            return i == 0 || seqs[i] != seqs[i - 1] + 1 || arrivedOn[i] != arrivedOn[i - 1];
        }

        /** Frames received. */
        public int count() {
            long n = 0;
            for (int length : runLength) {
                n += length;
            }
            return Math.toIntExact(n);
        }

        /** The sequence numbers in arrival order. */
        public long[] seqs() {
            long[] seqs = new long[count()];
            int i = 0;
            for (int r = 0; r < runFirst.length; r++) {
                for (int k = 0; k < runLength[r]; k++) {
                    seqs[i++] = runFirst[r] + k;
                }
            }
            return seqs;
        }

        /** For each of {@link #seqs()}, the queue pair it arrived on. */
        public int[] arrivedOn() {
            int[] on = new int[count()];
            int i = 0;
            for (int r = 0; r < runPair.length; r++) {
                for (int k = 0; k < runLength[r]; k++) {
                    on[i++] = runPair[r];
                }
            }
            return on;
        }
    }
}

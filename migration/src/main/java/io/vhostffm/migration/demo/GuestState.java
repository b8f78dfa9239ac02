package io.vhostffm.migration.demo;

import io.vhostffm.vring.DriverState;
import java.util.List;

/**
 * What a {@link FakeGuest} keeps outside guest memory, as plain data: the driver side of every
 * virtqueue and its own traffic counters. A hypervisor carries it as it carries vCPU state; the
 * rings themselves travel with guest memory.
 *
 * @param queues the driver state of every virtqueue, data queues in order, then the control queue
 * @param nextTxSeq per pair, the sequence number of the next frame to transmit
 * @param received per pair's stream, the sequence numbers received so far, in arrival order, and
 *     the rx queue (pair) that delivered each
 */
public record GuestState(List<DriverState> queues, long[] nextTxSeq, List<Received> received) {

    /**
     * One stream's frames received, in arrival order.
     *
     * @param seqs their sequence numbers
     * @param rxPairs for each, the pair whose rx queue delivered it (same length as {@code seqs})
     */
    public record Received(long[] seqs, int[] rxPairs) {}
}

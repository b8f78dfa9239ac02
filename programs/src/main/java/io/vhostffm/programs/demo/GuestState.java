package io.vhostffm.programs.demo;

import io.vhostffm.vring.DriverState;
import java.util.List;

/**
 * What a {@link FakeGuest} keeps outside guest memory, as plain data: the driver side of every
 * virtqueue and its own traffic counters. A hypervisor carries it as it carries vCPU state; the
 * rings themselves travel with guest memory.
 *
 * @param queues the driver state of every virtqueue, data queues in order, then the control queue
 * @param nextTxSeq per pair, the sequence number of the next frame to transmit
 * @param received per pair, the sequence numbers received so far, in arrival order
 */
public record GuestState(List<DriverState> queues, long[] nextTxSeq, List<Received> received) {

    /**
     * The sequence numbers one pair's stream delivered, in arrival order, and the queue pair each
     * arrived on (the TAP keeps order per queue only).
     */
    public record Received(long[] seqs, int[] arrivedOn) {}
}

package io.vhostffm.testkit;

import io.vhostffm.vring.DriverState;
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
     * One queue's buffer slots.
     *
     * @param ofId per chain id, the slot it uses (times 2, plus 1 when its buffer is split), or -1
     * @param free the free slots, the next to use last
     */
    public record Slots(int[] ofId, int[] free) {}

    /**
     * One stream's numbered frames as they arrived.
     *
     * @param seqs sequence numbers in arrival order
     * @param arrivedOn for each, the queue pair it arrived on
     */
    public record Stream(long[] seqs, int[] arrivedOn) {}
}

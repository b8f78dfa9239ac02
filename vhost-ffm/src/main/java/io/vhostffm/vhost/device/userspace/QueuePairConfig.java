package io.vhostffm.vhost.device.userspace;

import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.FileDescriptor;
import io.vhostffm.vring.QueueState;
import java.util.Objects;

/**
 * What the userspace datapath needs to serve one virtio-net queue pair: the receive queue
 * (virtqueue {@code 2 * pair}) and the transmit queue ({@code 2 * pair + 1}) as vring states,
 * their kick and call eventfds, and the TAP queue descriptor they move frames through. The
 * descriptors stay owned by the caller: the datapath holds them open while it runs and never
 * closes them.
 *
 * @param pair     the queue pair's index: its TAP queue and virtqueues {@code 2 * pair}, {@code 2 * pair + 1}
 * @param rx       receive queue state (the guest's posted receive buffers)
 * @param tx       transmit queue state
 * @param rxKick   the guest's available-buffer notification of the receive queue
 * @param rxCall   the used-buffer notification of the receive queue (to the guest)
 * @param txKick   the guest's available-buffer notification of the transmit queue
 * @param txCall   the used-buffer notification of the transmit queue
 * @param tapQueue the TAP queue descriptor (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, vnet header
 *                 size 12); set non-blocking by the datapath
 */
public record QueuePairConfig(int pair, QueueState rx, QueueState tx, EventFd rxKick, EventFd rxCall, EventFd txKick,
        EventFd txCall, FileDescriptor tapQueue) {
    public QueuePairConfig {
        if (pair < 0 || pair >= 0x8000) {
            throw new IllegalArgumentException("queue pair index out of range: " + pair);
        }
        Objects.requireNonNull(rx, "rx");
        Objects.requireNonNull(tx, "tx");
        Objects.requireNonNull(rxKick, "rxKick");
        Objects.requireNonNull(rxCall, "rxCall");
        Objects.requireNonNull(txKick, "txKick");
        Objects.requireNonNull(txCall, "txCall");
        Objects.requireNonNull(tapQueue, "tapQueue");
    }

    /** The same resources with other queue states (e.g. those a stopped backend reported). */
    public QueuePairConfig withStates(QueueState newRx, QueueState newTx) {
        return new QueuePairConfig(pair, newRx, newTx, rxKick, rxCall, txKick, txCall, tapQueue);
    }
}

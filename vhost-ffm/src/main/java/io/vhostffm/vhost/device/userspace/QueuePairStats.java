package io.vhostffm.vhost.device.userspace;

/**
 * Counters of one queue pair of the userspace datapath, as a snapshot.
 *
 * @param txFrames   frames written to the TAP
 * @param txBytes    their bytes, without the virtio-net header
 * @param txErrors   transmit chains the TAP refused (e.g. EINVAL for a bad GSO header): completed
 *                   to the guest and dropped, as the kernel's vhost-net does
 * @param rxFrames   frames delivered into the guest's receive buffers
 * @param rxBytes    their bytes, without the virtio-net header
 * @param rxFiltered frames the receive filter (rx mode, MAC table, VLAN table) dropped
 * @param rxDropped  frames lost: larger than every buffer the queue could gather, or half placed
 *                   when the datapath stopped while the guest had no buffers for the rest
 */
public record QueuePairStats(long txFrames, long txBytes, long txErrors, long rxFrames, long rxBytes,
        long rxFiltered, long rxDropped) {

    QueuePairStats plus(QueuePairStats o) {
        return new QueuePairStats(txFrames + o.txFrames, txBytes + o.txBytes, txErrors + o.txErrors,
                rxFrames + o.rxFrames, rxBytes + o.rxBytes, rxFiltered + o.rxFiltered, rxDropped + o.rxDropped);
    }
}

package io.vhostffm.vhost.virtio.net;

/**
 * The virtio-net header that precedes every frame in a virtqueue buffer (virtio 1.x 5.1.6): with
 * VERSION_1 or MRG_RXBUF it is {@code struct virtio_net_hdr_mrg_rxbuf}, 12 bytes ({@code flags,
 * gso_type, hdr_len, gso_size, csum_start, csum_offset, num_buffers}). The TAP device is told the
 * same size ({@code TUNSETVNETHDRSZ}), so it reads and writes the header the guest sees.
 */
public final class VirtioNetHeader {
    /** Bytes of the header: {@code sizeof(struct virtio_net_hdr_mrg_rxbuf)}. */
    public static final int SIZE = 12;

    private VirtioNetHeader() {
    }
}

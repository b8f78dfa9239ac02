package io.vhostffm.vhost.virtio.net;

import java.util.Arrays;
import java.util.HexFormat;
import java.util.Objects;

/**
 * Receive-side scaling and hash reporting, as set by VIRTIO_NET_CTRL_MQ_RSS_CONFIG and
 * VIRTIO_NET_CTRL_MQ_HASH_CONFIG (virtio 1.3, 5.1.6.5.7 and 5.1.6.5.6.4), in QEMU's terms.
 *
 * <p>A plain carrier for migration: the constructor checks only for null; {@link
 * VirtioNetDevice#restore} checks the values.
 *
 * @param enabled whether the device computes a hash for received packets
 * @param redirect whether the hash picks the receive queue (RSS_CONFIG); false after HASH_CONFIG
 * @param populateHash whether the hash goes into the virtio-net header (VIRTIO_NET_F_HASH_REPORT
 *     negotiated)
 * @param hashTypes the {@code VIRTIO_NET_HASH_TYPE_*} bits to hash on
 * @param key the hash key, at most {@code rss_max_key_size} bytes
 * @param indirectionTable receive queue (pair) indices, a power-of-two count of them; each a u16
 *     held in a long; empty when redirect is off
 * @param defaultQueue the queue for packets no hash type matches ({@code unclassified_queue})
 */
public record RssState(boolean enabled, boolean redirect, boolean populateHash, int hashTypes, byte[] key,
        long[] indirectionTable, int defaultQueue) implements ContentComparable {

    /** VIRTIO_NET_HASH_TYPE_IPv4. */
    public static final int HASH_TYPE_IPV4 = 1 << 0;
    /** VIRTIO_NET_HASH_TYPE_TCPv4. */
    public static final int HASH_TYPE_TCPV4 = 1 << 1;
    /** VIRTIO_NET_HASH_TYPE_UDPv4. */
    public static final int HASH_TYPE_UDPV4 = 1 << 2;
    /** VIRTIO_NET_HASH_TYPE_IPv6. */
    public static final int HASH_TYPE_IPV6 = 1 << 3;
    /** VIRTIO_NET_HASH_TYPE_TCPv6. */
    public static final int HASH_TYPE_TCPV6 = 1 << 4;
    /** VIRTIO_NET_HASH_TYPE_UDPv6. */
    public static final int HASH_TYPE_UDPV6 = 1 << 5;
    /** VIRTIO_NET_HASH_TYPE_IP_EX. */
    public static final int HASH_TYPE_IP_EX = 1 << 6;
    /** VIRTIO_NET_HASH_TYPE_TCP_EX. */
    public static final int HASH_TYPE_TCP_EX = 1 << 7;
    /** VIRTIO_NET_HASH_TYPE_UDP_EX. */
    public static final int HASH_TYPE_UDP_EX = 1 << 8;
    /** Every hash type the spec defines. */
    public static final int ALL_HASH_TYPES = 0x1ff;

    public RssState {
        key = Objects.requireNonNull(key, "key").clone();
        indirectionTable = Objects.requireNonNull(indirectionTable, "indirectionTable").clone();
    }

    /** RSS and hashing off; {@code populateHash} follows the negotiated HASH_REPORT. */
    public static RssState disabled(boolean populateHash) {
        return new RssState(false, false, populateHash, 0, new byte[0], new long[0], 0);
    }

    @Override
    public byte[] key() {
        return key.clone();
    }

    @Override
    public long[] indirectionTable() {
        return indirectionTable.clone();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof RssState r && enabled == r.enabled && redirect == r.redirect
                && populateHash == r.populateHash && hashTypes == r.hashTypes && Arrays.equals(key, r.key)
                && Arrays.equals(indirectionTable, r.indirectionTable) && defaultQueue == r.defaultQueue;
    }

    @Override
    public int hashCode() {
        return Objects.hash(enabled, redirect, populateHash, hashTypes, Arrays.hashCode(key),
                Arrays.hashCode(indirectionTable), defaultQueue);
    }

    @Override
    public String toString() {
        return "RssState[enabled=" + enabled + ", redirect=" + redirect + ", populateHash=" + populateHash
                + ", hashTypes=0x" + Integer.toHexString(hashTypes) + ", key=" + HexFormat.of().formatHex(key)
                + ", indirectionTable=" + Arrays.toString(indirectionTable) + ", defaultQueue=" + defaultQueue + "]";
    }
}

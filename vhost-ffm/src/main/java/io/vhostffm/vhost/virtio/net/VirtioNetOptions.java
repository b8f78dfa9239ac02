package io.vhostffm.vhost.virtio.net;

import io.vhostffm.vhost.virtio.VirtioFeature;

import java.util.Arrays;
import java.util.HexFormat;
import java.util.Objects;

/**
 * How a virtio-net device is configured by its host: the features asked for and the static
 * config-space values (virtio 1.3, 5.1.4). Checked against the spec's device requirements when
 * built; see {@link #builder(byte[])}.
 *
 * @param mac the device's MAC address, 6 bytes (config {@code mac}; restored on every reset)
 * @param requestedFeatures the features to offer if the backend supports them
 * @param maxQueuePairs {@code max_virtqueue_pairs}, 1..0x8000
 * @param mtu {@code mtu}, 68..65535
 * @param speedMbps {@code speed} in Mbit/s, or -1 for unknown
 * @param duplex {@code duplex}: 0 half, 1 full, 0xff unknown
 * @param rssMaxKeySize {@code rss_max_key_size}, at least 40 when RSS or HASH_REPORT is asked for
 * @param rssMaxIndirectionTableLength {@code rss_max_indirection_table_length}, at least 128 when
 *     RSS is asked for, a power of two, at most 0x8000
 * @param supportedHashTypes {@code supported_hash_types}, bits of {@link RssState#ALL_HASH_TYPES}
 */
public record VirtioNetOptions(byte[] mac, long requestedFeatures, int maxQueuePairs, int mtu, int speedMbps,
        int duplex, int rssMaxKeySize, int rssMaxIndirectionTableLength, int supportedHashTypes) {

    /** The largest {@code max_virtqueue_pairs} the spec allows (VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX). */
    public static final int VQ_PAIRS_MAX = 0x8000;

    /** @throws IllegalArgumentException naming the first value out of its spec range */
    public VirtioNetOptions {
        Objects.requireNonNull(mac, "mac");
        if (mac.length != 6) {
            throw new IllegalArgumentException("mac must be 6 bytes, is " + mac.length);
        }
        mac = mac.clone();
        check(maxQueuePairs >= 1 && maxQueuePairs <= VQ_PAIRS_MAX, "maxQueuePairs", maxQueuePairs, "1..0x8000");
        check(mtu >= 68 && mtu <= 65535, "mtu", mtu, "68..65535");
        check(speedMbps >= -1, "speedMbps", speedMbps, "-1 (unknown) or a speed in Mbit/s");
        check(duplex == 0 || duplex == 1 || duplex == 0xff, "duplex", duplex, "0, 1 or 0xff");
        boolean rss = VirtioFeature.RSS.in(requestedFeatures);
        boolean hash = VirtioFeature.HASH_REPORT.in(requestedFeatures);
        check(rssMaxKeySize >= 0 && rssMaxKeySize <= 255 && (rssMaxKeySize >= 40 || !(rss || hash)),
                "rssMaxKeySize", rssMaxKeySize, "40..255 with RSS or HASH_REPORT, 0..255 otherwise");
        check(rssMaxIndirectionTableLength >= 1 && rssMaxIndirectionTableLength <= 0x8000
                        && Integer.bitCount(rssMaxIndirectionTableLength) == 1
                        && (rssMaxIndirectionTableLength >= 128 || !rss),
                "rssMaxIndirectionTableLength", rssMaxIndirectionTableLength,
                "a power of two, 128..0x8000 with RSS, 1..0x8000 otherwise");
        check((supportedHashTypes & ~RssState.ALL_HASH_TYPES) == 0, "supportedHashTypes", supportedHashTypes,
                "bits of 0x1ff");
    }

    private static void check(boolean ok, String field, long value, String range) {
        if (!ok) {
            throw new IllegalArgumentException(field + " = " + value + " is outside " + range);
        }
    }

    @Override
    public byte[] mac() {
        return mac.clone();
    }

    /** A builder with QEMU-like defaults: one queue pair, MTU 1500, speed and duplex unknown, 40/128 RSS limits. */
    public static Builder builder(byte[] mac) {
        return new Builder(mac);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof VirtioNetOptions v && Arrays.equals(mac, v.mac) && requestedFeatures == v.requestedFeatures
                && maxQueuePairs == v.maxQueuePairs && mtu == v.mtu && speedMbps == v.speedMbps && duplex == v.duplex
                && rssMaxKeySize == v.rssMaxKeySize && rssMaxIndirectionTableLength == v.rssMaxIndirectionTableLength
                && supportedHashTypes == v.supportedHashTypes;
    }

    @Override
    public int hashCode() {
        return Objects.hash(Arrays.hashCode(mac), requestedFeatures, maxQueuePairs, mtu, speedMbps, duplex,
                rssMaxKeySize, rssMaxIndirectionTableLength, supportedHashTypes);
    }

    @Override
    public String toString() {
        return "VirtioNetOptions[mac=" + HexFormat.ofDelimiter(":").formatHex(mac) + ", requestedFeatures="
                + VirtioFeature.describe(requestedFeatures) + ", maxQueuePairs=" + maxQueuePairs + ", mtu=" + mtu
                + ", speedMbps=" + speedMbps + ", duplex=" + duplex + ", rssMaxKeySize=" + rssMaxKeySize
                + ", rssMaxIndirectionTableLength=" + rssMaxIndirectionTableLength + ", supportedHashTypes=0x"
                + Integer.toHexString(supportedHashTypes) + "]";
    }

    /** Builds {@link VirtioNetOptions}; every value starts at a spec-valid default. */
    public static final class Builder {
        private final byte[] mac;
        private long requestedFeatures = VirtioFeature.VERSION_1.mask();
        private int maxQueuePairs = 1;
        private int mtu = 1500;
        private int speedMbps = -1;
        private int duplex = 0xff;
        private int rssMaxKeySize = 40;
        private int rssMaxIndirectionTableLength = 128;
        private int supportedHashTypes = RssState.ALL_HASH_TYPES;

        private Builder(byte[] mac) {
            this.mac = mac.clone();
        }

        /** The features to ask for; VERSION_1 is always added. */
        public Builder features(VirtioFeature... features) {
            this.requestedFeatures = VirtioFeature.maskOf(features) | VirtioFeature.VERSION_1.mask();
            return this;
        }

        /** The features to ask for, as a bit mask, taken as is. */
        public Builder featureBits(long features) {
            this.requestedFeatures = features;
            return this;
        }

        public Builder maxQueuePairs(int pairs) {
            this.maxQueuePairs = pairs;
            return this;
        }

        public Builder mtu(int mtu) {
            this.mtu = mtu;
            return this;
        }

        public Builder speed(int speedMbps, int duplex) {
            this.speedMbps = speedMbps;
            this.duplex = duplex;
            return this;
        }

        public Builder rssLimits(int maxKeySize, int maxIndirectionTableLength, int supportedHashTypes) {
            this.rssMaxKeySize = maxKeySize;
            this.rssMaxIndirectionTableLength = maxIndirectionTableLength;
            this.supportedHashTypes = supportedHashTypes;
            return this;
        }

        public VirtioNetOptions build() {
            return new VirtioNetOptions(mac, requestedFeatures, maxQueuePairs, mtu, speedMbps, duplex, rssMaxKeySize,
                    rssMaxIndirectionTableLength, supportedHashTypes);
        }
    }
}

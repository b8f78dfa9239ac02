package io.vhostffm.vhost;

import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;

/**
 * Feature bits a virtio-net device and vhost-net negotiate (VHOST_GET_FEATURES /
 * VHOST_SET_FEATURES), by bit number as in the virtio spec and the kernel headers: the transport
 * bits ({@code VIRTIO_F_*}, {@code VIRTIO_RING_F_*}), vhost's {@code VHOST_F_LOG_ALL}, and the
 * virtio-net device bits ({@code VIRTIO_NET_F_*}). Bit 27 is named ANY_LAYOUT here; vhost-net
 * calls the same bit VHOST_NET_F_VIRTIO_NET_HDR. The ABI test checks every bit against
 * {@link #cName()}'s value in the headers.
 */
public enum VirtioFeature {
    CSUM(0, "VIRTIO_NET_F_CSUM"),
    GUEST_CSUM(1, "VIRTIO_NET_F_GUEST_CSUM"),
    CTRL_GUEST_OFFLOADS(2, "VIRTIO_NET_F_CTRL_GUEST_OFFLOADS"),
    MTU(3, "VIRTIO_NET_F_MTU"),
    MAC(5, "VIRTIO_NET_F_MAC"),
    GSO(6, "VIRTIO_NET_F_GSO"),
    GUEST_TSO4(7, "VIRTIO_NET_F_GUEST_TSO4"),
    GUEST_TSO6(8, "VIRTIO_NET_F_GUEST_TSO6"),
    GUEST_ECN(9, "VIRTIO_NET_F_GUEST_ECN"),
    GUEST_UFO(10, "VIRTIO_NET_F_GUEST_UFO"),
    HOST_TSO4(11, "VIRTIO_NET_F_HOST_TSO4"),
    HOST_TSO6(12, "VIRTIO_NET_F_HOST_TSO6"),
    HOST_ECN(13, "VIRTIO_NET_F_HOST_ECN"),
    HOST_UFO(14, "VIRTIO_NET_F_HOST_UFO"),
    MRG_RXBUF(15, "VIRTIO_NET_F_MRG_RXBUF"),
    STATUS(16, "VIRTIO_NET_F_STATUS"),
    CTRL_VQ(17, "VIRTIO_NET_F_CTRL_VQ"),
    CTRL_RX(18, "VIRTIO_NET_F_CTRL_RX"),
    CTRL_VLAN(19, "VIRTIO_NET_F_CTRL_VLAN"),
    CTRL_RX_EXTRA(20, "VIRTIO_NET_F_CTRL_RX_EXTRA"),
    GUEST_ANNOUNCE(21, "VIRTIO_NET_F_GUEST_ANNOUNCE"),
    MQ(22, "VIRTIO_NET_F_MQ"),
    CTRL_MAC_ADDR(23, "VIRTIO_NET_F_CTRL_MAC_ADDR"),
    NOTIFY_ON_EMPTY(24, "VIRTIO_F_NOTIFY_ON_EMPTY"),
    LOG_ALL(26, "VHOST_F_LOG_ALL"),
    ANY_LAYOUT(27, "VIRTIO_F_ANY_LAYOUT"),
    INDIRECT_DESC(28, "VIRTIO_RING_F_INDIRECT_DESC"),
    EVENT_IDX(29, "VIRTIO_RING_F_EVENT_IDX"),
    VERSION_1(32, "VIRTIO_F_VERSION_1"),
    ACCESS_PLATFORM(33, "VIRTIO_F_ACCESS_PLATFORM"),
    RING_PACKED(34, "VIRTIO_F_RING_PACKED"),
    IN_ORDER(35, "VIRTIO_F_IN_ORDER"),
    ORDER_PLATFORM(36, "VIRTIO_F_ORDER_PLATFORM"),
    SR_IOV(37, "VIRTIO_F_SR_IOV"),
    RING_RESET(40, "VIRTIO_F_RING_RESET"),
    NOTF_COAL(53, "VIRTIO_NET_F_NOTF_COAL"),
    HASH_REPORT(57, "VIRTIO_NET_F_HASH_REPORT"),
    RSS(60, "VIRTIO_NET_F_RSS"),
    RSC_EXT(61, "VIRTIO_NET_F_RSC_EXT"),
    STANDBY(62, "VIRTIO_NET_F_STANDBY"),
    SPEED_DUPLEX(63, "VIRTIO_NET_F_SPEED_DUPLEX");

    private final int bit;
    private final String cName;

    VirtioFeature(int bit, String cName) {
        this.bit = bit;
        this.cName = cName;
    }

    /** The bit number. */
    public int bit() {
        return bit;
    }

    /** The mask, {@code 1L << bit}. */
    public long mask() {
        return 1L << bit;
    }

    /** The kernel header macro that holds the bit number, e.g. {@code VIRTIO_F_VERSION_1}. */
    public String cName() {
        return cName;
    }

    /** Whether the bit is set in {@code features}. */
    public boolean in(long features) {
        return (features & mask()) != 0;
    }

    /** The named features set in {@code features}. */
    public static Set<VirtioFeature> decode(long features) {
        EnumSet<VirtioFeature> set = EnumSet.noneOf(VirtioFeature.class);
        for (VirtioFeature f : values()) {
            if (f.in(features)) {
                set.add(f);
            }
        }
        return set;
    }

    /** The mask of a set of features. */
    public static long encode(Set<VirtioFeature> features) {
        long mask = 0;
        for (VirtioFeature f : features) {
            mask |= f.mask();
        }
        return mask;
    }

    /** Names of the set bits in bit order, unknown ones as {@code bit N}. */
    public static List<String> names(long features) {
        List<String> names = new ArrayList<>();
        for (int bit = 0; bit < 64; bit++) {
            if ((features & (1L << bit)) != 0) {
                VirtioFeature f = byBit(bit);
                names.add(f != null ? f.name() : "bit " + bit);
            }
        }
        return names;
    }

    /** {@code 0x... (NAME, NAME, ...)}. */
    public static String describe(long features) {
        return "0x" + Long.toHexString(features) + " (" + String.join(", ", names(features)) + ")";
    }

    /** The feature at a bit number, or null. */
    public static VirtioFeature byBit(int bit) {
        for (VirtioFeature f : values()) {
            if (f.bit == bit) {
                return f;
            }
        }
        return null;
    }
}

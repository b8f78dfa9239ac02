package io.vhostffm.vhost.net;

import java.util.ArrayList;
import java.util.List;

/**
 * The feature bits a virtio-net device can offer: the network device's own bits (virtio 1.3,
 * section 5.1.3) and the reserved transport bits (section 6). Each constant carries its bit
 * number and its name as the spec and {@code <linux/virtio_net.h>} / {@code <linux/virtio_config.h>}
 * spell it, so a log line says {@code VIRTIO_F_RING_PACKED (34)} instead of {@code 0x400000000}.
 */
public enum VirtioNetFeature {
    CSUM(0, "VIRTIO_NET_F_CSUM"),
    GUEST_CSUM(1, "VIRTIO_NET_F_GUEST_CSUM"),
    CTRL_GUEST_OFFLOADS(2, "VIRTIO_NET_F_CTRL_GUEST_OFFLOADS"),
    MTU(3, "VIRTIO_NET_F_MTU"),
    MAC(5, "VIRTIO_NET_F_MAC"),
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

    /** Transport: legacy notification even with interrupts suppressed. */
    NOTIFY_ON_EMPTY(24, "VIRTIO_F_NOTIFY_ON_EMPTY"),
    /** Transport: legacy, no assumption about how the header and data split across descriptors. */
    ANY_LAYOUT(27, "VIRTIO_F_ANY_LAYOUT"),
    /** Transport: indirect descriptor tables. */
    INDIRECT_DESC(28, "VIRTIO_RING_F_INDIRECT_DESC"),
    /** Transport: used_event / avail_event notification suppression. */
    EVENT_IDX(29, "VIRTIO_RING_F_EVENT_IDX"),
    /** Transport: a virtio 1.x (non-legacy) device. */
    VERSION_1(32, "VIRTIO_F_VERSION_1"),
    /** Transport: the device accesses memory through the platform's IOMMU. */
    ACCESS_PLATFORM(33, "VIRTIO_F_ACCESS_PLATFORM"),
    /** Transport: packed virtqueues. Kernel vhost-net has none. */
    RING_PACKED(34, "VIRTIO_F_RING_PACKED"),
    /** Transport: buffers are used in the order they were made available. */
    IN_ORDER(35, "VIRTIO_F_IN_ORDER"),
    /** Transport: memory accesses ordered as the platform orders them. */
    ORDER_PLATFORM(36, "VIRTIO_F_ORDER_PLATFORM"),
    /** Transport: single root I/O virtualization. */
    SR_IOV(37, "VIRTIO_F_SR_IOV"),
    /** Transport: the driver passes extra data in its notifications. */
    NOTIFICATION_DATA(38, "VIRTIO_F_NOTIFICATION_DATA"),
    /** Transport: the driver uses the config data the device supplies for notifications. */
    NOTIF_CONFIG_DATA(39, "VIRTIO_F_NOTIF_CONFIG_DATA"),
    /** Transport: individual virtqueues can be reset. */
    RING_RESET(40, "VIRTIO_F_RING_RESET"),

    VQ_NOTF_COAL(52, "VIRTIO_NET_F_VQ_NOTF_COAL"),
    NOTF_COAL(53, "VIRTIO_NET_F_NOTF_COAL"),
    GUEST_USO4(54, "VIRTIO_NET_F_GUEST_USO4"),
    GUEST_USO6(55, "VIRTIO_NET_F_GUEST_USO6"),
    HOST_USO(56, "VIRTIO_NET_F_HOST_USO"),
    HASH_REPORT(57, "VIRTIO_NET_F_HASH_REPORT"),
    GUEST_HDRLEN(59, "VIRTIO_NET_F_GUEST_HDRLEN"),
    RSS(60, "VIRTIO_NET_F_RSS"),
    RSC_EXT(61, "VIRTIO_NET_F_RSC_EXT"),
    STANDBY(62, "VIRTIO_NET_F_STANDBY"),
    SPEED_DUPLEX(63, "VIRTIO_NET_F_SPEED_DUPLEX");

    private static final VirtioNetFeature[] BY_BIT = new VirtioNetFeature[64];
    private static final long KNOWN;

    static {
        long known = 0;
        for (VirtioNetFeature f : values()) {
            BY_BIT[f.bit] = f;
            known |= f.mask();
        }
        KNOWN = known;
    }

    private final int bit;
    private final String specName;

    VirtioNetFeature(int bit, String specName) {
        this.bit = bit;
        this.specName = specName;
    }

    /** The bit number in the 64-bit feature word. */
    public int bit() {
        return bit;
    }

    /** {@code 1L << bit()}. */
    public long mask() {
        return 1L << bit;
    }

    /** The name as the spec and the kernel headers spell it, e.g. {@code VIRTIO_NET_F_MQ}. */
    public String specName() {
        return specName;
    }

    /** Whether this is a transport bit (24..40) rather than one of the network device's own. */
    public boolean isTransport() {
        return bit >= 24 && bit <= 40;
    }

    /** Whether {@code features} has this bit set. */
    public boolean in(long features) {
        return (features & mask()) != 0;
    }

    /** The feature at a bit number, or null when this enum does not name that bit. */
    public static VirtioNetFeature forBit(int bit) {
        return bit >= 0 && bit < 64 ? BY_BIT[bit] : null;
    }

    /** Every bit this enum names. */
    public static long knownMask() {
        return KNOWN;
    }

    /** The OR of the given features' masks. */
    public static long maskOf(VirtioNetFeature... features) {
        long mask = 0;
        for (VirtioNetFeature f : features) {
            mask |= f.mask();
        }
        return mask;
    }

    /**
     * A feature word in words, lowest bit first, e.g. {@code VIRTIO_NET_F_MAC(5)|VIRTIO_F_VERSION_1(32)};
     * a bit without a name shows as {@code bit 41}. Zero shows as {@code none}.
     */
    public static String describe(long features) {
        if (features == 0) {
            return "none";
        }
        List<String> names = new ArrayList<>();
        for (int bit = 0; bit < 64; bit++) {
            if ((features & (1L << bit)) != 0) {
                VirtioNetFeature f = BY_BIT[bit];
                names.add(f != null ? f.specName + "(" + bit + ")" : "bit " + bit);
            }
        }
        return String.join("|", names);
    }
}

package io.vhostffm.vhost.virtio;

import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;

/**
 * The feature bits a virtio-net device and vhost-net negotiate (VHOST_GET_FEATURES /
 * VHOST_SET_FEATURES, and the device model's offer to the guest): the network device's own bits
 * (virtio 1.3, section 5.1.3), the reserved transport bits (section 6), the legacy
 * {@code VIRTIO_NET_F_GSO} and vhost's own {@code VHOST_F_LOG_ALL}. Each constant carries its bit
 * number and its name as the spec and {@code <linux/virtio_net.h>} / {@code <linux/virtio_config.h>}
 * / {@code <linux/vhost.h>} spell it, so a log line says {@code VIRTIO_F_RING_PACKED(34)} instead of
 * {@code 0x400000000}. Bit 27 is named ANY_LAYOUT here; vhost-net calls the same bit
 * VHOST_NET_F_VIRTIO_NET_HDR. The ABI test checks every bit against {@link #specName()}'s value in
 * the system headers (or, for the few bits older headers lack, against the spec number).
 */
public enum VirtioFeature {
    CSUM(0, "VIRTIO_NET_F_CSUM"),
    GUEST_CSUM(1, "VIRTIO_NET_F_GUEST_CSUM"),
    CTRL_GUEST_OFFLOADS(2, "VIRTIO_NET_F_CTRL_GUEST_OFFLOADS"),
    MTU(3, "VIRTIO_NET_F_MTU"),
    MAC(5, "VIRTIO_NET_F_MAC"),
    /** Legacy: the device handles any GSO type. Never offered by the device model. */
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

    /** Transport: legacy notification even with interrupts suppressed. */
    NOTIFY_ON_EMPTY(24, "VIRTIO_F_NOTIFY_ON_EMPTY"),
    /**
     * vhost's own: log every write to guest memory (dirty logging for migration). It is not a
     * virtio bit and is never offered to a guest.
     */
    LOG_ALL(26, "VHOST_F_LOG_ALL"),
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

    private static final VirtioFeature[] BY_BIT = new VirtioFeature[64];
    private static final long KNOWN;

    static {
        long known = 0;
        for (VirtioFeature f : values()) {
            BY_BIT[f.bit] = f;
            if (f.isDeviceFeature()) {
                known |= f.mask();
            }
        }
        KNOWN = known;
    }

    private final int bit;
    private final String specName;

    VirtioFeature(int bit, String specName) {
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
        return bit >= 24 && bit <= 40 && this != LOG_ALL;
    }

    /**
     * Whether a virtio-net device model may offer this bit to a guest: every bit except vhost's
     * own {@link #LOG_ALL} and the legacy {@link #GSO}.
     */
    public boolean isDeviceFeature() {
        return this != LOG_ALL && this != GSO;
    }

    /** Whether {@code features} has this bit set. */
    public boolean in(long features) {
        return (features & mask()) != 0;
    }

    /** The feature at a bit number, or null when this enum does not name that bit. */
    public static VirtioFeature forBit(int bit) {
        return bit >= 0 && bit < 64 ? BY_BIT[bit] : null;
    }

    /**
     * Every bit a virtio-net device model may offer a guest ({@link #isDeviceFeature()}): every
     * bit this enum names except {@link #LOG_ALL} and {@link #GSO}.
     */
    public static long knownMask() {
        return KNOWN;
    }

    /** The OR of the given features' masks. */
    public static long maskOf(VirtioFeature... features) {
        long mask = 0;
        for (VirtioFeature f : features) {
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
                VirtioFeature f = BY_BIT[bit];
                names.add(f != null ? f.specName + "(" + bit + ")" : "bit " + bit);
            }
        }
        return String.join("|", names);
    }

    /** The enum names of the set bits in bit order, unnamed ones as {@code bit N}. */
    public static List<String> names(long features) {
        List<String> names = new ArrayList<>();
        for (int bit = 0; bit < 64; bit++) {
            if ((features & (1L << bit)) != 0) {
                VirtioFeature f = BY_BIT[bit];
                names.add(f != null ? f.name() : "bit " + bit);
            }
        }
        return names;
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
}

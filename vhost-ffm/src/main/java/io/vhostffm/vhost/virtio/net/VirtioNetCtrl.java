package io.vhostffm.vhost.virtio.net;

/**
 * The control queue's classes, commands and ack values (virtio 1.3, 5.1.6.5), named as in
 * {@code <linux/virtio_net.h>}. A command is {@code u8 class; u8 command; command-specific data}
 * in device-readable buffers, then {@code u8 ack} in a device-writable one.
 */
public final class VirtioNetCtrl {
    /** VIRTIO_NET_OK. */
    public static final int OK = 0;
    /** VIRTIO_NET_ERR. */
    public static final int ERR = 1;

    /** VIRTIO_NET_CTRL_RX. Data: {@code u8 on}. */
    public static final int CLASS_RX = 0;
    public static final int RX_PROMISC = 0;
    public static final int RX_ALLMULTI = 1;
    public static final int RX_ALLUNI = 2;
    public static final int RX_NOMULTI = 3;
    public static final int RX_NOUNI = 4;
    public static final int RX_NOBCAST = 5;

    /** VIRTIO_NET_CTRL_MAC. */
    public static final int CLASS_MAC = 1;
    /** Data: {@code le32 entries; u8 macs[entries][6]} for unicast, then the same for multicast. */
    public static final int MAC_TABLE_SET = 0;
    /** Data: {@code u8 mac[6]}. */
    public static final int MAC_ADDR_SET = 1;

    /** VIRTIO_NET_CTRL_VLAN. Data: {@code le16 id}. */
    public static final int CLASS_VLAN = 2;
    public static final int VLAN_ADD = 0;
    public static final int VLAN_DEL = 1;

    /** VIRTIO_NET_CTRL_ANNOUNCE. No data. */
    public static final int CLASS_ANNOUNCE = 3;
    public static final int ANNOUNCE_ACK = 0;

    /** VIRTIO_NET_CTRL_MQ. */
    public static final int CLASS_MQ = 4;
    /** Data: {@code le16 virtqueue_pairs}. */
    public static final int MQ_VQ_PAIRS_SET = 0;
    /** Data: {@code struct virtio_net_rss_config}. */
    public static final int MQ_RSS_CONFIG = 1;
    /** Data: {@code struct virtio_net_hash_config}. */
    public static final int MQ_HASH_CONFIG = 2;
    /** VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN. */
    public static final int MQ_VQ_PAIRS_MIN = 1;
    /** VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX. */
    public static final int MQ_VQ_PAIRS_MAX = 0x8000;

    /** VIRTIO_NET_CTRL_GUEST_OFFLOADS. Data: {@code le64 offloads}. */
    public static final int CLASS_GUEST_OFFLOADS = 5;
    public static final int GUEST_OFFLOADS_SET = 0;

    private static final String[][] NAMES = {
        {"VIRTIO_NET_CTRL_RX_PROMISC", "VIRTIO_NET_CTRL_RX_ALLMULTI", "VIRTIO_NET_CTRL_RX_ALLUNI",
            "VIRTIO_NET_CTRL_RX_NOMULTI", "VIRTIO_NET_CTRL_RX_NOUNI", "VIRTIO_NET_CTRL_RX_NOBCAST"},
        {"VIRTIO_NET_CTRL_MAC_TABLE_SET", "VIRTIO_NET_CTRL_MAC_ADDR_SET"},
        {"VIRTIO_NET_CTRL_VLAN_ADD", "VIRTIO_NET_CTRL_VLAN_DEL"},
        {"VIRTIO_NET_CTRL_ANNOUNCE_ACK"},
        {"VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET", "VIRTIO_NET_CTRL_MQ_RSS_CONFIG", "VIRTIO_NET_CTRL_MQ_HASH_CONFIG"},
        {"VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET"},
    };

    private VirtioNetCtrl() {}

    /** The command's name, e.g. {@code VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET}, or {@code class 9 command 3}. */
    public static String name(int ctrlClass, int command) {
        if (ctrlClass >= 0 && ctrlClass < NAMES.length && command >= 0 && command < NAMES[ctrlClass].length) {
            return NAMES[ctrlClass][command];
        }
        return "class " + ctrlClass + " command " + command;
    }
}

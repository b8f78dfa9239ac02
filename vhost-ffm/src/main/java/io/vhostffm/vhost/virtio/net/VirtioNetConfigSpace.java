package io.vhostffm.vhost.virtio.net;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemoryLayout.PathElement;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.util.Objects;
import java.util.Arrays;

/**
 * The virtio-net device configuration space, {@code struct virtio_net_config} (virtio 1.3, 5.1.4),
 * as a {@link MemoryLayout}, and the encoding of the device's values into its 24 little-endian
 * bytes.
 *
 * <pre>
 *  0 u8   mac[6]
 *  6 le16 status                             VIRTIO_NET_S_LINK_UP 1, VIRTIO_NET_S_ANNOUNCE 2
 *  8 le16 max_virtqueue_pairs
 * 10 le16 mtu
 * 12 le32 speed
 * 16 u8   duplex
 * 17 u8   rss_max_key_size
 * 18 le16 rss_max_indirection_table_length
 * 20 le32 supported_hash_types
 * </pre>
 *
 * <p>The layout uses unaligned value layouts so that it can sit over a heap {@code byte[]}; the
 * struct has no padding, so the offsets are the spec's.
 */
public final class VirtioNetConfigSpace {
    /** {@code VIRTIO_NET_S_LINK_UP}: the link is up. */
    public static final int S_LINK_UP = 1;
    /** {@code VIRTIO_NET_S_ANNOUNCE}: the driver should announce itself (gratuitous ARP etc.). */
    public static final int S_ANNOUNCE = 2;

    private static final ValueLayout.OfShort LE16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt LE32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** {@code struct virtio_net_config}. */
    public static final StructLayout LAYOUT = MemoryLayout.structLayout(
            MemoryLayout.sequenceLayout(6, ValueLayout.JAVA_BYTE).withName("mac"),
            LE16.withName("status"),
            LE16.withName("max_virtqueue_pairs"),
            LE16.withName("mtu"),
            LE32.withName("speed"),
            ValueLayout.JAVA_BYTE.withName("duplex"),
            ValueLayout.JAVA_BYTE.withName("rss_max_key_size"),
            LE16.withName("rss_max_indirection_table_length"),
            LE32.withName("supported_hash_types"))
            .withName("virtio_net_config");

    /** The size of the config space in bytes (24). */
    public static final int SIZE = (int) LAYOUT.byteSize();

    /** Offset of {@code mac}. */
    public static final long MAC_OFFSET = LAYOUT.byteOffset(PathElement.groupElement("mac"));

    private static final VarHandle STATUS = handle("status");
    private static final VarHandle MAX_VIRTQUEUE_PAIRS = handle("max_virtqueue_pairs");
    private static final VarHandle MTU = handle("mtu");
    private static final VarHandle SPEED = handle("speed");
    private static final VarHandle DUPLEX = handle("duplex");
    private static final VarHandle RSS_MAX_KEY_SIZE = handle("rss_max_key_size");
    private static final VarHandle RSS_MAX_INDIRECTION_TABLE_LENGTH = handle("rss_max_indirection_table_length");
    private static final VarHandle SUPPORTED_HASH_TYPES = handle("supported_hash_types");

    private static VarHandle handle(String name) {
        return LAYOUT.varHandle(PathElement.groupElement(name));
    }

    /** The fields of a config space, decoded; unsigned values widened to int. */
    public record Fields(byte[] mac, int status, int maxVirtqueuePairs, int mtu, int speed, int duplex,
            int rssMaxKeySize, int rssMaxIndirectionTableLength, int supportedHashTypes) {
        public Fields {
            mac = mac.clone();
        }

        @Override
        public byte[] mac() {
            return mac.clone();
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Fields f && Arrays.equals(mac, f.mac) && status == f.status
                    && maxVirtqueuePairs == f.maxVirtqueuePairs && mtu == f.mtu && speed == f.speed
                    && duplex == f.duplex && rssMaxKeySize == f.rssMaxKeySize
                    && rssMaxIndirectionTableLength == f.rssMaxIndirectionTableLength
                    && supportedHashTypes == f.supportedHashTypes;
        }

        @Override
        public int hashCode() {
            return Objects.hash(Arrays.hashCode(mac), status, maxVirtqueuePairs, mtu, speed, duplex,
                    rssMaxKeySize, rssMaxIndirectionTableLength, supportedHashTypes);
        }
    }

    private VirtioNetConfigSpace() {}

    /** The config space bytes for a device with these options, current MAC and current net status. */
    public static byte[] encode(VirtioNetOptions options, byte[] mac, int netStatus) {
        if (mac.length != 6) {
            throw new IllegalArgumentException("mac must be 6 bytes, is " + mac.length);
        }
        byte[] bytes = new byte[SIZE];
        MemorySegment s = MemorySegment.ofArray(bytes);
        MemorySegment.copy(mac, 0, s, ValueLayout.JAVA_BYTE, MAC_OFFSET, 6);
        STATUS.set(s, 0L, (short) netStatus);
        MAX_VIRTQUEUE_PAIRS.set(s, 0L, (short) options.maxQueuePairs());
        MTU.set(s, 0L, (short) options.mtu());
        SPEED.set(s, 0L, options.speedMbps());
        DUPLEX.set(s, 0L, (byte) options.duplex());
        RSS_MAX_KEY_SIZE.set(s, 0L, (byte) options.rssMaxKeySize());
        RSS_MAX_INDIRECTION_TABLE_LENGTH.set(s, 0L, (short) options.rssMaxIndirectionTableLength());
        SUPPORTED_HASH_TYPES.set(s, 0L, options.supportedHashTypes());
        return bytes;
    }

    /**
     * The fields of a config space.
     *
     * @throws IllegalArgumentException when {@code bytes} is not {@link #SIZE} long
     */
    public static Fields decode(byte[] bytes) {
        if (bytes.length != SIZE) {
            throw new IllegalArgumentException("virtio_net_config is " + SIZE + " bytes, got " + bytes.length);
        }
        MemorySegment s = MemorySegment.ofArray(bytes);
        byte[] mac = s.asSlice(MAC_OFFSET, 6).toArray(ValueLayout.JAVA_BYTE);
        return new Fields(mac,
                Short.toUnsignedInt((short) STATUS.get(s, 0L)),
                Short.toUnsignedInt((short) MAX_VIRTQUEUE_PAIRS.get(s, 0L)),
                Short.toUnsignedInt((short) MTU.get(s, 0L)),
                (int) SPEED.get(s, 0L),
                Byte.toUnsignedInt((byte) DUPLEX.get(s, 0L)),
                Byte.toUnsignedInt((byte) RSS_MAX_KEY_SIZE.get(s, 0L)),
                Short.toUnsignedInt((short) RSS_MAX_INDIRECTION_TABLE_LENGTH.get(s, 0L)),
                (int) SUPPORTED_HASH_TYPES.get(s, 0L));
    }

    /**
     * A driver's read of {@code length} bytes at {@code offset}.
     *
     * @throws IndexOutOfBoundsException naming the offset and length when the range is not inside
     *     the config space ({@link #SIZE} bytes)
     */
    public static byte[] read(byte[] config, int offset, int length) {
        if (offset < 0 || length < 0 || offset > config.length - length) {
            throw new IndexOutOfBoundsException("config space read of " + length + " bytes at offset " + offset
                    + " is outside virtio_net_config (" + config.length + " bytes)");
        }
        return Arrays.copyOfRange(config, offset, offset + length);
    }
}

package io.vhostffm.vhost.vhostuser.backend;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Numbered Ethernet frames of the peer tests: an experimental EtherType (0x88b5), the number in
 * the first payload bytes, then a pattern derived from it, so a frame that comes back is checked
 * byte for byte.
 */
final class Frames {
    static final int ETHERTYPE = 0x88b5;
    static final byte[] HOST_MAC = {0x02, 0x66, 0x66, 0x00, 0x00, 0x01};
    static final byte[] GUEST_MAC = {0x02, 0x66, 0x66, 0x00, 0x00, 0x02};
    private static final byte[] MAGIC = "vhost-ffm peer".getBytes(StandardCharsets.US_ASCII);

    private Frames() {}

    /** Frame {@code n} from {@code src} to {@code dst}, {@code length} bytes (60 to 1514). */
    static byte[] numbered(int n, int length, byte[] dst, byte[] src) {
        ByteBuffer b = ByteBuffer.allocate(length);
        b.put(dst).put(src).putShort((short) ETHERTYPE).put(MAGIC).putInt(n);
        while (b.hasRemaining()) {
            b.put((byte) (n * 31 + b.position()));
        }
        return b.array();
    }

    /** The frame length test {@code n} uses: spread over 60..1514. */
    static int lengthOf(int n) {
        return 60 + (n * 397) % (1514 - 60 + 1);
    }

    /** The number of a frame of ours, or -1 for any other frame. */
    static int numberOf(byte[] frame, int length) {
        if (length < 14 + MAGIC.length + 4 || (((frame[12] & 0xff) << 8) | (frame[13] & 0xff)) != ETHERTYPE
                || !Arrays.equals(frame, 14, 14 + MAGIC.length, MAGIC, 0, MAGIC.length)) {
            return -1;
        }
        return ByteBuffer.wrap(frame, 14 + MAGIC.length, 4).getInt();
    }

    /** The frame with its destination and source MAC swapped (what DPDK's macswap forwarding returns). */
    static byte[] macSwapped(byte[] frame) {
        byte[] swapped = frame.clone();
        System.arraycopy(frame, 0, swapped, 6, 6);
        System.arraycopy(frame, 6, swapped, 0, 6);
        return swapped;
    }
}

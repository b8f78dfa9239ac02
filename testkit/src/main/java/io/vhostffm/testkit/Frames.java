package io.vhostffm.testkit;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Numbered test frames: each carries a stream number and a sequence number, and a byte pattern
 * derived from both, so a receiver can tell which frame it got, whether it is whole, and whether
 * it came once and in order ({@link StreamCheck}).
 *
 * <h2>Format</h2>
 * Ethernet destination, source, EtherType, then at the payload offset: the magic {@code "VFFM"},
 * the stream (4 bytes), the sequence number (8 bytes), big endian, and the pattern to the end.
 * Two kinds, chosen by {@code flow}:
 * <ul>
 *   <li>{@code flow < 0}: EtherType {@value #ETHERTYPE_HEX} (IEEE local experimental), payload at
 *       14. For frames a guest transmits: the host's IP stack ignores them.</li>
 *   <li>{@code flow >= 0}: IPv4/UDP from 10.0.0.1 port {@code 1000 + flow} to 10.0.0.2 port 9,
 *       payload at 42. For frames the network sends to a multi-queue guest: the TAP hashes the
 *       flow to pick a queue.</li>
 * </ul>
 */
public final class Frames {
    /** EtherType of the raw kind. */
    public static final int ETHERTYPE = 0x88b5;
    static final String ETHERTYPE_HEX = "0x88b5";
    /** Shortest frame (without FCS) this class writes: the Ethernet minimum. */
    public static final int MIN_LENGTH = 60;
    /** Longest frame this class writes. */
    public static final int MAX_LENGTH = 65535;
    /** The broadcast address, which every receive filter state accepts. */
    public static final byte[] BROADCAST = {-1, -1, -1, -1, -1, -1};
    /** The source address of frames the network side sends (locally administered). */
    public static final byte[] NETWORK_MAC = {0x02, 0, 0, 0, 0, 0x01};
    private static final int MAGIC = 0x5646464d; // "VFFM"
    private static final int RAW_PAYLOAD = 14;
    private static final int UDP_PAYLOAD = 42;
    private static final ValueLayout.OfShort BE16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);
    private static final ValueLayout.OfInt BE32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);
    private static final ValueLayout.OfLong BE64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);

    private Frames() {}

    /**
     * Writes frame {@code seq} of {@code stream} into the first {@code length} bytes of {@code into}.
     *
     * @param flow below 0: the raw kind; else the UDP kind with this flow (source port 1000 + flow)
     * @return {@code length}
     * @throws IllegalArgumentException when {@code length} is outside {@link #MIN_LENGTH}..{@link #MAX_LENGTH}
     *     or {@code into} is shorter
     */
    public static int write(MemorySegment into, byte[] destination, byte[] source, int stream, long seq, int length,
            int flow) {
        if (length < MIN_LENGTH || length > MAX_LENGTH || into.byteSize() < length) {
            throw new IllegalArgumentException("frame length " + length + " outside " + MIN_LENGTH + ".." + MAX_LENGTH
                    + " or above the buffer's " + into.byteSize());
        }
        MemorySegment.copy(destination, 0, into, JAVA_BYTE, 0, 6);
        MemorySegment.copy(source, 0, into, JAVA_BYTE, 6, 6);
        int payload;
        if (flow < 0) {
            into.set(BE16, 12, (short) ETHERTYPE);
            payload = RAW_PAYLOAD;
        } else {
            into.set(BE16, 12, (short) 0x0800);
            int ip = 14;
            into.asSlice(ip, 28).fill((byte) 0);
            into.set(JAVA_BYTE, ip, (byte) 0x45);
            into.set(BE16, ip + 2, (short) (length - ip));
            into.set(JAVA_BYTE, ip + 8, (byte) 64);
            into.set(JAVA_BYTE, ip + 9, (byte) 17);
            into.set(BE32, ip + 12, 0x0a000001);
            into.set(BE32, ip + 16, 0x0a000002);
            into.set(BE16, ip + 10, ipChecksum(into.asSlice(ip, 20)));
            int udp = ip + 20;
            into.set(BE16, udp, (short) (1000 + flow));
            into.set(BE16, udp + 2, (short) 9);
            into.set(BE16, udp + 4, (short) (length - udp));
            payload = UDP_PAYLOAD;
        }
        into.set(BE32, payload, MAGIC);
        into.set(BE32, payload + 4, stream);
        into.set(BE64, payload + 8, seq);
        for (int i = payload + 16; i < length; i++) {
            into.set(JAVA_BYTE, i, pattern(stream, seq, i));
        }
        return length;
    }

    /** As {@link #write}, into a new array. */
    public static byte[] frame(byte[] destination, byte[] source, int stream, long seq, int length, int flow) {
        byte[] f = new byte[length];
        write(MemorySegment.ofArray(f), destination, source, stream, seq, length, flow);
        return f;
    }

    /** A length from 60 to 1514 that varies with {@code seq}, so a stream covers every size class. */
    public static int variedLength(long seq) {
        return MIN_LENGTH + (int) Math.floorMod(seq * 7919L, 1455L);
    }

    private static byte pattern(int stream, long seq, int offset) {
        return (byte) (seq * 31 + stream * 7L + offset);
    }

    private static short ipChecksum(MemorySegment header) {
        long sum = 0;
        for (int i = 0; i < 20; i += 2) {
            sum += Short.toUnsignedInt(header.get(BE16, i));
        }
        while ((sum >> 16) != 0) {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        return (short) ~sum;
    }

    private static int payloadOffset(MemorySegment frame, long length) {
        if (length < MIN_LENGTH || frame.byteSize() < length) {
            return -1;
        }
        int type = Short.toUnsignedInt(frame.get(BE16, 12));
        int at = type == ETHERTYPE ? RAW_PAYLOAD : type == 0x0800 && frame.get(JAVA_BYTE, 23) == 17 ? UDP_PAYLOAD : -1;
        return at >= 0 && frame.get(BE32, at) == MAGIC ? at : -1;
    }

    /** Whether the first {@code length} bytes of {@code frame} are a numbered frame (either kind). */
    public static boolean isNumbered(MemorySegment frame, long length) {
        return payloadOffset(frame, length) >= 0;
    }

    /** Whether {@code frame} is a numbered frame. */
    public static boolean isNumbered(byte[] frame) {
        return isNumbered(MemorySegment.ofArray(frame), frame.length);
    }

    /** The stream of a numbered frame. */
    public static int stream(MemorySegment frame, long length) {
        return frame.get(BE32, checkedPayload(frame, length) + 4);
    }

    /** The stream of a numbered frame. */
    public static int stream(byte[] frame) {
        return stream(MemorySegment.ofArray(frame), frame.length);
    }

    /** The sequence number of a numbered frame. */
    public static long sequence(MemorySegment frame, long length) {
        return frame.get(BE64, checkedPayload(frame, length) + 8);
    }

    /** The sequence number of a numbered frame. */
    public static long sequence(byte[] frame) {
        return sequence(MemorySegment.ofArray(frame), frame.length);
    }

    private static int checkedPayload(MemorySegment frame, long length) {
        int at = payloadOffset(frame, length);
        if (at < 0) {
            throw new IllegalArgumentException("not a numbered frame (" + length + " bytes)");
        }
        return at;
    }

    /**
     * Checks a numbered frame byte for byte against the pattern its numbers give.
     *
     * @return null when whole, else the first offset that differs and both values
     */
    public static String damage(MemorySegment frame, long length) {
        int at = payloadOffset(frame, length);
        if (at < 0) {
            return "not a numbered frame (" + length + " bytes)";
        }
        int stream = frame.get(BE32, at + 4);
        long seq = frame.get(BE64, at + 8);
        for (int i = at + 16; i < length; i++) {
            byte want = pattern(stream, seq, i);
            byte got = frame.get(JAVA_BYTE, i);
            if (got != want) {
                return "stream " + stream + " frame " + seq + ": byte " + i + " of " + length + " is " + got
                        + ", not " + want;
            }
        }
        return null;
    }

    /** As {@link #damage(MemorySegment, long)}. */
    public static String damage(byte[] frame) {
        return damage(MemorySegment.ofArray(frame), frame.length);
    }
}

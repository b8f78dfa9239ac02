package io.vhostffm.migration.stream;

/**
 * Constants of the migration stream's wire format (see docs/migration.md, "The stream, byte by byte").
 *
 * <pre>
 * stream  = header frame* end
 * header  = magic:u32 "VFMS" | version:u16 | reserved:u16 (0)
 * frame   = sectionId:u16 | flags:u16 | length:u32 | payload[length] | crc32c:u32
 * end     = a frame with sectionId 0, flags 0, length 0
 * </pre>
 * All integers are big-endian; the CRC32C covers the frame's id, flags, length and payload.
 */
public final class StreamFormat {
    private StreamFormat() {
    }

    /** "VFMS": vhost-ffm migration stream. */
    public static final int MAGIC = 0x56464D53;
    /** The only version this code reads and writes. */
    public static final int VERSION = 1;
    /** Bytes of the stream header. */
    public static final int HEADER_SIZE = 8;
    /** Bytes of a frame before its payload: id, flags, length. */
    public static final int FRAME_HEADER_SIZE = 8;
    /** Bytes of a frame's trailing checksum. */
    public static final int CHECKSUM_SIZE = 4;
    /** Default upper bound of one payload; a longer length is rejected before reading it. */
    public static final int DEFAULT_MAX_PAYLOAD = 16 << 20;

    /** The end marker's section id. */
    public static final int END_OF_STREAM = 0x0000;
    /** Lowest id a device state section may use. */
    public static final int FIRST_DEVICE_SECTION = 0x0001;
    /** Highest id a device state section may use; ids above are the protocol's own. */
    public static final int LAST_DEVICE_SECTION = 0xEFFF;
    /** Control section: the list of state sections the source will send (id, name, fingerprint). */
    public static final int MANIFEST = 0xF001;
    /** Control section: the final per-queue indices, sent at stop-and-copy. */
    public static final int QUEUE_INDICES = 0xF002;
    /** Control section: the destination's answer on the return path. */
    public static final int ACKNOWLEDGEMENT = 0xF003;

    /** Payload is a section's full state as loaded early, in the setup phase. */
    public static final int FLAG_INIT_STATE = 0x0001;
    /** Payload is a section's full current state, sent because it changed since last sent. */
    public static final int FLAG_DELTA = 0x0002;
    /** Nothing but indices: no device state changed since it was last sent. */
    public static final int FLAG_NO_DATA = 0x0004;
    /** Last frame of a message (the setup, one precopy delta batch, the switchover). */
    public static final int FLAG_END_OF_DATA = 0x0008;
    /** Frame belongs to the stop-and-copy message: the guest is paused at the source. */
    public static final int FLAG_SWITCHOVER = 0x0010;
    /** Every flag this version knows; any other bit is an error. */
    public static final int KNOWN_FLAGS = FLAG_INIT_STATE | FLAG_DELTA | FLAG_NO_DATA | FLAG_END_OF_DATA
            | FLAG_SWITCHOVER;

    /** True for ids a device state section may take. */
    public static boolean isDeviceSection(int id) {
        return id >= FIRST_DEVICE_SECTION && id <= LAST_DEVICE_SECTION;
    }

    /** A readable list of flag names, e.g. {@code DELTA|END_OF_DATA}. */
    public static String flagNames(int flags) {
        StringBuilder sb = new StringBuilder();
        String[] names = {"INIT_STATE", "DELTA", "NO_DATA", "END_OF_DATA", "SWITCHOVER"};
        for (int i = 0; i < names.length; i++) {
            if ((flags & (1 << i)) != 0) {
                sb.append(sb.isEmpty() ? "" : "|").append(names[i]);
            }
        }
        int unknown = flags & ~KNOWN_FLAGS;
        if (unknown != 0) {
            sb.append(sb.isEmpty() ? "" : "|").append(String.format("0x%04x", unknown));
        }
        return sb.isEmpty() ? "0" : sb.toString();
    }
}

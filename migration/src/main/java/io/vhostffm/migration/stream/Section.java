package io.vhostffm.migration.stream;

import java.util.Objects;

/**
 * One frame read from a migration stream, its checksum already verified.
 *
 * @param id the section id (see {@link StreamFormat})
 * @param flags the frame's flags, only known bits set
 * @param payload the payload bytes (owned by this record; not copied)
 * @param offset stream offset of the frame's first byte
 */
public record Section(int id, int flags, byte[] payload, long offset) {
    public Section {
        Objects.requireNonNull(payload, "payload");
    }

    /** Stream offset of the payload's first byte. */
    public long payloadOffset() {
        return offset + StreamFormat.FRAME_HEADER_SIZE;
    }

    /** True when every bit of {@code flag} is set. */
    public boolean has(int flag) {
        return (flags & flag) == flag;
    }

    /** True for the end-of-stream marker. */
    public boolean isEndOfStream() {
        return id == StreamFormat.END_OF_STREAM;
    }

    @Override
    public String toString() {
        return String.format("Section[id=0x%04x, flags=%s, length=%d, offset=%d]", id,
                StreamFormat.flagNames(flags), payload.length, offset);
    }
}

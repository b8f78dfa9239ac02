package io.vhostffm.migration.stream;

import io.vhostffm.migration.jfr.StreamFrameEvent;

import io.vhostffm.migration.MigrationStreamException;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.SelectableChannel;
import java.util.Arrays;
import java.util.Map;
import java.util.Objects;
import java.util.zip.CRC32C;

/**
 * Reads a migration stream frame by frame and trusts none of it: the magic, version and
 * reserved bits of the header, each frame's section id (it must be a control section or one of
 * the device sections given at construction), its flags, its length (bounded before any
 * allocation, and the payload buffer only grows as bytes really arrive), its CRC32C, and
 * truncation anywhere. Every problem is a {@link MigrationStreamException} naming the section
 * and the byte offset; after one, the reader refuses to go on. Blocking channels only; does not
 * close the channel.
 */
public final class MigrationStreamReader {
    private static final int CHUNK = 64 << 10;

    private final ReadableByteChannel in;
    private final Map<Integer, String> deviceSections;
    private final int maxPayload;
    private final CRC32C crc = new CRC32C();
    private long offset;
    private boolean headerRead;
    private boolean ended;
    private boolean failed;
    private boolean endOfStream;
    private IOException readFailure;

    /**
     * @param in a blocking channel
     * @param deviceSections the device section ids this reader accepts, with their names
     * @param maxPayload the largest payload accepted
     */
    public MigrationStreamReader(ReadableByteChannel in, Map<Integer, String> deviceSections, int maxPayload) {
        this.in = Objects.requireNonNull(in, "in");
        if (in instanceof SelectableChannel s && !s.isBlocking()) {
            throw new IllegalArgumentException("the channel must be in blocking mode");
        }
        this.deviceSections = Map.copyOf(deviceSections);
        for (int id : this.deviceSections.keySet()) {
            if (!StreamFormat.isDeviceSection(id)) {
                throw new IllegalArgumentException(String.format("0x%x is not a device section id", id));
            }
        }
        if (maxPayload < 0) {
            throw new IllegalArgumentException("maxPayload " + maxPayload);
        }
        this.maxPayload = maxPayload;
    }

    /** A reader over {@code in} with the default payload limit. */
    public MigrationStreamReader(ReadableByteChannel in, Map<Integer, String> deviceSections) {
        this(in, deviceSections, StreamFormat.DEFAULT_MAX_PAYLOAD);
    }

    /** A reader over an InputStream. */
    public static MigrationStreamReader over(InputStream in, Map<Integer, String> deviceSections) {
        return new MigrationStreamReader(Channels.newChannel(in), deviceSections);
    }

    /**
     * Whether a read met the end of the channel before the stream was complete: the peer closed
     * its end (it died or gave up), so the truncation this reader reported is the connection's,
     * not a malformed stream's.
     */
    public boolean endOfStream() {
        return endOfStream;
    }

    /** The exception the channel's read threw (a timeout, ECONNRESET, ...), or null. */
    public IOException readFailure() {
        return readFailure;
    }

    /** Bytes consumed so far. */
    public long offset() {
        return offset;
    }

    /** The name of a known section id, or null. */
    public String nameOf(int id) {
        return switch (id) {
            case StreamFormat.END_OF_STREAM -> "end-of-stream";
            case StreamFormat.MANIFEST -> "manifest";
            case StreamFormat.QUEUE_INDICES -> "queue-indices";
            case StreamFormat.ACKNOWLEDGEMENT -> "acknowledgement";
            default -> deviceSections.get(id);
        };
    }

    private boolean isKnown(int id) {
        return nameOf(id) != null;
    }

    /** Reads and checks the stream header, if not yet read ({@link #next} does it otherwise). */
    public void readHeader() throws MigrationStreamException {
        if (headerRead) {
            return;
        }
        requireUsable();
        failed = true; // until the header checked out
        ByteBuffer header = ByteBuffer.allocate(StreamFormat.HEADER_SIZE);
        readFully(header, StreamFormat.HEADER_SIZE, MigrationStreamException.NO_SECTION, "stream header");
        header.flip();
        int magic = header.getInt();
        if (magic != StreamFormat.MAGIC) {
            throw fail(String.format("wrong magic 0x%08x, expected 0x%08x", magic, StreamFormat.MAGIC),
                    MigrationStreamException.NO_SECTION, 0);
        }
        int version = Short.toUnsignedInt(header.getShort());
        if (version != StreamFormat.VERSION) {
            throw fail("unsupported version " + version + ", this reader knows " + StreamFormat.VERSION,
                    MigrationStreamException.NO_SECTION, 4);
        }
        int reserved = Short.toUnsignedInt(header.getShort());
        if (reserved != 0) {
            throw fail(String.format("reserved header bits 0x%04x are set", reserved),
                    MigrationStreamException.NO_SECTION, 6);
        }
        headerRead = true;
        failed = false;
    }

    /** After a failure the position in the stream is unknown: no frame can be trusted any more. */
    private void requireUsable() {
        if (failed) {
            throw new IllegalStateException("the stream failed earlier; it cannot be read further");
        }
    }

    /**
     * Reads the next frame, checksum verified. Returns the end marker as a section whose
     * {@link Section#isEndOfStream()} is true; calling again after it is an error.
     */
    public Section next() throws MigrationStreamException {
        if (ended) {
            throw new IllegalStateException("the stream has ended");
        }
        StreamFrameEvent event = new StreamFrameEvent(); // scalar-replaced by the JIT: no allocation without a recording
        event.begin();
        readHeader();
        requireUsable();
        failed = true; // until the frame checked out
        long frameOffset = offset;
        ByteBuffer head = ByteBuffer.allocate(StreamFormat.FRAME_HEADER_SIZE);
        readFully(head, StreamFormat.FRAME_HEADER_SIZE, MigrationStreamException.NO_SECTION, "frame header");
        head.flip();
        int id = Short.toUnsignedInt(head.getShort());
        int flags = Short.toUnsignedInt(head.getShort());
        int length = head.getInt();
        if (!isKnown(id)) {
            throw fail("unknown section id", id, frameOffset);
        }
        if ((flags & ~StreamFormat.KNOWN_FLAGS) != 0) {
            throw fail("unknown flags " + StreamFormat.flagNames(flags), id, frameOffset + 2);
        }
        if (length < 0 || length > maxPayload) {
            throw fail("payload length " + Integer.toUnsignedString(length) + " exceeds the limit " + maxPayload,
                    id, frameOffset + 4);
        }
        if (id == StreamFormat.END_OF_STREAM && (flags != 0 || length != 0)) {
            throw fail("end marker with flags " + StreamFormat.flagNames(flags) + " and length " + length,
                    id, frameOffset);
        }
        byte[] payload = readPayload(id, length);
        ByteBuffer checksum = ByteBuffer.allocate(StreamFormat.CHECKSUM_SIZE);
        readFully(checksum, StreamFormat.CHECKSUM_SIZE, id, "checksum");
        checksum.flip();
        crc.reset();
        crc.update(head.array(), 0, StreamFormat.FRAME_HEADER_SIZE);
        crc.update(payload, 0, payload.length);
        int expected = (int) crc.getValue();
        int actual = checksum.getInt();
        if (expected != actual) {
            throw fail(String.format("CRC32C mismatch: frame says 0x%08x, bytes give 0x%08x", actual, expected),
                    id, offset - StreamFormat.CHECKSUM_SIZE);
        }
        if (id == StreamFormat.END_OF_STREAM) {
            ended = true;
        }
        failed = false;
        event.end();
        if (event.shouldCommit()) {
            event.direction = "read";
            event.sectionId = id;
            event.flags = flags;
            event.payloadBytes = payload.length;
            event.commit();
        }
        return new Section(id, flags, payload, frameOffset);
    }

    /** Reads {@code length} bytes, growing the buffer only as bytes arrive (no allocation on a forged length). */
    private byte[] readPayload(int id, int length) throws MigrationStreamException {
        byte[] payload = new byte[Math.min(length, CHUNK)];
        int filled = 0;
        while (filled < length) {
            if (filled == payload.length) {
                payload = Arrays.copyOf(payload, (int) Math.min(length, (long) payload.length * 2));
            }
            ByteBuffer window = ByteBuffer.wrap(payload, filled, payload.length - filled);
            int n = read(window, id);
            if (n < 0) {
                throw truncated("truncated payload: " + filled + " of " + length + " bytes", id, offset);
            }
            filled += n;
        }
        return payload;
    }

    private void readFully(ByteBuffer buffer, int size, int id, String what) throws MigrationStreamException {
        int sectionForMessage = id;
        while (buffer.position() < size) {
            int n = read(buffer, id);
            if (n < 0) {
                if (sectionForMessage == MigrationStreamException.NO_SECTION && buffer.position() >= 2) {
                    sectionForMessage = Short.toUnsignedInt(buffer.getShort(0));
                }
                throw truncated("truncated " + what + ": " + buffer.position() + " of " + size + " bytes",
                        sectionForMessage, offset);
            }
        }
    }

    private int read(ByteBuffer buffer, int id) throws MigrationStreamException {
        int n;
        try {
            n = in.read(buffer);
        } catch (IOException e) {
            readFailure = e;
            throw new MigrationStreamException("read failed: " + e, id, nameOf(id), offset, null, e);
        }
        if (n > 0) {
            offset += n;
        } else if (n < 0) {
            endOfStream = true;
        }
        return n;
    }

    /** The channel ended: the cause says so ({@link EOFException}), so a caller can tell a peer that went away. */
    private MigrationStreamException truncated(String reason, int id, long at) {
        return new MigrationStreamException(reason, id, id == MigrationStreamException.NO_SECTION ? null : nameOf(id),
                at, null, new EOFException("end of stream"));
    }

    private MigrationStreamException fail(String reason, int id, long at) {
        return new MigrationStreamException(reason, id, id == MigrationStreamException.NO_SECTION ? null : nameOf(id),
                at, null);
    }
}

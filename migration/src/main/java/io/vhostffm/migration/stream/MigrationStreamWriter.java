package io.vhostffm.migration.stream;

import io.vhostffm.migration.jfr.StreamFrameEvent;

import java.io.Flushable;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.WritableByteChannel;
import java.util.Objects;
import java.util.zip.CRC32C;

/**
 * Writes a migration stream: the header on first use, then one frame per
 * {@link #writeSection}, then {@link #writeEndOfStream}. Counts the bytes it wrote, so the
 * protocol can account bytes per phase. Not thread-safe; does not close the channel.
 */
public final class MigrationStreamWriter implements Flushable {
    private final WritableByteChannel out;
    private final OutputStream stream; // non-null when built over an OutputStream, for flush()
    private final int maxPayload;
    private final CRC32C crc = new CRC32C();
    private long bytesWritten;
    private boolean headerWritten;
    private boolean ended;

    /** A writer over {@code out}, with the default payload limit. */
    public MigrationStreamWriter(WritableByteChannel out) {
        this(out, null, StreamFormat.DEFAULT_MAX_PAYLOAD);
    }

    /** A writer over {@code out}; payloads longer than {@code maxPayload} are refused. */
    public MigrationStreamWriter(WritableByteChannel out, int maxPayload) {
        this(out, null, maxPayload);
    }

    private MigrationStreamWriter(WritableByteChannel out, OutputStream stream, int maxPayload) {
        this.out = Objects.requireNonNull(out, "out");
        this.stream = stream;
        if (maxPayload < 0) {
            throw new IllegalArgumentException("maxPayload " + maxPayload);
        }
        this.maxPayload = maxPayload;
    }

    /** A writer over an OutputStream; {@link #flush()} flushes it. */
    public static MigrationStreamWriter over(OutputStream out) {
        return new MigrationStreamWriter(Channels.newChannel(out), out, StreamFormat.DEFAULT_MAX_PAYLOAD);
    }

    /** Bytes written so far, header included. */
    public long bytesWritten() {
        return bytesWritten;
    }

    /** Writes the stream header now, if not yet written (the first section writes it otherwise). */
    public void writeHeader() throws IOException {
        if (headerWritten) {
            return;
        }
        ByteBuffer header = ByteBuffer.allocate(StreamFormat.HEADER_SIZE);
        header.putInt(StreamFormat.MAGIC).putShort((short) StreamFormat.VERSION).putShort((short) 0).flip();
        writeFully(header);
        headerWritten = true;
    }

    /**
     * Writes one frame.
     *
     * @param id a device section id or a control id of {@link StreamFormat}, not the end marker
     * @param flags known flags only
     * @param payload the bytes, at most the payload limit
     */
    public void writeSection(int id, int flags, byte[] payload) throws IOException {
        if (id <= StreamFormat.END_OF_STREAM || id > 0xFFFF) {
            throw new IllegalArgumentException(String.format("section id 0x%x is not writable", id));
        }
        writeFrame(id, flags, payload);
    }

    /** Writes the end marker; nothing may follow. */
    public void writeEndOfStream() throws IOException {
        writeFrame(StreamFormat.END_OF_STREAM, 0, new byte[0]);
        ended = true;
        flush();
    }

    /**
     * Writes one last section and the end marker in a single write, so a reader blocked on the
     * stream wakes once for both (two writes may wake it twice: once for the section, and again,
     * after it read and went back to wait, for the marker). Nothing may follow.
     *
     * @param id as {@link #writeSection}
     * @param flags as {@link #writeSection}
     * @param payload as {@link #writeSection}
     */
    public void writeLastSectionAndEnd(int id, int flags, byte[] payload) throws IOException {
        if (id <= StreamFormat.END_OF_STREAM || id > 0xFFFF) {
            throw new IllegalArgumentException(String.format("section id 0x%x is not writable", id));
        }
        StreamFrameEvent event = new StreamFrameEvent();
        event.begin();
        ByteBuffer section = frame(id, flags, payload);
        ByteBuffer end = frame(StreamFormat.END_OF_STREAM, 0, new byte[0]);
        writeHeader();
        writeFully(ByteBuffer.allocate(section.remaining() + end.remaining()).put(section).put(end).flip());
        event.end();
        commitWrite(event, id, flags, payload.length);
        ended = true;
        flush();
    }

    private void writeFrame(int id, int flags, byte[] payload) throws IOException {
        StreamFrameEvent event = new StreamFrameEvent(); // scalar-replaced by the JIT: no allocation without a recording
        event.begin();
        ByteBuffer frame = frame(id, flags, payload);
        writeHeader();
        writeFully(frame);
        event.end();
        commitWrite(event, id, flags, payload.length);
    }

    private static void commitWrite(StreamFrameEvent event, int id, int flags, int payloadBytes) {
        if (event.shouldCommit()) {
            event.direction = "write";
            event.sectionId = id;
            event.flags = flags;
            event.payloadBytes = payloadBytes;
            event.commit();
        }
    }

    /** One frame: id, flags, length, payload, CRC-32C of them; checked before anything is written. */
    private ByteBuffer frame(int id, int flags, byte[] payload) {
        Objects.requireNonNull(payload, "payload");
        if (ended) {
            throw new IllegalStateException("the stream has ended");
        }
        if ((flags & ~StreamFormat.KNOWN_FLAGS) != 0) {
            throw new IllegalArgumentException("unknown flags " + StreamFormat.flagNames(flags));
        }
        if (payload.length > maxPayload) {
            throw new IllegalArgumentException("payload of " + payload.length + " bytes exceeds the limit " + maxPayload);
        }
        ByteBuffer frame = ByteBuffer.allocate(StreamFormat.FRAME_HEADER_SIZE + payload.length
                + StreamFormat.CHECKSUM_SIZE);
        frame.putShort((short) id).putShort((short) flags).putInt(payload.length).put(payload);
        crc.reset();
        crc.update(frame.array(), 0, frame.position());
        frame.putInt((int) crc.getValue()).flip();
        return frame;
    }

    private void writeFully(ByteBuffer buffer) throws IOException {
        while (buffer.hasRemaining()) {
            bytesWritten += out.write(buffer);
        }
    }

    @Override
    public void flush() throws IOException {
        if (stream != null) {
            stream.flush();
        }
    }
}

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

    private void writeFrame(int id, int flags, byte[] payload) throws IOException {
        StreamFrameEvent event = new StreamFrameEvent(); // scalar-replaced by the JIT: no allocation without a recording
        event.begin();
        writeFrameBytes(id, flags, payload);
        event.end();
        if (event.shouldCommit()) {
            event.direction = "write";
            event.sectionId = id;
            event.flags = flags;
            event.payloadBytes = payload.length;
            event.commit();
        }
    }

    private void writeFrameBytes(int id, int flags, byte[] payload) throws IOException {
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
        writeHeader();
        ByteBuffer frame = ByteBuffer.allocate(StreamFormat.FRAME_HEADER_SIZE + payload.length
                + StreamFormat.CHECKSUM_SIZE);
        frame.putShort((short) id).putShort((short) flags).putInt(payload.length).put(payload);
        crc.reset();
        crc.update(frame.array(), 0, frame.position());
        frame.putInt((int) crc.getValue()).flip();
        writeFully(frame);
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

package io.vhostffm.vhost.virtio.net;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;

/**
 * Reads a control command's bytes in order across the device-readable buffers of its chain,
 * which may split a field anywhere. Every short read fails with {@link MalformedCommandException}
 * naming the field and the byte offset inside the command.
 */
final class CommandReader {
    /** A command that cannot be carried out; the message says why. */
    static final class MalformedCommandException extends Exception {
        private static final long serialVersionUID = 1L;

        MalformedCommandException(String message) {
            super(message, null, false, false);
        }
    }

    private final List<MemorySegment> buffers;
    private final long size;
    private int buffer;
    private long inBuffer;
    private long position;

    CommandReader(List<MemorySegment> buffers) {
        this.buffers = buffers;
        long total = 0;
        for (MemorySegment s : buffers) {
            total += s.byteSize();
        }
        this.size = total;
    }

    /** Bytes in all buffers together. */
    long size() {
        return size;
    }

    /** Bytes not read yet. */
    long remaining() {
        return size - position;
    }

    /** Offset of the next byte inside the command. */
    long position() {
        return position;
    }

    private void need(long bytes, String field) throws MalformedCommandException {
        if (bytes > remaining()) {
            throw new MalformedCommandException(field + " needs " + bytes + " bytes at offset " + position
                    + " but the command has " + remaining() + " left (" + size + " in all)");
        }
    }

    private int next() {
        while (inBuffer >= buffers.get(buffer).byteSize()) {
            buffer++;
            inBuffer = 0;
        }
        byte b = buffers.get(buffer).get(ValueLayout.JAVA_BYTE, inBuffer);
        inBuffer++;
        position++;
        return b & 0xff;
    }

    int u8(String field) throws MalformedCommandException {
        need(1, field);
        return next();
    }

    int le16(String field) throws MalformedCommandException {
        need(2, field);
        return next() | next() << 8;
    }

    long le32(String field) throws MalformedCommandException {
        need(4, field);
        long v = 0;
        for (int i = 0; i < 4; i++) {
            v |= (long) next() << (8 * i);
        }
        return v;
    }

    long le64(String field) throws MalformedCommandException {
        need(8, field);
        long v = 0;
        for (int i = 0; i < 8; i++) {
            v |= (long) next() << (8 * i);
        }
        return v;
    }

    /** Passes over {@code count} bytes without copying them (an overflowing MAC list may be huge). */
    void skip(long count, String field) throws MalformedCommandException {
        need(count, field);
        long left = count;
        while (left > 0) {
            long inThis = buffers.get(buffer).byteSize() - inBuffer;
            if (inThis == 0) {
                buffer++;
                inBuffer = 0;
                continue;
            }
            long step = Math.min(inThis, left);
            inBuffer += step;
            position += step;
            left -= step;
        }
    }

    byte[] bytes(long count, String field) throws MalformedCommandException {
        need(count, field);
        byte[] out = new byte[(int) count];
        for (int i = 0; i < out.length; i++) {
            out[i] = (byte) next();
        }
        return out;
    }
}

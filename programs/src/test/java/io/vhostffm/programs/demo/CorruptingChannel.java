package io.vhostffm.programs.demo;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.WritableByteChannel;

/**
 * A channel that changes one byte at a stream offset (XOR), or cuts the stream there (the bytes
 * from that offset on are swallowed, as a connection lost mid-way would).
 */
final class CorruptingChannel implements WritableByteChannel {
    private final WritableByteChannel out;
    private final long offset;
    private final int xor; // 0: cut the stream at offset
    private long written;

    private CorruptingChannel(WritableByteChannel out, long offset, int xor) {
        this.out = out;
        this.offset = offset;
        this.xor = xor;
    }

    static java.util.function.UnaryOperator<WritableByteChannel> flip(long offset, int xor) {
        return c -> new CorruptingChannel(c, offset, xor);
    }

    static java.util.function.UnaryOperator<WritableByteChannel> cut(long offset) {
        return c -> new CorruptingChannel(c, offset, 0);
    }

    @Override
    public int write(ByteBuffer src) throws IOException {
        int n = src.remaining();
        ByteBuffer copy = ByteBuffer.allocate(n).put(src.duplicate()).flip();
        src.position(src.limit());
        long start = written;
        written += n;
        if (xor == 0) {
            if (start >= offset) {
                return n; // swallowed
            }
            copy.limit((int) Math.min(n, offset - start));
        } else if (offset >= start && offset < start + n) {
            int at = (int) (offset - start);
            copy.put(at, (byte) (copy.get(at) ^ xor));
        }
        while (copy.hasRemaining()) {
            out.write(copy);
        }
        return n;
    }

    @Override
    public boolean isOpen() {
        return out.isOpen();
    }

    @Override
    public void close() throws IOException {
        out.close();
    }
}

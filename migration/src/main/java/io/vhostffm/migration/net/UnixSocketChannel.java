package io.vhostffm.migration.net;

import io.vhostffm.migration.RehearsalLoop;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.os.UnixSocket;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.ByteChannel;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;
import java.time.Duration;
import java.util.Objects;

/**
 * A byte channel over a {@link UnixSocket}, so that the migration stream runs on the same
 * socket that carried the descriptors ({@link LocalHandoff}). Bytes pass through two native
 * buffers of its own (one per direction); one reader and one writer thread at a time.
 *
 * <p>It blocks, with a deadline: each read waits at most the read timeout for bytes, each write
 * at most the write timeout for room (the non-blocking call, then a poll when it would block), and a stalled peer is a
 * {@link java.net.SocketTimeoutException} rather than a hang. Writes never raise SIGPIPE: a
 * vanished peer is an EPIPE {@link NativeCallException}. {@link #peerClosed()} tells an end of
 * stream from a truncation the reader reports.
 */
public final class UnixSocketChannel implements ByteChannel {
    private static final int BUFFER = 64 * 1024;

    private final UnixSocket socket;
    /** Freed by the GC once the channel is unreachable: a channel may outlive its socket's owner. */
    private final Arena arena = Arena.ofAuto();
    private final MemorySegment readBuffer = arena.allocate(BUFFER);
    private final MemorySegment writeBuffer = arena.allocate(BUFFER);
    private volatile boolean open = true;
    private volatile boolean peerClosed;
    private volatile IOException failure;
    private volatile Duration readTimeout;
    private volatile Duration writeTimeout;

    /**
     * A channel over {@code socket} with the default deadlines ({@link MigrationDeadlines#defaults()});
     * closing the channel does not close the socket.
     */
    public UnixSocketChannel(UnixSocket socket) {
        this(socket, MigrationDeadlines.defaults());
    }

    /** A channel over {@code socket} with the stream read and write deadlines of {@code deadlines}. */
    public UnixSocketChannel(UnixSocket socket, MigrationDeadlines deadlines) {
        this.socket = socket;
        this.readTimeout = deadlines.streamRead();
        this.writeTimeout = deadlines.write();
    }

    /**
     * A {@link RehearsalLoop} over a socket pair of its own, a channel of this kind on each end:
     * the destination's rehearsals of its switchover read then run this class's read path, the
     * connection's (give {@code UnixSocketChannel::loop} to {@link
     * io.vhostffm.migration.MigrationDestination#setRehearsalLoop}). Closing it closes the pair.
     *
     * @throws java.io.UncheckedIOException when socketpair fails
     */
    public static RehearsalLoop loop() {
        UnixSocket.Pair pair;
        try {
            pair = UnixSocket.pair();
        } catch (NativeCallException e) {
            throw new java.io.UncheckedIOException(e);
        }
        UnixSocketChannel writer = new UnixSocketChannel(pair.first());
        UnixSocketChannel reader = new UnixSocketChannel(pair.second());
        return new RehearsalLoop() {
            @Override
            public WritableByteChannel writer() {
                return writer;
            }

            @Override
            public ReadableByteChannel reader() {
                return reader;
            }

            @Override
            public void close() {
                writer.close();
                reader.close();
                pair.close();
            }
        };
    }

    /** From now on each read waits at most {@code timeout} (e.g. longer while the peer runs the guest). */
    public void setReadTimeout(Duration timeout) {
        this.readTimeout = Objects.requireNonNull(timeout, "timeout");
    }

    /** The current read deadline. */
    public Duration readTimeout() {
        return readTimeout;
    }

    /** Whether a read saw the end of the stream: the peer closed its end (or died). */
    public boolean peerClosed() {
        return peerClosed;
    }

    /**
     * The connection's first failure: a read or write that failed or timed out, or the end of
     * stream where bytes were expected (an {@link java.io.EOFException}); null while it is sound.
     * Tells a failure of the peer or the connection from a malformed stream.
     */
    public IOException failure() {
        return failure != null ? failure
                : peerClosed ? new java.io.EOFException("the peer closed " + socket) : null;
    }

    /** The socket under the channel. */
    public UnixSocket socket() {
        return socket;
    }

    @Override
    public synchronized int read(ByteBuffer dst) throws IOException {
        if (!open) {
            throw new ClosedChannelException();
        }
        int want = Math.min(dst.remaining(), BUFFER);
        if (want == 0) {
            return 0;
        }
        long n;
        try {
            n = socket.read(readBuffer.asSlice(0, want), readTimeout);
        } catch (IOException e) {
            if (failure == null) {
                failure = e;
            }
            throw e;
        }
        if (n == 0) {
            peerClosed = true;
            return -1; // the peer closed its end
        }
        dst.put(readBuffer.asSlice(0, n).asByteBuffer());
        return (int) n;
    }

    @Override
    public int write(ByteBuffer src) throws IOException {
        synchronized (writeBuffer) {
            if (!open) {
                throw new ClosedChannelException();
            }
            int total = 0;
            while (src.hasRemaining()) {
                int chunk = Math.min(src.remaining(), BUFFER);
                ByteBuffer part = src.slice(src.position(), chunk);
                writeBuffer.asSlice(0, chunk).asByteBuffer().put(part);
                long off = 0;
                while (off < chunk) {
                    off += writeAll(writeBuffer.asSlice(off, chunk - off));
                }
                src.position(src.position() + chunk);
                total += chunk;
            }
            return total;
        }
    }

    private long writeAll(MemorySegment bytes) throws IOException {
        try {
            return socket.write(bytes, writeTimeout);
        } catch (IOException e) {
            if (failure == null) {
                failure = e;
            }
            throw e;
        }
    }

    @Override
    public boolean isOpen() {
        return open;
    }

    /** Stops using the socket (the socket stays open; its owner closes it). */
    @Override
    public void close() {
        open = false;
    }
}

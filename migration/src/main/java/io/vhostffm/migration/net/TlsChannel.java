package io.vhostffm.migration.net;

import java.io.EOFException;
import java.io.IOException;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.channels.ByteChannel;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.time.Duration;
import java.util.Objects;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLEngineResult;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLSession;

/**
 * A migration channel between hosts: TLS 1.3 with mutual authentication on the JDK's
 * {@link SSLEngine}, over a TCP {@link SocketChannel}; made by {@link MigrationTls}, handshake
 * already done. A blocking {@link ByteChannel} with deadlines, as {@link UnixSocketChannel}:
 * each read waits at most the read timeout for bytes, each write at most the write timeout for
 * room (the socket is non-blocking; waits are a selector's, one per direction), so a stalled
 * peer is a {@link SocketTimeoutException}, never a hang.
 *
 * <p>One reader and one writer thread at a time (the engine allows wrap and unwrap to run
 * concurrently). Closing sends close_notify and closes the socket.
 */
public final class TlsChannel implements ByteChannel {
    private static final ByteBuffer NOTHING = ByteBuffer.allocate(0);

    private final SocketChannel socket;
    private final SSLEngine engine;
    private final Selector readSelector;
    private final Selector writeSelector;
    private final Object readLock = new Object();
    private final Object writeLock = new Object();
    /** Ciphertext from the socket, in fill mode (ready for socket reads). */
    private ByteBuffer netIn;
    /** Ciphertext for the socket. */
    private ByteBuffer netOut;
    /** Plaintext unwrapped and not yet read, in fill mode. */
    private ByteBuffer appIn;
    private volatile Duration readTimeout;
    private volatile Duration writeTimeout;
    private volatile boolean open = true;
    private volatile boolean peerClosed;
    private volatile IOException failure;

    TlsChannel(SocketChannel socket, SSLEngine engine, MigrationDeadlines deadlines) throws IOException {
        this.socket = Objects.requireNonNull(socket, "socket");
        this.engine = engine;
        this.readTimeout = deadlines.streamRead();
        this.writeTimeout = deadlines.write();
        socket.configureBlocking(false);
        this.readSelector = Selector.open();
        this.writeSelector = Selector.open();
        socket.register(readSelector, SelectionKey.OP_READ);
        socket.register(writeSelector, SelectionKey.OP_WRITE);
        SSLSession session = engine.getSession();
        this.netIn = ByteBuffer.allocate(session.getPacketBufferSize());
        this.netOut = ByteBuffer.allocate(session.getPacketBufferSize());
        this.appIn = ByteBuffer.allocate(session.getApplicationBufferSize());
    }

    /**
     * Runs the handshake within {@code deadline} in all (a peer that stalls or sends nothing is a
     * timeout). A peer whose certificate the trust store does not accept, or that presents none,
     * fails it: an {@link javax.net.ssl.SSLHandshakeException}, before any application byte moved.
     */
    void handshake(Duration deadline) throws IOException {
        long end = System.nanoTime() + deadline.toNanos();
        synchronized (readLock) {
            synchronized (writeLock) {
                try {
                    engine.beginHandshake();
                    while (true) {
                        switch (engine.getHandshakeStatus()) {
                            case NEED_WRAP -> wrapAndFlush(NOTHING, remaining(end, deadline));
                            case NEED_UNWRAP, NEED_UNWRAP_AGAIN -> {
                                if (unwrapSome(remaining(end, deadline)) < 0) {
                                    throw new EOFException("the peer closed the connection during the TLS handshake");
                                }
                            }
                            case NEED_TASK -> runTasks();
                            case FINISHED, NOT_HANDSHAKING -> {
                                return;
                            }
                        }
                    }
                } catch (SocketTimeoutException e) {
                    SocketTimeoutException named = new SocketTimeoutException("TLS handshake on " + describe()
                            + ": not done within " + deadline.toMillis() + " ms");
                    named.initCause(e);
                    fail(named);
                    throw named;
                } catch (IOException e) {
                    fail(e);
                    throw e;
                }
            }
        }
    }

    private static Duration remaining(long end, Duration whole) throws SocketTimeoutException {
        long left = end - System.nanoTime();
        if (left <= 0) {
            throw new SocketTimeoutException("TLS handshake: not done within " + whole.toMillis() + " ms");
        }
        return Duration.ofNanos(left);
    }

    /** The TLS session (protocol, cipher suite, the peer's certificates). */
    public SSLSession session() {
        return engine.getSession();
    }

    /** From now on each read waits at most {@code timeout}. */
    public void setReadTimeout(Duration timeout) {
        this.readTimeout = Objects.requireNonNull(timeout, "timeout");
    }

    /** Whether a read saw the end of the stream. */
    public boolean peerClosed() {
        return peerClosed;
    }

    /** The connection's first failure (as {@link UnixSocketChannel#failure()}); null while it is sound. */
    public IOException failure() {
        return failure != null ? failure : peerClosed ? new EOFException("the peer closed " + socket) : null;
    }

    @Override
    public int read(ByteBuffer dst) throws IOException {
        synchronized (readLock) {
            if (!open) {
                throw new ClosedChannelException();
            }
            if (!dst.hasRemaining()) {
                return 0;
            }
            try {
                while (appIn.position() == 0) {
                    if (unwrapSome(readTimeout) < 0) {
                        peerClosed = true;
                        return -1;
                    }
                }
            } catch (IOException e) {
                fail(e);
                throw e;
            }
            appIn.flip();
            int n = Math.min(dst.remaining(), appIn.remaining());
            dst.put(appIn.slice(appIn.position(), n));
            appIn.position(appIn.position() + n);
            appIn.compact();
            return n;
        }
    }

    /**
     * Unwraps what is buffered, reading from the socket when a whole record is not there yet.
     *
     * @return -1 at the end of the stream (or close_notify), else 0
     */
    private int unwrapSome(Duration timeout) throws IOException {
        while (true) {
            netIn.flip();
            SSLEngineResult r;
            try {
                r = engine.unwrap(netIn, appIn);
            } finally {
                netIn.compact();
            }
            switch (r.getStatus()) {
                case OK -> {
                    if (r.getHandshakeStatus() == SSLEngineResult.HandshakeStatus.NEED_TASK) {
                        runTasks();
                    } else if (r.getHandshakeStatus() == SSLEngineResult.HandshakeStatus.NEED_WRAP
                            && !Thread.holdsLock(writeLock)) {
                        synchronized (writeLock) { // a post-handshake message (key update) to answer
                            wrapAndFlush(NOTHING, writeTimeout);
                        }
                    }
                    return 0;
                }
                case BUFFER_UNDERFLOW -> {
                    if (netIn.position() == netIn.capacity()) {
                        netIn = grow(netIn, engine.getSession().getPacketBufferSize());
                    }
                    if (fill(timeout) < 0) {
                        return -1;
                    }
                }
                case BUFFER_OVERFLOW -> appIn = grow(appIn, engine.getSession().getApplicationBufferSize());
                case CLOSED -> {
                    return -1;
                }
            }
        }
    }

    /** Reads ciphertext into netIn, waiting at most {@code timeout}; -1 at end of stream. */
    private int fill(Duration timeout) throws IOException {
        int n = socket.read(netIn);
        if (n != 0) {
            return n;
        }
        if (readSelector.select(Math.max(1, timeout.toMillis())) == 0) {
            throw new SocketTimeoutException("read on TLS " + describe() + ": nothing within " + timeout.toMillis() + " ms");
        }
        readSelector.selectedKeys().clear();
        n = socket.read(netIn);
        return n;
    }

    @Override
    public int write(ByteBuffer src) throws IOException {
        synchronized (writeLock) {
            if (!open) {
                throw new ClosedChannelException();
            }
            int before = src.remaining();
            try {
                while (src.hasRemaining()) {
                    wrapAndFlush(src, writeTimeout);
                }
            } catch (IOException e) {
                fail(e);
                throw e;
            }
            return before - src.remaining();
        }
    }

    /** Wraps one record of {@code src} (or a handshake message) and writes it all out. */
    private void wrapAndFlush(ByteBuffer src, Duration timeout) throws IOException {
        while (true) {
            netOut.clear();
            SSLEngineResult r = engine.wrap(src, netOut);
            switch (r.getStatus()) {
                case OK, CLOSED -> {
                    netOut.flip();
                    flush(timeout);
                    if (r.getHandshakeStatus() == SSLEngineResult.HandshakeStatus.NEED_TASK) {
                        runTasks();
                    }
                    return;
                }
                case BUFFER_OVERFLOW -> netOut = grow(netOut, engine.getSession().getPacketBufferSize());
                case BUFFER_UNDERFLOW -> throw new SSLException("wrap underflow: " + r);
            }
        }
    }

    private void flush(Duration timeout) throws IOException {
        while (netOut.hasRemaining()) {
            if (socket.write(netOut) == 0) {
                if (writeSelector.select(Math.max(1, timeout.toMillis())) == 0) {
                    throw new SocketTimeoutException("write on TLS " + describe() + ": the peer took nothing within "
                            + timeout.toMillis() + " ms");
                }
                writeSelector.selectedKeys().clear();
            }
        }
    }

    private void runTasks() {
        for (Runnable task; (task = engine.getDelegatedTask()) != null; ) {
            task.run();
        }
    }

    private static ByteBuffer grow(ByteBuffer buffer, int atLeast) {
        ByteBuffer bigger = ByteBuffer.allocate(Math.max(atLeast, buffer.capacity() * 2));
        buffer.flip();
        bigger.put(buffer);
        return bigger;
    }

    private void fail(IOException e) {
        if (failure == null) {
            failure = e;
        }
    }

    private String describe() {
        try {
            return "connection with " + socket.getRemoteAddress();
        } catch (IOException | RuntimeException e) {
            return "connection " + socket;
        }
    }

    @Override
    public boolean isOpen() {
        return open;
    }

    /** Sends close_notify (best effort, within the write deadline) and closes the socket. Idempotent. */
    @Override
    public void close() throws IOException {
        if (!open) {
            return;
        }
        open = false;
        try {
            synchronized (writeLock) {
                engine.closeOutbound();
                wrapAndFlush(NOTHING, writeTimeout);
            }
        } catch (IOException | RuntimeException ignored) {
            // the peer is gone or stalled: closing the socket below is all that is left to do
        } finally {
            readSelector.close();
            writeSelector.close();
            socket.close();
        }
    }

    @Override
    public String toString() {
        return "TLS " + describe();
    }
}

package io.vhostffm.vhost.vhostuser;

import io.vhostffm.vhost.os.DescriptorPoller;
import io.vhostffm.vhost.os.Errno;
import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.FileDescriptor;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.os.UnixSocket;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * One vhost-user connection over a connected AF_UNIX stream socket: whole messages in, whole
 * messages out, descriptors over SCM_RIGHTS. Used by the backend (receiving requests, sending
 * replies) and by a frontend (the other way round); {@code expectReplies} says which.
 *
 * <p>Waiting for the next message has no deadline (a frontend may be idle for as long as its
 * guest runs) but ends at once on {@link #shutdown()} or when the peer goes away; once a header's
 * first byte has come, the rest of the message must follow within the message deadline, or the
 * connection is broken. A peer that closes its end, or dies, is end of stream: {@link #receive}
 * returns null and {@link #endReason()} says why.
 *
 * <p>One thread receives and sends; {@link #shutdown()} may be called from any thread.
 */
public final class VhostUserConnection implements AutoCloseable {
    /** How long the rest of a message may take once its first byte came. */
    public static final Duration DEFAULT_MESSAGE_DEADLINE = Duration.ofSeconds(5);

    private static final ValueLayout.OfInt LE_INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final int ECONNRESET = Errno.number("ECONNRESET").orElseThrow();
    private static final int EMSGSIZE = Errno.number("EMSGSIZE").orElseThrow();

    private final UnixSocket socket;
    private final boolean expectReplies;
    private final Duration messageDeadline;
    private final EventFd wakeup;
    private final DescriptorPoller poller;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment headerBuffer;
    private final MemorySegment payloadBuffer;
    private volatile String endReason;

    private VhostUserConnection(UnixSocket socket, boolean expectReplies, Duration messageDeadline, EventFd wakeup) {
        this.socket = socket;
        this.expectReplies = expectReplies;
        this.messageDeadline = messageDeadline;
        this.wakeup = wakeup;
        this.poller = new DescriptorPoller(List.of(socket.fd(), wakeup.fd()));
        this.headerBuffer = arena.allocate(VhostUserMessage.HEADER_SIZE);
        this.payloadBuffer = arena.allocate(VhostUserMessage.MAX_PAYLOAD);
    }

    /** The backend's end of a connection: it receives requests. Takes ownership of the socket. */
    public static VhostUserConnection backend(UnixSocket socket) throws NativeCallException {
        return open(socket, false, DEFAULT_MESSAGE_DEADLINE);
    }

    /** The frontend's end of a connection: it receives replies. Takes ownership of the socket. */
    public static VhostUserConnection frontend(UnixSocket socket) throws NativeCallException {
        return open(socket, true, DEFAULT_MESSAGE_DEADLINE);
    }

    /** Either end with an explicit message deadline. Takes ownership of the socket. */
    public static VhostUserConnection open(UnixSocket socket, boolean expectReplies, Duration messageDeadline)
            throws NativeCallException {
        Objects.requireNonNull(socket, "socket");
        if (messageDeadline.isNegative() || messageDeadline.isZero()) {
            throw new IllegalArgumentException("message deadline must be positive: " + messageDeadline);
        }
        EventFd wakeup;
        try {
            wakeup = EventFd.create("vhost-user connection shutdown");
        } catch (NativeCallException | RuntimeException e) {
            socket.close();
            throw e;
        }
        return new VhostUserConnection(socket, expectReplies, messageDeadline, wakeup);
    }

    /**
     * Waits for the next whole message and checks its header.
     *
     * @return the message (its descriptors owned by the caller through it), or null at end of
     *     stream: the peer closed or died, or {@link #shutdown()} was called ({@link #endReason()})
     * @throws VhostUserProtocolException for a malformed header, too many descriptors, or a
     *     message cut short or not completed within the message deadline
     */
    public VhostUserMessage receive() throws NativeCallException {
        List<FileDescriptor> fds = new ArrayList<>();
        try {
            long got = read(headerBuffer, VhostUserMessage.HEADER_SIZE, fds, "message", "header", true);
            if (got == 0) {
                return null;
            }
            int code = headerBuffer.get(LE_INT, 0);
            int flags = headerBuffer.get(LE_INT, 4);
            int size = headerBuffer.get(LE_INT, 8);
            VhostUserCodec.checkHeader(code, flags, size, expectReplies);
            if (size > 0 && read(payloadBuffer, size, fds, nameOf(code), "payload", false) < size) {
                throw new VhostUserProtocolException(nameOf(code), "size", "the peer closed the connection after the header, "
                        + "before the " + size + "-byte payload");
            }
            byte[] payload = payloadBuffer.asSlice(0, size).toArray(ValueLayout.JAVA_BYTE);
            VhostUserMessage message = new VhostUserMessage(code, flags, payload, fds);
            fds.clear();
            return message;
        } finally {
            fds.forEach(FileDescriptor::close);
        }
    }

    /**
     * Reads exactly {@code length} bytes into {@code buffer} (descriptors collected), or returns 0
     * at a clean end of stream before the first byte. With {@code idleFirst} (a message's header)
     * the first byte waits without deadline; everything after it within the message deadline.
     * A failure names {@code request} ({@code message} while the header is incomplete, the
     * request once it has come) and {@code what} (header or payload).
     */
    private long read(MemorySegment buffer, int length, List<FileDescriptor> fds, String request, String what,
            boolean idleFirst)
            throws NativeCallException {
        long done = 0;
        long deadline = 0;
        while (done < length) {
            int timeout;
            if (done == 0 && idleFirst) {
                timeout = -1;
            } else {
                if (deadline == 0) {
                    deadline = System.nanoTime() + messageDeadline.toNanos();
                }
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    throw new VhostUserProtocolException(request, what, done + " of " + length + " bytes after "
                            + messageDeadline.toMillis() + " ms; the peer stopped mid-message");
                }
                timeout = (int) Math.max(1, Math.min(Integer.MAX_VALUE, left / 1_000_000));
            }
            int ready = poller.poll(timeout);
            if (endReason != null || (ready > 0 && poller.isReadable(1))) {
                end(endReason != null ? endReason : "shut down");
                if (done > 0) {
                    throw new VhostUserProtocolException(request, what, "connection shut down mid-message");
                }
                return 0;
            }
            if (ready == 0 || !poller.isReadable(0)) {
                continue;
            }
            UnixSocket.Received received;
            try {
                // Descriptors travel with a message's first byte; allow the most any request carries.
                received = socket.receive(buffer.asSlice(done, length - done), VhostUserCodec.MAX_MEMORY_REGIONS);
            } catch (NativeCallException e) {
                if (e.errno() == ECONNRESET) {
                    end("the peer reset the connection");
                    if (done > 0) {
                        throw new VhostUserProtocolException(request, what, "connection reset mid-message");
                    }
                    return 0;
                }
                if (e.errno() == EMSGSIZE) {
                    throw new VhostUserProtocolException(request, "fds", "more than " + VhostUserCodec.MAX_MEMORY_REGIONS
                            + " descriptors in one message (the extra ones were closed)");
                }
                throw e;
            }
            fds.addAll(received.fds());
            if (fds.size() > VhostUserCodec.MAX_MEMORY_REGIONS) {
                throw new VhostUserProtocolException(request, "fds", fds.size() + " descriptors in one message; at most "
                        + VhostUserCodec.MAX_MEMORY_REGIONS);
            }
            if (received.bytes() == 0) {
                end("the peer closed the connection");
                if (done > 0) {
                    throw new VhostUserProtocolException(request, what, done + " of " + length
                            + " bytes, then the peer closed the connection");
                }
                return 0;
            }
            done += received.bytes();
        }
        return done;
    }

    /** Sends a message whole, its descriptors attached (they stay the caller's). */
    public void send(VhostUserMessage message) throws NativeCallException {
        socket.send(message.wireBytes(), message.fds());
    }

    /**
     * Ends the connection from any thread: a {@link #receive} waiting for a message returns null.
     * The socket is closed by {@link #close()}.
     */
    public void shutdown() {
        end("shut down");
        try {
            wakeup.signal();
        } catch (NativeCallException | RuntimeException e) {
            // closed already: nothing waits any more
        }
    }

    private void end(String reason) {
        if (endReason == null) {
            endReason = reason;
        }
    }

    /** Why the connection ended, or null while it is open. */
    public String endReason() {
        return endReason;
    }

    /** The socket (e.g. to tell connections apart in a log). */
    public UnixSocket socket() {
        return socket;
    }

    /** Closes the socket and frees the buffers. Idempotent. */
    @Override
    public synchronized void close() {
        end("closed");
        socket.close();
        poller.close();
        wakeup.close();
        if (arena.scope().isAlive()) {
            arena.close();
        }
    }

    private static String nameOf(int code) {
        VhostUserRequest r = VhostUserRequest.forCode(code);
        return r != null ? r.toString() : "request " + Integer.toUnsignedString(code);
    }

    @Override
    public String toString() {
        return "vhost-user connection " + socket;
    }
}

package io.vhostffm.vhost.os;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import io.vhostffm.vhost.internal.CallState;
import io.vhostffm.vhost.internal.Libc;
import io.vhostffm.vhost.internal.LinuxConstants;
import io.vhostffm.vhost.internal.NativeErrors;
import io.vhostffm.vhost.internal.Structs;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;
import java.net.SocketTimeoutException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * A connected AF_UNIX stream socket that sends bytes together with file descriptors
 * (SCM_RIGHTS): how guest memory (memfds), eventfds and TAP queues move between processes.
 *
 * <p>Received descriptors arrive close-on-exec (MSG_CMSG_CLOEXEC) and are owned by the caller
 * as {@link FileDescriptor}s. A message whose descriptors did not fit (MSG_CTRUNC) is an error,
 * and the ones that did arrive are closed, so nothing leaks. Messages allocate their own small
 * control buffers: this is set-up and migration traffic, not a hot path.
 */
public final class UnixSocket implements AutoCloseable {
    /** The kernel's limit of descriptors in one SCM_RIGHTS message (SCM_MAX_FD). */
    public static final int MAX_FDS_PER_MESSAGE = 253;

    private static final VarHandle MSG_IOV = Structs.field(Structs.MSGHDR, "msg_iov");
    private static final VarHandle MSG_IOVLEN = Structs.field(Structs.MSGHDR, "msg_iovlen");
    private static final VarHandle MSG_CONTROL = Structs.field(Structs.MSGHDR, "msg_control");
    private static final VarHandle MSG_CONTROLLEN = Structs.field(Structs.MSGHDR, "msg_controllen");
    private static final VarHandle MSG_FLAGS = Structs.field(Structs.MSGHDR, "msg_flags");
    private static final VarHandle IOV_BASE = Structs.field(Structs.IOVEC, "iov_base");
    private static final VarHandle IOV_LEN = Structs.field(Structs.IOVEC, "iov_len");
    private static final long CMSG_LEVEL = Structs.offset(Structs.CMSGHDR, "cmsg_level");
    private static final long CMSG_TYPE = Structs.offset(Structs.CMSGHDR, "cmsg_type");
    /** CMSG_DATA: the data follows the header, which is already 8-byte aligned. */
    private static final long CMSG_HEADER = Structs.CMSGHDR.byteSize();

    private static final int EAGAIN = Errno.number("EAGAIN").orElseThrow();

    private final FileDescriptor fd;

    private UnixSocket(FileDescriptor fd) {
        this.fd = fd;
    }

    /** Two connected ends of a new socketpair(AF_UNIX, SOCK_STREAM). */
    public record Pair(UnixSocket first, UnixSocket second) implements AutoCloseable {
        @Override
        public void close() {
            first.close();
            second.close();
        }
    }

    /** Bytes received and the descriptors that came with them (owned by the caller). */
    public record Received(long bytes, List<FileDescriptor> fds) {}

    /** A new connected pair. */
    public static Pair pair() throws NativeCallException {
        CallState s = CallState.current();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment sv = arena.allocate(JAVA_INT, 2);
            if (Libc.socketpair(s, LinuxConstants.AF_UNIX, LinuxConstants.SOCK_STREAM | LinuxConstants.SOCK_CLOEXEC, 0, sv) < 0) {
                throw NativeErrors.failure("socketpair", "AF_UNIX, SOCK_STREAM", s.errno());
            }
            return new Pair(new UnixSocket(FileDescriptor.adopt(sv.getAtIndex(JAVA_INT, 0), "socketpair end 0")),
                    new UnixSocket(FileDescriptor.adopt(sv.getAtIndex(JAVA_INT, 1), "socketpair end 1")));
        }
    }

    /**
     * Wraps a connected AF_UNIX socket (e.g. one inherited or received); takes ownership.
     *
     * @throws IllegalArgumentException when the descriptor is not an AF_UNIX socket (it is then not closed)
     */
    public static UnixSocket wrap(FileDescriptor fd) throws NativeCallException {
        int n = fd.acquire();
        try (Arena arena = Arena.ofConfined()) {
            CallState s = CallState.current();
            MemorySegment value = arena.allocate(JAVA_INT);
            MemorySegment length = arena.allocate(JAVA_INT);
            length.set(JAVA_INT, 0, 4);
            NativeErrors.check(Libc.getsockopt(s, n, LinuxConstants.SOL_SOCKET, LinuxConstants.SO_DOMAIN, value, length),
                    "getsockopt(SO_DOMAIN)", fd, s);
            if (value.get(JAVA_INT, 0) != LinuxConstants.AF_UNIX) {
                throw new IllegalArgumentException(fd + " is not an AF_UNIX socket (domain " + value.get(JAVA_INT, 0) + ")");
            }
        } finally {
            fd.release();
        }
        return new UnixSocket(fd);
    }

    /**
     * Connects a new AF_UNIX stream socket to a listening path, and refuses a listener that does
     * not run as our own user ({@link SocketPolicy#ownerOnly()}).
     *
     * @throws PeerRefusedException when the listening process is another user's (nothing was sent)
     */
    public static UnixSocket connect(Path path) throws IOException {
        return connect(path, SocketPolicy.ownerOnly());
    }

    /**
     * Connects a new AF_UNIX stream socket to a listening path, then checks who listens there
     * (SO_PEERCRED gives the credentials of the process that called listen) against {@code policy}
     * before the caller can send anything: a path is only a name, and whoever could create it
     * first would otherwise receive what we send.
     *
     * @throws PeerRefusedException when the listener's uid is not allowed (the socket is closed)
     */
    public static UnixSocket connect(Path path, SocketPolicy policy) throws IOException {
        UnixSocket socket = new UnixSocket(UnixAddress.streamSocketAt(path, "unix socket to " + path, "connect", Libc::connect));
        policy.admit(socket);
        return socket;
    }

    /**
     * The credentials of the process at the other end (getsockopt SO_PEERCRED): for an accepted
     * socket, the process that connected; for a connected one, the process that listened; for a
     * {@link #pair()}, this process.
     */
    public PeerCredentials peerCredentials() throws NativeCallException {
        int n = fd.acquire();
        try (Arena arena = Arena.ofConfined()) {
            CallState s = CallState.current();
            MemorySegment ucred = arena.allocate(Structs.UCRED);
            MemorySegment length = arena.allocate(JAVA_INT);
            length.set(JAVA_INT, 0, (int) Structs.UCRED.byteSize());
            NativeErrors.check(Libc.getsockopt(s, n, LinuxConstants.SOL_SOCKET, LinuxConstants.SO_PEERCRED, ucred, length),
                    "getsockopt(SO_PEERCRED)", fd, s);
            return new PeerCredentials(ucred.get(JAVA_INT, Structs.offset(Structs.UCRED, "pid")),
                    ucred.get(JAVA_INT, Structs.offset(Structs.UCRED, "uid")),
                    ucred.get(JAVA_INT, Structs.offset(Structs.UCRED, "gid")));
        } finally {
            fd.release();
        }
    }


    /** The socket's descriptor. */
    public FileDescriptor fd() {
        return fd;
    }

    /**
     * Sends all of {@code bytes} (native memory), the descriptors attached to the first byte. The descriptors
     * stay owned by the caller (the receiver gets its own copies).
     *
     * @throws IllegalArgumentException when descriptors come with no byte to carry them, or too many
     */
    public void send(MemorySegment bytes, List<FileDescriptor> fds) throws NativeCallException {
        if (!fds.isEmpty() && bytes.byteSize() == 0) {
            throw new IllegalArgumentException("descriptors need at least one byte to travel with on a stream socket");
        }
        if (fds.size() > MAX_FDS_PER_MESSAGE) {
            throw new IllegalArgumentException(fds.size() + " descriptors in one message; the kernel takes at most " + MAX_FDS_PER_MESSAGE);
        }
        if (bytes.byteSize() == 0) {
            return; // nothing to send, and no descriptors (checked above)
        }
        int n = fd.acquire();
        int acquired = 0;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment control = MemorySegment.NULL;
            long controlLength = 0;
            if (!fds.isEmpty()) {
                controlLength = cmsgSpace(fds.size());
                control = arena.allocate(controlLength, 8);
                control.set(JAVA_LONG, 0, CMSG_HEADER + 4L * fds.size()); // CMSG_LEN
                control.set(JAVA_INT, CMSG_LEVEL, LinuxConstants.SOL_SOCKET);
                control.set(JAVA_INT, CMSG_TYPE, LinuxConstants.SCM_RIGHTS);
                for (FileDescriptor passed : fds) {
                    control.set(JAVA_INT, CMSG_HEADER + 4L * acquired, passed.acquire());
                    acquired++;
                }
            }
            MemorySegment iov = arena.allocate(Structs.IOVEC);
            MemorySegment msg = arena.allocate(Structs.MSGHDR);
            long sent = 0;
            CallState s = CallState.current();
            while (sent < bytes.byteSize()) {
                IOV_BASE.set(iov, bytes.asSlice(sent));
                IOV_LEN.set(iov, bytes.byteSize() - sent);
                MSG_IOV.set(msg, iov);
                MSG_IOVLEN.set(msg, 1L);
                // descriptors ride with the first chunk only
                MSG_CONTROL.set(msg, sent == 0 ? control : MemorySegment.NULL);
                MSG_CONTROLLEN.set(msg, sent == 0 ? controlLength : 0L);
                long result = Libc.sendmsg(s, n, msg, LinuxConstants.MSG_NOSIGNAL);
                if (result < 0) {
                    throw NativeErrors.failure("sendmsg", fd, s.errno());
                }
                sent += result;
            }
        } finally {
            for (int i = 0; i < acquired; i++) {
                fds.get(i).release();
            }
            fd.release();
        }
    }

    /** Sends bytes with no descriptors. */
    public void send(byte[] bytes) throws NativeCallException {
        send(bytes, List.of());
    }

    /** Sends bytes with descriptors attached. */
    public void send(byte[] bytes, List<FileDescriptor> fds) throws NativeCallException {
        try (Arena arena = Arena.ofConfined()) {
            // a heap segment cannot be passed to native code: copy into native memory
            MemorySegment copy = arena.allocate(Math.max(1, bytes.length));
            MemorySegment.copy(MemorySegment.ofArray(bytes), 0, copy, 0, bytes.length);
            send(copy.asSlice(0, bytes.length), fds);
        }
    }

    /**
     * Receives up to {@code buffer.byteSize()} bytes and up to {@code maxFds} descriptors.
     * Returns 0 bytes at end of stream.
     *
     * @throws NativeCallException when recvmsg fails, or with EMSGSIZE-like detail when more
     *         descriptors came than {@code maxFds} (MSG_CTRUNC; those that arrived are closed)
     */
    public Received receive(MemorySegment buffer, int maxFds) throws NativeCallException {
        if (maxFds < 0 || maxFds > MAX_FDS_PER_MESSAGE) {
            throw new IllegalArgumentException("maxFds out of range: " + maxFds);
        }
        int n = fd.acquire();
        try (Arena arena = Arena.ofConfined()) {
            long controlLength = maxFds == 0 ? 0 : cmsgSpace(maxFds);
            MemorySegment control = maxFds == 0 ? MemorySegment.NULL : arena.allocate(controlLength, 8);
            MemorySegment iov = arena.allocate(Structs.IOVEC);
            MemorySegment msg = arena.allocate(Structs.MSGHDR);
            IOV_BASE.set(iov, buffer);
            IOV_LEN.set(iov, buffer.byteSize());
            MSG_IOV.set(msg, iov);
            MSG_IOVLEN.set(msg, 1L);
            MSG_CONTROL.set(msg, control);
            MSG_CONTROLLEN.set(msg, controlLength);
            CallState s = CallState.current();
            long received = Libc.recvmsg(s, n, msg, LinuxConstants.MSG_CMSG_CLOEXEC);
            if (received < 0) {
                throw NativeErrors.failure("recvmsg", fd, s.errno());
            }
            List<FileDescriptor> fds = collectRights(control, (long) MSG_CONTROLLEN.get(msg));
            if (((int) MSG_FLAGS.get(msg) & LinuxConstants.MSG_CTRUNC) != 0) {
                fds.forEach(FileDescriptor::close);
                throw NativeErrors.failure("recvmsg", fd, Errno.number("EMSGSIZE").orElseThrow(),
                        "more descriptors arrived than the " + maxFds + " expected (MSG_CTRUNC); the extra ones were discarded");
            }
            return new Received(received, fds);
        } finally {
            fd.release();
        }
    }

    /** The descriptors in every SCM_RIGHTS control message of a received control buffer. */
    private List<FileDescriptor> collectRights(MemorySegment control, long controlLength) {
        List<FileDescriptor> fds = new ArrayList<>();
        long offset = 0;
        while (offset + CMSG_HEADER <= controlLength) {
            long length = control.get(JAVA_LONG, offset);
            if (length < CMSG_HEADER || offset + length > controlLength) {
                break;
            }
            if (control.get(JAVA_INT, offset + CMSG_LEVEL) == LinuxConstants.SOL_SOCKET
                    && control.get(JAVA_INT, offset + CMSG_TYPE) == LinuxConstants.SCM_RIGHTS) {
                for (long at = offset + CMSG_HEADER; at + 4 <= offset + length; at += 4) {
                    fds.add(FileDescriptor.adopt(control.get(JAVA_INT, at), "fd received over " + fd.description()));
                }
            }
            offset += (length + 7) & -8L; // CMSG_NXTHDR
        }
        return fds;
    }

    /**
     * As {@link #receive(MemorySegment, int)}, waiting at most {@code timeout} for the first byte.
     *
     * @throws SocketTimeoutException when nothing arrived in time (naming the socket and the deadline)
     */
    public Received receive(MemorySegment buffer, int maxFds, Duration timeout) throws IOException {
        if (!DescriptorPoller.awaitReadable(fd, timeout)) {
            throw timedOut("receive", timeout);
        }
        return receive(buffer, maxFds);
    }

    /**
     * Reads up to {@code buffer.byteSize()} bytes, waiting at most {@code timeout} for them: a
     * non-blocking recv first, and only when nothing is there a poll, then recv again. Bytes that
     * already arrived (the rest of a message whose first part woke the reader) cost one system
     * call, not two: inside a migration's downtime each call is counted.
     *
     * @return the bytes read; 0 when the peer closed its end
     * @throws SocketTimeoutException when nothing arrived in time
     * @throws NativeCallException e.g. ECONNRESET
     */
    public long read(MemorySegment buffer, Duration timeout) throws IOException {
        if (buffer.byteSize() == 0) {
            return 0;
        }
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            int n = fd.acquire();
            try {
                CallState s = CallState.current();
                long got = Libc.recv(s, n, buffer, buffer.byteSize(), LinuxConstants.MSG_DONTWAIT);
                if (got >= 0) {
                    return got;
                }
                if (s.errno() != EAGAIN) {
                    throw NativeErrors.failure("recv", fd, s.errno());
                }
            } finally {
                fd.release();
            }
            if (!DescriptorPoller.awaitReadable(fd, Duration.ofNanos(Math.max(0, deadline - System.nanoTime())))) {
                throw timedOut("read", timeout);
            }
        }
    }

    /**
     * Writes some of {@code bytes} (at least one), waiting at most {@code timeout} for room in the
     * socket's buffer: a non-blocking send first (never SIGPIPE), and only when the buffer is full
     * a poll for room, then send again. With room, as almost always, one system call.
     *
     * @return the bytes written
     * @throws SocketTimeoutException when the peer took nothing in time (it stalled)
     * @throws NativeCallException e.g. EPIPE when the peer is gone
     */
    public long write(MemorySegment bytes, Duration timeout) throws IOException {
        if (bytes.byteSize() == 0) {
            return 0;
        }
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            int n = fd.acquire();
            try {
                CallState s = CallState.current();
                long sent = Libc.send(s, n, bytes, bytes.byteSize(), LinuxConstants.MSG_DONTWAIT | LinuxConstants.MSG_NOSIGNAL);
                if (sent >= 0) {
                    return sent;
                }
                if (s.errno() != EAGAIN) {
                    throw NativeErrors.failure("send", fd, s.errno());
                }
            } finally {
                fd.release();
            }
            if (!DescriptorPoller.awaitWritable(fd, Duration.ofNanos(Math.max(0, deadline - System.nanoTime())))) {
                throw timedOut("write", timeout);
            }
        }
    }

    /**
     * shutdown(SHUT_RDWR): the connection ends in both directions at once, whoever else holds the
     * descriptor; the peer reads end of stream, its writes fail with EPIPE. The descriptor stays
     * open until {@link #close()}.
     */
    public void shutdown() throws NativeCallException {
        int n = fd.acquire();
        try {
            CallState s = CallState.current();
            NativeErrors.check(Libc.shutdown(s, n, LinuxConstants.SHUT_RDWR), "shutdown", fd, s);
        } finally {
            fd.release();
        }
    }

    private SocketTimeoutException timedOut(String what, Duration timeout) {
        return new SocketTimeoutException(what + " on " + fd.description() + " (fd " + fd.number() + "): nothing within "
                + timeout.toMillis() + " ms");
    }

    /** CMSG_SPACE for {@code count} ints. */
    private static long cmsgSpace(int count) {
        return CMSG_HEADER + ((4L * count + 7) & -8L);
    }

    /** Closes the socket (once). */
    @Override
    public void close() {
        fd.close();
    }

    @Override
    public String toString() {
        return fd.toString();
    }
}

package io.vhostffm.vhost.os;

import io.vhostffm.vhost.internal.CallState;
import io.vhostffm.vhost.internal.Libc;
import io.vhostffm.vhost.internal.LinuxConstants;
import io.vhostffm.vhost.internal.NativeErrors;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * Owns one Linux file descriptor and closes it exactly once, from whichever thread.
 *
 * <p>State is one int: bit 0 says "close requested", the rest counts calls in flight
 * ({@link #acquire}/{@link #release} pairs). {@link #close} sets the bit; the descriptor is
 * closed by close itself when nothing is in flight, else by the last {@link #release}. So a call
 * in progress never sees its number closed and reused under it, a second close does nothing,
 * and a use after close throws {@link DescriptorClosedException} instead of touching whatever
 * file now has that number. All transitions are CAS on the int: no lock, no allocation.
 *
 * <p>Every descriptor knows what it is ({@code /dev/vhost-net}, {@code eventfd},
 * {@code memfd guest-ram-0}...), and its {@link #toString()} is what error messages show.
 */
public final class FileDescriptor implements AutoCloseable {
    private static final int CLOSE_REQUESTED = 1;
    private static final int ONE_USE = 2;
    private static final VarHandle STATE;

    static {
        try {
            STATE = MethodHandles.lookup().findVarHandle(FileDescriptor.class, "state", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private final int fd;
    private final String description;
    @SuppressWarnings("unused") // accessed through STATE
    private volatile int state;

    private FileDescriptor(int fd, String description) {
        if (fd < 0) {
            throw new IllegalArgumentException("not a descriptor: " + fd);
        }
        this.fd = fd;
        this.description = description;
    }

    /**
     * Takes ownership of an open descriptor: from now on only this object closes it.
     *
     * @param description what the descriptor is, for messages (e.g. {@code /dev/net/tun})
     */
    public static FileDescriptor adopt(int fd, String description) {
        return new FileDescriptor(fd, description);
    }

    /** Opens a path read-write, close-on-exec. */
    public static FileDescriptor openReadWrite(String path) throws NativeCallException {
        return open(path, LinuxConstants.O_RDWR | LinuxConstants.O_CLOEXEC);
    }

    /** Opens a path read-only, close-on-exec. */
    public static FileDescriptor openReadOnly(String path) throws NativeCallException {
        return open(path, LinuxConstants.O_RDONLY | LinuxConstants.O_CLOEXEC);
    }

    /** Opens a path with open(2) flags (see {@code <fcntl.h>}). */
    public static FileDescriptor open(String path, int flags) throws NativeCallException {
        try (Arena arena = Arena.ofConfined()) {
            CallState s = CallState.current();
            int fd = Libc.open(s, arena.allocateFrom(path), flags, 0);
            if (fd < 0) {
                throw NativeErrors.failure("open", path, s.errno());
            }
            return new FileDescriptor(fd, path);
        }
    }

    /**
     * Marks a call in flight and returns the descriptor number to use in it; the number stays
     * valid until the matching {@link #release}. Always pair: {@code int n = fd.acquire(); try
     * {...} finally { fd.release(); }}.
     *
     * @throws DescriptorClosedException when close was requested
     */
    public int acquire() {
        for (;;) {
            int s = (int) STATE.getVolatile(this);
            if ((s & CLOSE_REQUESTED) != 0) {
                throw new DescriptorClosedException(description, fd);
            }
            if (STATE.compareAndSet(this, s, s + ONE_USE)) {
                return fd;
            }
        }
    }

    /** Ends a call begun with {@link #acquire}; closes the descriptor if close is pending. */
    public void release() {
        int after = (int) STATE.getAndAdd(this, -ONE_USE) - ONE_USE;
        if (after == CLOSE_REQUESTED) {
            closeNow();
        } else if (after < 0) {
            throw new IllegalStateException("release without acquire on " + this);
        }
    }

    /**
     * The descriptor number, for a caller that knows the descriptor stays open (e.g. to put it
     * in a message or struct while holding this object). Prefer {@link #acquire}.
     *
     * @throws DescriptorClosedException when close was requested
     */
    public int number() {
        if (((int) STATE.getVolatile(this) & CLOSE_REQUESTED) != 0) {
            throw new DescriptorClosedException(description, fd);
        }
        return fd;
    }

    /** Whether close has not been requested yet. */
    public boolean isOpen() {
        return ((int) STATE.getVolatile(this) & CLOSE_REQUESTED) == 0;
    }

    /** What the descriptor is, e.g. {@code /dev/vhost-net}. */
    public String description() {
        return description;
    }

    /**
     * Closes the descriptor; later calls do nothing. When another thread is inside a call on
     * it, the descriptor is closed when that call ends.
     *
     * @throws UncheckedIOException when close(2) itself reports an error other than EINTR
     *         (after which Linux has closed the descriptor anyway)
     */
    @Override
    public void close() {
        for (;;) {
            int s = (int) STATE.getVolatile(this);
            if ((s & CLOSE_REQUESTED) != 0) {
                return;
            }
            if (STATE.compareAndSet(this, s, s | CLOSE_REQUESTED)) {
                if (s == 0) {
                    closeNow();
                }
                return;
            }
        }
    }

    private void closeNow() {
        CallState s = CallState.current();
        if (Libc.close(s, fd) < 0) {
            int errno = s.errno();
            if (errno != Errno.number("EINTR").orElseThrow()) {
                throw new UncheckedIOException(NativeErrors.failure("close", this, errno));
            }
        }
    }

    /** A new descriptor for the same open file (fcntl F_DUPFD_CLOEXEC), owned separately. */
    public FileDescriptor duplicate(String newDescription) throws NativeCallException {
        int n = acquire();
        try {
            CallState s = CallState.current();
            int copy = NativeErrors.check(Libc.fcntl(s, n, LinuxConstants.F_DUPFD_CLOEXEC, 0), "fcntl(F_DUPFD_CLOEXEC)", this, s);
            return new FileDescriptor(copy, newDescription);
        } finally {
            release();
        }
    }

    /** Whether O_NONBLOCK is set. */
    public boolean isNonBlocking() throws NativeCallException {
        return (getFlags() & LinuxConstants.O_NONBLOCK) != 0;
    }

    /** Sets or clears O_NONBLOCK. */
    public void setNonBlocking(boolean nonBlocking) throws NativeCallException {
        int flags = getFlags();
        int wanted = nonBlocking ? flags | LinuxConstants.O_NONBLOCK : flags & ~LinuxConstants.O_NONBLOCK;
        int n = acquire();
        try {
            CallState s = CallState.current();
            NativeErrors.check(Libc.fcntl(s, n, LinuxConstants.F_SETFL, wanted), "fcntl(F_SETFL)", this, s);
        } finally {
            release();
        }
    }

    /** Whether FD_CLOEXEC is set. */
    public boolean isCloseOnExec() throws NativeCallException {
        int n = acquire();
        try {
            CallState s = CallState.current();
            return (NativeErrors.check(Libc.fcntl(s, n, LinuxConstants.F_GETFD, 0), "fcntl(F_GETFD)", this, s)
                    & LinuxConstants.FD_CLOEXEC) != 0;
        } finally {
            release();
        }
    }

    private int getFlags() throws NativeCallException {
        int n = acquire();
        try {
            CallState s = CallState.current();
            return NativeErrors.check(Libc.fcntl(s, n, LinuxConstants.F_GETFL, 0), "fcntl(F_GETFL)", this, s);
        } finally {
            release();
        }
    }

    /** read(2) into a segment; returns the byte count (0 at end of file). */
    public long read(MemorySegment buffer) throws NativeCallException {
        int n = acquire();
        try {
            CallState s = CallState.current();
            return NativeErrors.check(Libc.read(s, n, buffer, buffer.byteSize()), "read", this, s);
        } finally {
            release();
        }
    }

    /** write(2) from a segment; returns the byte count written. */
    public long write(MemorySegment buffer) throws NativeCallException {
        int n = acquire();
        try {
            CallState s = CallState.current();
            return NativeErrors.check(Libc.write(s, n, buffer, buffer.byteSize()), "write", this, s);
        } finally {
            release();
        }
    }

    /** readv(2) into {@code count} {@code struct iovec}s at {@code iovecs}. */
    public long readv(MemorySegment iovecs, int count) throws NativeCallException {
        int n = acquire();
        try {
            CallState s = CallState.current();
            return NativeErrors.check(Libc.readv(s, n, iovecs, count), "readv", this, s);
        } finally {
            release();
        }
    }

    /** writev(2) from {@code count} {@code struct iovec}s at {@code iovecs}. */
    public long writev(MemorySegment iovecs, int count) throws NativeCallException {
        int n = acquire();
        try {
            CallState s = CallState.current();
            return NativeErrors.check(Libc.writev(s, n, iovecs, count), "writev", this, s);
        } finally {
            release();
        }
    }

    /** {@code description (fd N)}, plus {@code closed} once closed. */
    @Override
    public String toString() {
        return description + " (fd " + fd + (isOpen() ? ")" : ", closed)");
    }
}

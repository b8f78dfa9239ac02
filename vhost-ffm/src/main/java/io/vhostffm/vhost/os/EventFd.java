package io.vhostffm.vhost.os;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import io.vhostffm.vhost.internal.CallState;
import io.vhostffm.vhost.internal.Libc;
import io.vhostffm.vhost.internal.LinuxConstants;
import io.vhostffm.vhost.internal.NativeErrors;
import io.vhostffm.vhost.internal.Structs;

/**
 * A Linux eventfd: vhost's kick (guest to device) and call (device to guest) notifications.
 * Non-blocking and close-on-exec. {@link #signal} and {@link #consume} allocate nothing: the
 * 8-byte counter goes through the calling thread's scratch word, so any thread may call them.
 */
public final class EventFd implements AutoCloseable {
    private static final int EAGAIN = Errno.number("EAGAIN").orElseThrow();
    private static final int EINTR = Errno.number("EINTR").orElseThrow();
    private static final long POLLFD_EVENTS = Structs.offset(Structs.POLLFD, "events");
    private static final long POLLFD_REVENTS = Structs.offset(Structs.POLLFD, "revents");

    private final FileDescriptor fd;

    private EventFd(FileDescriptor fd) {
        this.fd = fd;
    }

    /** A new eventfd with counter 0. */
    public static EventFd create() throws NativeCallException {
        return create("eventfd");
    }

    /** A new eventfd with counter 0, described as {@code description} in messages. */
    public static EventFd create(String description) throws NativeCallException {
        CallState s = CallState.current();
        int n = Libc.eventfd(s, 0, LinuxConstants.EFD_CLOEXEC | LinuxConstants.EFD_NONBLOCK);
        if (n < 0) {
            throw NativeErrors.failure("eventfd", description, s.errno());
        }
        return new EventFd(FileDescriptor.adopt(n, description));
    }

    /** Wraps a received eventfd descriptor (e.g. passed over SCM_RIGHTS); takes ownership. */
    public static EventFd wrap(FileDescriptor fd) {
        return new EventFd(fd);
    }

    /** The descriptor, e.g. to hand to VHOST_SET_VRING_KICK. */
    public FileDescriptor fd() {
        return fd;
    }

    /** Adds 1 to the counter, waking a poller. */
    public void signal() throws NativeCallException {
        add(1);
    }

    /** Adds {@code value} (1 to 2^64-2) to the counter. */
    public void add(long value) throws NativeCallException {
        int n = fd.acquire();
        try {
            CallState s = CallState.current();
            s.scratch.set(JAVA_LONG, 0, value);
            if (Libc.write(s, n, s.scratch, 8) < 0) {
                throw NativeErrors.failure("write", fd, s.errno());
            }
        } finally {
            fd.release();
        }
    }

    /** Reads and resets the counter; 0 when it was 0 (never blocks). */
    public long consume() throws NativeCallException {
        int n = fd.acquire();
        try {
            CallState s = CallState.current();
            if (Libc.read(s, n, s.scratch, 8) < 0) {
                int errno = s.errno();
                if (errno == EAGAIN) {
                    return 0;
                }
                throw NativeErrors.failure("read", fd, errno);
            }
            return s.scratch.get(JAVA_LONG, 0);
        } finally {
            fd.release();
        }
    }

    /**
     * Waits up to {@code timeoutMillis} (0: do not wait, negative: forever) for the counter to
     * become non-zero; does not consume it.
     *
     * @return true when signalled, false on timeout or when a signal interrupted the wait
     */
    public boolean poll(int timeoutMillis) throws NativeCallException {
        int n = fd.acquire();
        try {
            CallState s = CallState.current();
            s.pollfd.set(JAVA_INT, 0, n);
            s.pollfd.set(JAVA_SHORT, POLLFD_EVENTS, LinuxConstants.POLLIN);
            s.pollfd.set(JAVA_SHORT, POLLFD_REVENTS, (short) 0);
            int ready = Libc.poll(s, s.pollfd, 1, timeoutMillis);
            if (ready < 0) {
                int errno = s.errno();
                if (errno == EINTR) {
                    return false;
                }
                throw NativeErrors.failure("poll", fd, errno);
            }
            return ready > 0 && (s.pollfd.get(JAVA_SHORT, POLLFD_REVENTS) & LinuxConstants.POLLIN) != 0;
        } finally {
            fd.release();
        }
    }

    /** Closes the descriptor (once; later calls do nothing). */
    @Override
    public void close() {
        fd.close();
    }

    @Override
    public String toString() {
        return fd.toString();
    }
}

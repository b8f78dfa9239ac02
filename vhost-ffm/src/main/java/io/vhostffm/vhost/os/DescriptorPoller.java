package io.vhostffm.vhost.os;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import io.vhostffm.vhost.internal.CallState;
import io.vhostffm.vhost.internal.Libc;
import io.vhostffm.vhost.internal.LinuxConstants;
import io.vhostffm.vhost.internal.NativeErrors;
import io.vhostffm.vhost.internal.Structs;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.List;

/**
 * poll(2) over a fixed set of descriptors for readability (POLLIN): a device thread waiting for a
 * kick or a stop request, a watcher waiting on several ring-error eventfds. The {@code struct
 * pollfd} array is allocated once; {@link #poll} allocates nothing.
 *
 * <p>Used by one thread at a time (the array is this object's). The descriptors stay owned by
 * the caller; each poll holds them open for its duration.
 */
public final class DescriptorPoller implements AutoCloseable {
    private static final int EINTR = Errno.number("EINTR").orElseThrow();
    private static final long POLLFD_SIZE = Structs.POLLFD.byteSize();
    private static final long EVENTS = Structs.offset(Structs.POLLFD, "events");
    private static final long REVENTS = Structs.offset(Structs.POLLFD, "revents");
    private static final short ERROR_EVENTS = (short) (LinuxConstants.POLLERR | LinuxConstants.POLLHUP | LinuxConstants.POLLNVAL);

    private final List<FileDescriptor> fds;
    private final Arena arena;
    private final MemorySegment pollfds;

    /** A poller for these descriptors, index {@code i} in {@link #isReadable(int)} being {@code fds.get(i)}. */
    public DescriptorPoller(List<FileDescriptor> fds) {
        if (fds.isEmpty()) {
            throw new IllegalArgumentException("nothing to poll");
        }
        this.fds = List.copyOf(fds);
        this.arena = Arena.ofShared();
        this.pollfds = arena.allocate(POLLFD_SIZE * fds.size(), 8);
    }

    /**
     * Waits up to {@code timeoutMillis} (negative: forever) until one descriptor is readable.
     *
     * @return how many are readable (or in error); 0 on timeout or when a signal interrupted
     */
    public int poll(int timeoutMillis) throws NativeCallException {
        int acquired = 0;
        try {
            for (FileDescriptor fd : fds) {
                long at = acquired * POLLFD_SIZE;
                pollfds.set(JAVA_INT, at, fd.acquire());
                acquired++;
                pollfds.set(JAVA_SHORT, at + EVENTS, LinuxConstants.POLLIN);
                pollfds.set(JAVA_SHORT, at + REVENTS, (short) 0);
            }
            CallState s = CallState.current();
            int ready = Libc.poll(s, pollfds, fds.size(), timeoutMillis);
            if (ready < 0) {
                int errno = s.errno();
                if (errno == EINTR) {
                    return 0;
                }
                throw NativeErrors.failure("poll", fds.size() + " descriptors, first " + fds.get(0), errno);
            }
            return ready;
        } finally {
            for (int i = 0; i < acquired; i++) {
                fds.get(i).release();
            }
        }
    }

    /** After {@link #poll}: whether descriptor {@code i} is readable (or in error: a read will say why). */
    public boolean isReadable(int i) {
        short revents = pollfds.get(JAVA_SHORT, i * POLLFD_SIZE + REVENTS);
        return (revents & (LinuxConstants.POLLIN | ERROR_EVENTS)) != 0;
    }

    /**
     * Waits up to {@code timeout} until {@code fd} is readable (POLLIN), or in error or hung up (a
     * read then says which): the deadline of one blocking read. A signal does not shorten the
     * wait; the remaining time is waited again.
     *
     * @return false when the deadline passed first
     */
    public static boolean awaitReadable(FileDescriptor fd, Duration timeout) throws NativeCallException {
        return awaitOne(fd, LinuxConstants.POLLIN, timeout);
    }

    /**
     * As {@link #awaitReadable}, for room to write (POLLOUT), or an error or hang-up (a write then
     * says which).
     */
    public static boolean awaitWritable(FileDescriptor fd, Duration timeout) throws NativeCallException {
        return awaitOne(fd, LinuxConstants.POLLOUT, timeout);
    }

    private static boolean awaitOne(FileDescriptor fd, short events, Duration timeout) throws NativeCallException {
        long deadline = System.nanoTime() + timeout.toNanos();
        int n = fd.acquire();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment pollfd = arena.allocate(POLLFD_SIZE, 8);
            CallState s = CallState.current();
            while (true) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    return false;
                }
                pollfd.set(JAVA_INT, 0, n);
                pollfd.set(JAVA_SHORT, EVENTS, events);
                pollfd.set(JAVA_SHORT, REVENTS, (short) 0);
                // round up: a wait of 0 ms would spin until the deadline
                int millis = (int) Math.min(Integer.MAX_VALUE, (left + 999_999) / 1_000_000);
                int ready = Libc.poll(s, pollfd, 1, millis);
                if (ready > 0) {
                    return true;
                }
                if (ready < 0 && s.errno() != EINTR) {
                    throw NativeErrors.failure("poll", fd, s.errno());
                }
            }
        } finally {
            fd.release();
        }
    }

    /** Frees the pollfd array. */
    @Override
    public void close() {
        if (arena.scope().isAlive()) {
            arena.close();
        }
    }
}

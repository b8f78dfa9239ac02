package io.vhostffm.vhost.internal;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import io.vhostffm.vhost.os.FileDescriptor;
import io.vhostffm.vhost.os.IoctlEvent;
import io.vhostffm.vhost.os.IoctlObserver;
import io.vhostffm.vhost.os.IoctlRequest;
import io.vhostffm.vhost.os.NativeCallException;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.lang.foreign.Arena;

/**
 * Makes an ioctl on an owned descriptor: holds the descriptor for the duration of the call,
 * picks the pointer or integer downcall by the request's {@link IoctlRequest.Argument} kind,
 * passes the observer seam, and on failure throws through {@link NativeErrors} with the
 * argument decoded (only then: the success path builds no string and allocates nothing).
 */
public final class Ioctls {
    private Ioctls() {}

    /** ioctl with a pointer argument (or none: pass {@link MemorySegment#NULL}). */
    public static int call(FileDescriptor fd, IoctlRequest request, MemorySegment argument, IoctlObserver observer)
            throws NativeCallException {
        return call(fd, request, argument, observer, 0);
    }

    /**
     * As {@link #call(FileDescriptor, IoctlRequest, MemorySegment, IoctlObserver)}, but a failure
     * with errno {@code answerErrno} is an answer, not an error: it returns {@code -answerErrno}
     * and builds no exception. For requests whose refusal states a fact, such as TUNSETQUEUE's
     * EINVAL for a queue already attached (or detached), asked at a switchover where an
     * exception's cost would be downtime.
     */
    public static int callAnswering(FileDescriptor fd, IoctlRequest request, MemorySegment argument,
                                    IoctlObserver observer, int answerErrno) throws NativeCallException {
        if (answerErrno <= 0) {
            throw new IllegalArgumentException("answerErrno must be an errno value, not " + answerErrno);
        }
        return call(fd, request, argument, observer, answerErrno);
    }

    private static int call(FileDescriptor fd, IoctlRequest request, MemorySegment argument, IoctlObserver observer,
                            int answerErrno) throws NativeCallException {
        if (observer != null) {
            observer.beforeIoctl(request, argument);
        }
        int n = fd.acquire();
        try {
            CallState s = CallState.current();
            IoctlEvent event = new IoctlEvent(); // scalar-replaced by the JIT: no allocation without a recording
            event.begin();
            int result = switch (request.argument()) {
                case POINTER -> Libc.ioctl(s, n, request.number(), argument);
                case NONE -> Libc.ioctl(s, n, request.number(), 0L);
                case VALUE -> throw new IllegalArgumentException(request + " takes its argument by value");
            };
            int errno = result < 0 ? s.errno() : 0;
            event.end();
            if (event.shouldCommit()) {
                event.request = request.name();
                event.fd = n;
                event.result = result;
                event.errno = errno;
                event.commit();
            }
            if (observer != null) {
                observer.afterIoctl(request, argument, result, errno);
            }
            if (result < 0) {
                if (errno == answerErrno) {
                    return -errno;
                }
                throw NativeErrors.ioctlFailure(request, fd, errno, describe(request, argument));
            }
            return result;
        } finally {
            fd.release();
        }
    }

    /** ioctl with an integer argument passed by value. */
    public static int callWithValue(FileDescriptor fd, IoctlRequest request, long value) throws NativeCallException {
        if (request.argument() != IoctlRequest.Argument.VALUE) {
            throw new IllegalArgumentException(request + " does not take its argument by value");
        }
        int n = fd.acquire();
        try {
            CallState s = CallState.current();
            int result = Libc.ioctl(s, n, request.number(), value);
            if (result < 0) {
                throw NativeErrors.ioctlFailure(request, fd, s.errno(), "0x" + Long.toHexString(value));
            }
            return result;
        } finally {
            fd.release();
        }
    }

    /**
     * Opens {@code path} read-write, makes one ioctl on the raw descriptor and returns it: for
     * descriptors whose identity the ioctl decides (TUNSETIFF names the TAP), so the caller can
     * adopt it under its real name. Closes the descriptor when the ioctl fails.
     */
    public static int openAndCall(String path, IoctlRequest request, MemorySegment argument) throws NativeCallException {
        CallState s = CallState.current();
        int n;
        try (Arena arena = Arena.ofConfined()) {
            n = Libc.open(s, arena.allocateFrom(path), LinuxConstants.O_RDWR | LinuxConstants.O_CLOEXEC, 0);
        }
        if (n < 0) {
            throw NativeErrors.failure("open", path, s.errno());
        }
        if (Libc.ioctl(s, n, request.number(), argument) < 0) {
            int errno = s.errno();
            Libc.close(s, n);
            throw NativeErrors.ioctlFailure(request, path + " (fd " + n + ")", errno, describe(request, argument));
        }
        return n;
    }

    /** The argument in words, for failure messages: {@code index 0, num 3}. */
    static String describe(IoctlRequest request, MemorySegment a) {
        if (a == null || a.equals(MemorySegment.NULL)) {
            return null;
        }
        return switch (request) {
            case VHOST_SET_VRING_NUM, VHOST_SET_VRING_BASE, VHOST_GET_VRING_BASE, VHOST_SET_VRING_ENDIAN,
                 VHOST_GET_VRING_ENDIAN, VHOST_SET_VRING_BUSYLOOP_TIMEOUT, VHOST_GET_VRING_BUSYLOOP_TIMEOUT ->
                    "index " + a.get(JAVA_INT, 0) + ", num " + Integer.toUnsignedString(a.get(JAVA_INT, 4));
            case VHOST_SET_VRING_KICK, VHOST_SET_VRING_CALL, VHOST_SET_VRING_ERR, VHOST_NET_SET_BACKEND ->
                    "index " + a.get(JAVA_INT, 0) + ", fd " + a.get(JAVA_INT, 4);
            case VHOST_SET_VRING_ADDR -> String.format("index %d, flags 0x%x, desc 0x%x, used 0x%x, avail 0x%x, log 0x%x",
                    a.get(JAVA_INT, 0), a.get(JAVA_INT, 4), a.get(JAVA_LONG, 8), a.get(JAVA_LONG, 16),
                    a.get(JAVA_LONG, 24), a.get(JAVA_LONG, 32));
            case VHOST_SET_MEM_TABLE -> describeMemTable(a);
            case VHOST_GET_FEATURES, VHOST_SET_FEATURES, VHOST_SET_LOG_BASE, VHOST_SET_BACKEND_FEATURES,
                 VHOST_GET_BACKEND_FEATURES -> "0x" + Long.toHexString(a.get(JAVA_LONG, 0));
            case TUNSETIFF, TUNGETIFF, TUNSETQUEUE, SIOCGIFFLAGS, SIOCSIFFLAGS ->
                    "ifr_name \"" + a.getString(0, StandardCharsets.US_ASCII) + "\", ifr_flags 0x"
                            + Integer.toHexString(a.get(JAVA_SHORT, 16) & 0xffff);
            case SIOCGIFMTU -> "ifr_name \"" + a.getString(0, StandardCharsets.US_ASCII) + "\"";
            default -> a.byteSize() >= 4 ? String.valueOf(a.get(JAVA_INT, 0)) : null;
        };
    }

    private static String describeMemTable(MemorySegment a) {
        int count = a.get(JAVA_INT, 0);
        StringBuilder b = new StringBuilder("nregions ").append(count);
        long header = Structs.VHOST_MEMORY.byteSize();
        long regionSize = Structs.VHOST_MEMORY_REGION.byteSize();
        for (int i = 0; i < count && header + (i + 1) * regionSize <= a.byteSize(); i++) {
            long at = header + i * regionSize;
            b.append(String.format(", {gpa 0x%x, size 0x%x, uaddr 0x%x}",
                    a.get(JAVA_LONG, at), a.get(JAVA_LONG, at + 8), a.get(JAVA_LONG, at + 16)));
        }
        return b.toString();
    }
}

package io.vhostffm.vhost.internal;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;

/**
 * The libc functions the library calls, one downcall handle each, as raw C: every method
 * returns what libc returns (-1 on failure, {@code MAP_FAILED} for mmap) and leaves errno in
 * the caller's {@link CallState}. Nothing here throws on failure: turning a failed result into
 * an exception is {@link NativeErrors}' job alone, so the message format lives in one place.
 *
 * <p>Every handle captures errno ({@code Linker.Option.captureCallState("errno")}) into the
 * {@code CallState.capture} segment passed first. Variadic functions (open, ioctl, fcntl) are
 * bound with {@code firstVariadicArg}, so the variadic argument is passed as C's varargs
 * convention requires; ioctl has two handles, one for a pointer argument, one for an integer.
 *
 * <p>No handle is {@code Linker.Option.critical}: ioctls on vhost take kernel mutexes and may
 * sleep, reads and polls may block; a critical call would stall the JVM's safepoints.
 */
@SuppressWarnings("restricted") // binding libc is this class's purpose; the module has native access
public final class Libc {
    private Libc() {}

    private static final Linker LINKER = Linker.nativeLinker();
    private static final SymbolLookup LIBC = LINKER.defaultLookup();
    private static final Linker.Option ERRNO = Linker.Option.captureCallState("errno");

    private static MethodHandle capturing(String name, FunctionDescriptor descriptor, Linker.Option... more) {
        Linker.Option[] options = new Linker.Option[more.length + 1];
        options[0] = ERRNO;
        System.arraycopy(more, 0, options, 1, more.length);
        return LINKER.downcallHandle(find(name), descriptor, options);
    }

    private static MemorySegment find(String name) {
        return LIBC.find(name).orElseThrow(() -> new UnsatisfiedLinkError("libc has no " + name));
    }

    private static final MethodHandle OPEN = capturing("open",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT), Linker.Option.firstVariadicArg(2));
    private static final MethodHandle CLOSE = capturing("close", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    private static final MethodHandle READ = capturing("read",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG));
    private static final MethodHandle WRITE = capturing("write",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG));
    private static final MethodHandle READV = capturing("readv",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle WRITEV = capturing("writev",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle IOCTL_POINTER = capturing("ioctl",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS), Linker.Option.firstVariadicArg(2));
    private static final MethodHandle IOCTL_VALUE = capturing("ioctl",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG), Linker.Option.firstVariadicArg(2));
    private static final MethodHandle EVENTFD = capturing("eventfd",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT));
    private static final MethodHandle MEMFD_CREATE = capturing("memfd_create",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle FTRUNCATE = capturing("ftruncate",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG));
    private static final MethodHandle LSEEK = capturing("lseek",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_INT));
    private static final MethodHandle MMAP = capturing("mmap",
            FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG));
    private static final MethodHandle MUNMAP = capturing("munmap",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG));
    private static final MethodHandle POLL = capturing("poll",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT));
    private static final MethodHandle SOCKETPAIR = capturing("socketpair",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS));
    private static final MethodHandle SOCKET = capturing("socket",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT));
    private static final MethodHandle CONNECT = capturing("connect",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle GETSOCKOPT = capturing("getsockopt",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
    private static final MethodHandle SENDMSG = capturing("sendmsg",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle RECVMSG = capturing("recvmsg",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle BIND = capturing("bind",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle LISTEN = capturing("listen",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT));
    private static final MethodHandle ACCEPT4 = capturing("accept4",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT));
    private static final MethodHandle SEND = capturing("send",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT));
    private static final MethodHandle RECV = capturing("recv",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT));
    private static final MethodHandle SHUTDOWN = capturing("shutdown",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT));
    private static final MethodHandle SCHED_GETSCHEDULER = capturing("sched_getscheduler",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    private static final MethodHandle SCHED_GETPARAM = capturing("sched_getparam",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS));
    private static final MethodHandle SCHED_SETSCHEDULER = capturing("sched_setscheduler",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS));
    private static final MethodHandle SETSOCKOPT = capturing("setsockopt",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle IF_NAMETOINDEX = capturing("if_nametoindex",
            FunctionDescriptor.of(JAVA_INT, ADDRESS));
    private static final MethodHandle FCNTL = capturing("fcntl",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT), Linker.Option.firstVariadicArg(2));
    /**
     * {@code syscall(2)} for the two io_uring calls glibc has no wrapper for. Every argument is
     * passed as a long: syscall reads its variadic arguments as longs, and an int would leave the
     * register's upper half undefined.
     */
    private static final MethodHandle SYSCALL_2 = capturing("syscall",
            FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS), Linker.Option.firstVariadicArg(1));
    private static final MethodHandle SYSCALL_6 = capturing("syscall",
            FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG),
            Linker.Option.firstVariadicArg(1));
    /** geteuid and getegid cannot fail: no errno to capture. */
    private static final MethodHandle GETEUID = LINKER.downcallHandle(find("geteuid"), FunctionDescriptor.of(JAVA_INT));
    private static final MethodHandle GETEGID = LINKER.downcallHandle(find("getegid"), FunctionDescriptor.of(JAVA_INT));
    /** strerror sets no errno worth keeping; it only turns a number into text for messages. */
    private static final MethodHandle STRERROR = LINKER.downcallHandle(find("strerror"),
            FunctionDescriptor.of(ADDRESS, JAVA_INT));

    /** {@code MAP_FAILED}, i.e. {@code (void *) -1}. */
    public static final long MAP_FAILED = -1L;

    private static RuntimeException unexpected(Throwable t) {
        if (t instanceof RuntimeException r) {
            return r;
        }
        if (t instanceof Error e) {
            throw e;
        }
        return new IllegalStateException("downcall threw a checked exception", t);
    }

    public static int open(CallState s, MemorySegment path, int flags, int mode) {
        try { return (int) OPEN.invokeExact(s.capture, path, flags, mode); } catch (Throwable t) { throw unexpected(t); }
    }

    /** sched_getscheduler(2): {@code tid} 0 is the calling thread. */
    public static int schedGetscheduler(CallState s, int tid) {
        try { return (int) SCHED_GETSCHEDULER.invokeExact(s.capture, tid); } catch (Throwable t) { throw unexpected(t); }
    }

    /** sched_getparam(2) of one thread: fills {@code param}, a struct sched_param (its one int, the priority). */
    public static int schedGetparam(CallState s, int tid, MemorySegment param) {
        try { return (int) SCHED_GETPARAM.invokeExact(s.capture, tid, param); } catch (Throwable t) { throw unexpected(t); }
    }

    /** sched_setscheduler(2) of one thread: {@code param} is a struct sched_param (its one int, the priority). */
    public static int schedSetscheduler(CallState s, int tid, int policy, MemorySegment param) {
        try { return (int) SCHED_SETSCHEDULER.invokeExact(s.capture, tid, policy, param); } catch (Throwable t) { throw unexpected(t); }
    }

    public static int close(CallState s, int fd) {
        try { return (int) CLOSE.invokeExact(s.capture, fd); } catch (Throwable t) { throw unexpected(t); }
    }

    public static long read(CallState s, int fd, MemorySegment buf, long count) {
        try { return (long) READ.invokeExact(s.capture, fd, buf, count); } catch (Throwable t) { throw unexpected(t); }
    }

    public static long write(CallState s, int fd, MemorySegment buf, long count) {
        try { return (long) WRITE.invokeExact(s.capture, fd, buf, count); } catch (Throwable t) { throw unexpected(t); }
    }

    public static long readv(CallState s, int fd, MemorySegment iov, int iovcnt) {
        try { return (long) READV.invokeExact(s.capture, fd, iov, iovcnt); } catch (Throwable t) { throw unexpected(t); }
    }

    public static long writev(CallState s, int fd, MemorySegment iov, int iovcnt) {
        try { return (long) WRITEV.invokeExact(s.capture, fd, iov, iovcnt); } catch (Throwable t) { throw unexpected(t); }
    }

    /** ioctl whose third argument is a pointer to an argument struct or integer. */
    public static int ioctl(CallState s, int fd, long request, MemorySegment arg) {
        try { return (int) IOCTL_POINTER.invokeExact(s.capture, fd, request, arg); } catch (Throwable t) { throw unexpected(t); }
    }

    /** ioctl whose third argument is an integer passed by value (or unused: pass 0). */
    public static int ioctl(CallState s, int fd, long request, long arg) {
        try { return (int) IOCTL_VALUE.invokeExact(s.capture, fd, request, arg); } catch (Throwable t) { throw unexpected(t); }
    }

    public static int eventfd(CallState s, int initval, int flags) {
        try { return (int) EVENTFD.invokeExact(s.capture, initval, flags); } catch (Throwable t) { throw unexpected(t); }
    }

    public static int memfdCreate(CallState s, MemorySegment name, int flags) {
        try { return (int) MEMFD_CREATE.invokeExact(s.capture, name, flags); } catch (Throwable t) { throw unexpected(t); }
    }

    public static int ftruncate(CallState s, int fd, long length) {
        try { return (int) FTRUNCATE.invokeExact(s.capture, fd, length); } catch (Throwable t) { throw unexpected(t); }
    }

    public static long lseek(CallState s, int fd, long offset, int whence) {
        try { return (long) LSEEK.invokeExact(s.capture, fd, offset, whence); } catch (Throwable t) { throw unexpected(t); }
    }

    /** Returns the mapping's address, or {@link #MAP_FAILED}. */
    public static long mmap(CallState s, long addr, long length, int prot, int flags, int fd, long offset) {
        try {
            MemorySegment result = (MemorySegment) MMAP.invokeExact(s.capture, MemorySegment.ofAddress(addr), length, prot, flags, fd, offset);
            return result.address();
        } catch (Throwable t) { throw unexpected(t); }
    }

    /** {@code io_uring_setup(entries, params)}: the ring's descriptor, or -1. */
    public static int ioUringSetup(CallState s, int entries, MemorySegment params) {
        try {
            return (int) (long) SYSCALL_2.invokeExact(s.capture, (long) LinuxConstants.SYS_io_uring_setup, (long) entries,
                    params);
        } catch (Throwable t) { throw unexpected(t); }
    }

    /** {@code io_uring_enter(fd, toSubmit, minComplete, flags, NULL, 0)}: how many it submitted, or -1. */
    public static int ioUringEnter(CallState s, int fd, int toSubmit, int minComplete, int flags) {
        try {
            return (int) (long) SYSCALL_6.invokeExact(s.capture, (long) LinuxConstants.SYS_io_uring_enter, (long) fd,
                    (long) toSubmit, (long) minComplete, (long) flags, MemorySegment.NULL, 0L);
        } catch (Throwable t) { throw unexpected(t); }
    }

    public static int munmap(CallState s, long addr, long length) {
        try { return (int) MUNMAP.invokeExact(s.capture, MemorySegment.ofAddress(addr), length); } catch (Throwable t) { throw unexpected(t); }
    }

    public static int poll(CallState s, MemorySegment fds, long nfds, int timeoutMillis) {
        try { return (int) POLL.invokeExact(s.capture, fds, nfds, timeoutMillis); } catch (Throwable t) { throw unexpected(t); }
    }

    public static int socketpair(CallState s, int domain, int type, int protocol, MemorySegment sv) {
        try { return (int) SOCKETPAIR.invokeExact(s.capture, domain, type, protocol, sv); } catch (Throwable t) { throw unexpected(t); }
    }

    public static int socket(CallState s, int domain, int type, int protocol) {
        try { return (int) SOCKET.invokeExact(s.capture, domain, type, protocol); } catch (Throwable t) { throw unexpected(t); }
    }

    public static int connect(CallState s, int fd, MemorySegment addr, int addrlen) {
        try { return (int) CONNECT.invokeExact(s.capture, fd, addr, addrlen); } catch (Throwable t) { throw unexpected(t); }
    }

    public static int getsockopt(CallState s, int fd, int level, int name, MemorySegment value, MemorySegment length) {
        try { return (int) GETSOCKOPT.invokeExact(s.capture, fd, level, name, value, length); } catch (Throwable t) { throw unexpected(t); }
    }

    public static long sendmsg(CallState s, int fd, MemorySegment msg, int flags) {
        try { return (long) SENDMSG.invokeExact(s.capture, fd, msg, flags); } catch (Throwable t) { throw unexpected(t); }
    }

    public static long recvmsg(CallState s, int fd, MemorySegment msg, int flags) {
        try { return (long) RECVMSG.invokeExact(s.capture, fd, msg, flags); } catch (Throwable t) { throw unexpected(t); }
    }

    public static int bind(CallState s, int fd, MemorySegment addr, int addrlen) {
        try { return (int) BIND.invokeExact(s.capture, fd, addr, addrlen); } catch (Throwable t) { throw unexpected(t); }
    }

    public static int listen(CallState s, int fd, int backlog) {
        try { return (int) LISTEN.invokeExact(s.capture, fd, backlog); } catch (Throwable t) { throw unexpected(t); }
    }

    /** accept4 without the peer address (both pointers NULL). */
    public static int accept4(CallState s, int fd, int flags) {
        try {
            return (int) ACCEPT4.invokeExact(s.capture, fd, MemorySegment.NULL, MemorySegment.NULL, flags);
        } catch (Throwable t) { throw unexpected(t); }
    }

    public static long send(CallState s, int fd, MemorySegment buf, long length, int flags) {
        try { return (long) SEND.invokeExact(s.capture, fd, buf, length, flags); } catch (Throwable t) { throw unexpected(t); }
    }

    public static long recv(CallState s, int fd, MemorySegment buf, long length, int flags) {
        try { return (long) RECV.invokeExact(s.capture, fd, buf, length, flags); } catch (Throwable t) { throw unexpected(t); }
    }

    public static int shutdown(CallState s, int fd, int how) {
        try { return (int) SHUTDOWN.invokeExact(s.capture, fd, how); } catch (Throwable t) { throw unexpected(t); }
    }

    public static int setsockopt(CallState s, int fd, int level, int name, MemorySegment value, int length) {
        try { return (int) SETSOCKOPT.invokeExact(s.capture, fd, level, name, value, length); } catch (Throwable t) { throw unexpected(t); }
    }

    /** The interface index, or 0 (errno set) when there is no such interface. */
    public static int ifNametoindex(CallState s, MemorySegment name) {
        try { return (int) IF_NAMETOINDEX.invokeExact(s.capture, name); } catch (Throwable t) { throw unexpected(t); }
    }

    /** fcntl with an int third argument (0 when the command takes none). */
    public static int fcntl(CallState s, int fd, int cmd, int arg) {
        try { return (int) FCNTL.invokeExact(s.capture, fd, cmd, arg); } catch (Throwable t) { throw unexpected(t); }
    }

    /** The process's effective user id (cannot fail). */
    public static int geteuid() {
        try { return (int) GETEUID.invokeExact(); } catch (Throwable t) { throw unexpected(t); }
    }

    /** The process's effective group id (cannot fail). */
    public static int getegid() {
        try { return (int) GETEGID.invokeExact(); } catch (Throwable t) { throw unexpected(t); }
    }

    /** libc's message for an errno value. */
    public static String strerror(int errno) {
        try {
            MemorySegment text = (MemorySegment) STRERROR.invokeExact(errno);
            return text.reinterpret(1024).getString(0);
        } catch (Throwable t) { throw unexpected(t); }
    }
}

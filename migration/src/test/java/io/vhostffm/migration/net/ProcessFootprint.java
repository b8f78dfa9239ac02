package io.vhostffm.migration.net;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;

/**
 * What a leak check per fuzz input reads of this process, through getdents64 and pread into
 * buffers made once (no strings, no streams: the JDK's file APIs, and Jazzer's hooks on
 * {@code String.contains} in an instrumented class, cost more than the input itself).
 * /proc/self/statm and /proc/self/maps stay open from construction to {@link #close()} (each
 * read starts again at offset 0, which makes the kernel generate the file anew): opening a
 * /proc file costs several times reading it. Those two descriptors are in every count.
 * The three readings:
 * <ul>
 *   <li>{@link #descriptors()}: the entries of /proc/self/fd, the listing's own included;</li>
 *   <li>{@link #mappedPages()}: the size of the address space in pages (/proc/self/statm), which
 *       the kernel keeps as a counter, so reading it costs no walk over the mappings;</li>
 *   <li>{@link #memfdMappings()}: the lines of /proc/self/maps that map a memfd, which costs a
 *       walk over every mapping of the process (the most expensive of the three).</li>
 * </ul>
 * Not thread-safe.
 */
final class ProcessFootprint implements AutoCloseable {
    private static final Linker LINKER = Linker.nativeLinker();
    private static final SymbolLookup LIBC = LINKER.defaultLookup();
    private static final MethodHandle OPEN = LINKER.downcallHandle(LIBC.find("open").orElseThrow(),
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT), Linker.Option.firstVariadicArg(2));
    private static final MethodHandle PREAD = LINKER.downcallHandle(LIBC.find("pread").orElseThrow(),
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG));
    private static final MethodHandle CLOSE = LINKER.downcallHandle(LIBC.find("close").orElseThrow(),
            FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    private static final MethodHandle GETDENTS64 = LINKER.downcallHandle(LIBC.find("getdents64").orElseThrow(),
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG));
    private static final int O_RDONLY_CLOEXEC = 0x80000;
    private static final int O_DIRECTORY = 0x10000;
    private static final long D_RECLEN = 16;
    private static final long D_NAME = 19;
    private static final byte[] MEMFD = "/memfd:".getBytes(java.nio.charset.StandardCharsets.US_ASCII);

    private final Arena arena = Arena.ofAuto();
    private final MemorySegment fdPath = arena.allocateFrom("/proc/self/fd");
    private final MemorySegment small = arena.allocate(32 * 1024, 8);
    private MemorySegment maps = arena.allocate(256 * 1024, 8);
    private final int statm = open(arena.allocateFrom("/proc/self/statm"), O_RDONLY_CLOEXEC);
    private final int mapsFd = open(arena.allocateFrom("/proc/self/maps"), O_RDONLY_CLOEXEC);

    @Override
    public void close() {
        close(statm);
        close(mapsFd);
    }

    /** How many descriptors are open now, the directory's own included (as {@code File.list} counts). */
    int descriptors() {
        int dir = open(fdPath, O_RDONLY_CLOEXEC | O_DIRECTORY);
        int count = 0;
        try {
            while (true) {
                long n = (long) GETDENTS64.invokeExact(dir, small, small.byteSize());
                if (n < 0) {
                    throw new IllegalStateException("getdents64 on /proc/self/fd failed");
                }
                if (n == 0) {
                    return count;
                }
                for (long at = 0; at < n; at += small.get(JAVA_SHORT, at + D_RECLEN) & 0xffff) {
                    if (small.get(JAVA_BYTE, at + D_NAME) != '.') {
                        count++;
                    }
                }
            }
        } catch (Throwable t) {
            throw rethrow(t);
        } finally {
            close(dir);
        }
    }

    /** The size of this process's address space in pages: the first field of /proc/self/statm. */
    long mappedPages() {
        long n = readAll(statm, small);
        long pages = 0;
        for (long i = 0; i < n; i++) {
            byte b = small.get(JAVA_BYTE, i);
            if (b < '0' || b > '9') {
                return pages;
            }
            pages = pages * 10 + (b - '0');
        }
        throw new IllegalStateException("/proc/self/statm has no size field");
    }

    /** The mappings of memfds now: lines of /proc/self/maps whose path starts with "/memfd:". */
    int memfdMappings() {
        long n;
        while ((n = readAll(mapsFd, maps)) == maps.byteSize()) {
            maps = arena.allocate(maps.byteSize() * 2, 8); // may have been cut short: read again, whole
        }
        int count = 0;
        outer:
        for (long i = 0; i + MEMFD.length <= n; i++) {
            for (int k = 0; k < MEMFD.length; k++) {
                if (maps.get(JAVA_BYTE, i + k) != MEMFD[k]) {
                    continue outer;
                }
            }
            count++;
            i += MEMFD.length - 1;
        }
        return count;
    }

    /** Reads the file open as {@code fd} from its start into {@code into} until its end or {@code into} is full; the bytes read. */
    private static long readAll(int fd, MemorySegment into) {
        try {
            long total = 0;
            while (total < into.byteSize()) {
                long n = (long) PREAD.invokeExact(fd, into.asSlice(total), into.byteSize() - total, total);
                if (n < 0) {
                    throw new IllegalStateException("pread of descriptor " + fd + " failed");
                }
                if (n == 0) {
                    break;
                }
                total += n;
            }
            return total;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    private static int open(MemorySegment path, int flags) {
        int fd;
        try {
            fd = (int) OPEN.invokeExact(path, flags);
        } catch (Throwable t) {
            throw rethrow(t);
        }
        if (fd < 0) {
            throw new IllegalStateException("cannot open " + path.getString(0));
        }
        return fd;
    }

    private static void close(int fd) {
        try {
            int ignored = (int) CLOSE.invokeExact(fd);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    private static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) {
            throw r;
        }
        if (t instanceof Error e) {
            throw e;
        }
        throw new IllegalStateException(t);
    }
}

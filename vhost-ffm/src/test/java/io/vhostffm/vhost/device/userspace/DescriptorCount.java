package io.vhostffm.vhost.device.userspace;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import io.vhostffm.vhost.internal.CallState;
import io.vhostffm.vhost.internal.Libc;
import io.vhostffm.vhost.internal.LinuxConstants;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/**
 * How many descriptors the process has open: the entries of /proc/self/fd read with
 * getdents64(2) into a buffer made once, for a leak check per fuzz input (a listing through
 * {@code java.io.File} costs as much as the input). Counts as {@code FdLinks.count()} does
 * (the directory's own descriptor included), so two counts compare. Not thread-safe.
 */
final class DescriptorCount {
    private static final MethodHandle GETDENTS64 = Linker.nativeLinker().downcallHandle(
            Linker.nativeLinker().defaultLookup().find("getdents64").orElseThrow(),
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG));
    private static final int O_DIRECTORY = 0x10000;
    private static final long D_RECLEN = 16;
    private static final long D_NAME = 19;

    private final MemorySegment path = Arena.ofAuto().allocateFrom("/proc/self/fd");
    private final MemorySegment entries = Arena.ofAuto().allocate(32 * 1024, 8);

    /**
     * The lowest descriptor number not in use (what the next open would get), found with one
     * fcntl(F_DUPFD_CLOEXEC) and a close: a descriptor opened and left open since the last call
     * takes it, so the number changes. Cheaper than {@link #count}, but blind to a leak that
     * closes something lower meanwhile.
     */
    static int lowestFree() {
        CallState s = CallState.current();
        int probe = Libc.fcntl(s, 0, LinuxConstants.F_DUPFD_CLOEXEC, 0);
        if (probe < 0) {
            throw new IllegalStateException("fcntl(F_DUPFD_CLOEXEC) failed: errno " + s.errno());
        }
        Libc.close(s, probe);
        return probe;
    }

    /** The number of open descriptors now, the directory's own included. */
    int count() {
        CallState s = CallState.current();
        int dir = Libc.open(s, path, LinuxConstants.O_RDONLY | O_DIRECTORY | LinuxConstants.O_CLOEXEC, 0);
        if (dir < 0) {
            throw new IllegalStateException("cannot open /proc/self/fd: errno " + s.errno());
        }
        int count = 0;
        try {
            while (true) {
                long n = (long) GETDENTS64.invokeExact(dir, entries, entries.byteSize());
                if (n < 0) {
                    throw new IllegalStateException("getdents64 on /proc/self/fd failed");
                }
                if (n == 0) {
                    return count;
                }
                for (long at = 0; at < n; at += entries.get(JAVA_SHORT, at + D_RECLEN) & 0xffff) {
                    if (entries.get(JAVA_BYTE, at + D_NAME) != '.') {
                        count++;
                    }
                }
            }
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        } finally {
            Libc.close(s, dir);
        }
    }
}

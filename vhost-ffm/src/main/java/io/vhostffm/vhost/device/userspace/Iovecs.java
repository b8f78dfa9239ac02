package io.vhostffm.vhost.device.userspace;

import static java.lang.foreign.ValueLayout.JAVA_LONG;

import io.vhostffm.vhost.internal.Structs;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * A preallocated array of {@code struct iovec} (x86-64: {@code void *iov_base; size_t iov_len},
 * 16 bytes) that readv/writev take, filled with host addresses of guest buffers so the kernel
 * copies straight to and from guest memory. Allocated once per queue; filling allocates nothing.
 */
final class Iovecs {
    /** The kernel's limit of iovecs in one readv/writev (UIO_MAXIOV, IOV_MAX). */
    static final int IOV_MAX = 1024;
    private static final long IOVEC_BYTES = Structs.IOVEC.byteSize();
    private static final long IOV_BASE = Structs.offset(Structs.IOVEC, "iov_base");
    private static final long IOV_LEN = Structs.offset(Structs.IOVEC, "iov_len");

    private final MemorySegment array;

    Iovecs(Arena arena) {
        this.array = arena.allocate(IOVEC_BYTES * IOV_MAX, 8);
    }

    /** Sets entry {@code index} to {@code length} bytes at host address {@code address}. */
    void set(int index, long address, long length) {
        array.set(JAVA_LONG, index * IOVEC_BYTES + IOV_BASE, address);
        array.set(JAVA_LONG, index * IOVEC_BYTES + IOV_LEN, length);
    }

    /** The array to pass to readv/writev. */
    MemorySegment segment() {
        return array;
    }
}

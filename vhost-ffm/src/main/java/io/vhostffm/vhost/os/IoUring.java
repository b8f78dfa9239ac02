package io.vhostffm.vhost.os;

import io.vhostffm.vhost.internal.CallState;
import io.vhostffm.vhost.internal.Libc;
import io.vhostffm.vhost.internal.LinuxConstants;
import io.vhostffm.vhost.internal.NativeErrors;
import io.vhostffm.vhost.internal.Structs;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.util.Objects;

/**
 * An io_uring instance through raw system calls ({@code io_uring_setup}, {@code io_uring_enter};
 * no liburing): many reads and writes handed to the kernel with one system call. Queue them with
 * {@link #queueWritev} / {@link #queueReadv}, hand them over and wait with {@link #submit}, take
 * the results with {@link #completions}.
 *
 * <p>The rings are the kernel's, mapped into this process ({@code IORING_OFF_SQ_RING},
 * {@code IORING_OFF_CQ_RING}, {@code IORING_OFF_SQES}). Memory ordering, as the kernel's
 * {@code io_uring.h} documents it: the submission queue's tail is ours and is published with a
 * release store after the entries and the index array are written; its head is the kernel's and
 * read with an acquire load. The completion queue's tail is the kernel's, read with an acquire
 * load before the entries are; its head is ours, stored with release once they are read.
 *
 * <p>A queued operation keeps its {@link FileDescriptor} acquired until its completion is taken,
 * so its number cannot be closed and reused under the kernel. Nothing is allocated per operation.
 * One thread at a time.
 */
public final class IoUring implements AutoCloseable {
    /**
     * Flag of {@link #queueWritev(FileDescriptor, MemorySegment, long, int, long, int)}: the operation
     * queued next starts only once this one has moved all its bytes ({@code IOSQE_IO_LINK}); if
     * this one fails or moves fewer, every later operation of the link completes with
     * {@code -ECANCELED} without being started. How a batch of writes keeps its order.
     */
    public static final int LINK_NEXT = 1;
    /**
     * Flag: when the descriptor is not ready (a full TAP), complete with {@code -EAGAIN} at once
     * ({@code RWF_NOWAIT}) instead of waiting in the kernel until it is; then nothing is left in
     * flight that only a later readiness would complete.
     */
    public static final int NO_WAIT = 2;

    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT;
    private static final VarHandle INT = U32.varHandle();
    private static final int EINTR = Errno.number("EINTR").orElseThrow();
    private static final long PARAMS_SIZE = Structs.IO_URING_PARAMS.byteSize();
    private static final long SQE_SIZE = Structs.IO_URING_SQE.byteSize();
    private static final long CQE_SIZE = Structs.IO_URING_CQE.byteSize();
    private static final long IOVEC_SIZE = Structs.IOVEC.byteSize();
    // io_uring_params
    private static final long SQ_ENTRIES = Structs.offset(Structs.IO_URING_PARAMS, "sq_entries");
    private static final long CQ_ENTRIES = Structs.offset(Structs.IO_URING_PARAMS, "cq_entries");
    private static final long FEATURES = Structs.offset(Structs.IO_URING_PARAMS, "features");
    private static final long SQ_OFF = Structs.offset(Structs.IO_URING_PARAMS, "sq_off");
    private static final long CQ_OFF = Structs.offset(Structs.IO_URING_PARAMS, "cq_off");
    // io_uring_sqe
    private static final long SQE_OPCODE = Structs.offset(Structs.IO_URING_SQE, "opcode");
    private static final long SQE_FLAGS = Structs.offset(Structs.IO_URING_SQE, "flags");
    private static final long SQE_RW_FLAGS = Structs.offset(Structs.IO_URING_SQE, "rw_flags");
    private static final long SQE_FD = Structs.offset(Structs.IO_URING_SQE, "fd");
    private static final long SQE_OFF = Structs.offset(Structs.IO_URING_SQE, "off");
    private static final long SQE_ADDR = Structs.offset(Structs.IO_URING_SQE, "addr");
    private static final long SQE_LEN = Structs.offset(Structs.IO_URING_SQE, "len");
    private static final long SQE_USER_DATA = Structs.offset(Structs.IO_URING_SQE, "user_data");
    // io_uring_cqe
    private static final long CQE_USER_DATA = Structs.offset(Structs.IO_URING_CQE, "user_data");
    private static final long CQE_RES = Structs.offset(Structs.IO_URING_CQE, "res");

    private final FileDescriptor ring;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment sqRing;
    private final MemorySegment cqRing;
    private final MemorySegment sqes;
    private final int sqEntries;
    private final int sqMask;
    private final int cqMask;
    private final long sqHead;
    private final long sqTail;
    private final long sqArray;
    private final long cqHead;
    private final long cqTail;
    private final long cqes;
    /** Our submission tail, ahead of the published one by what is queued and not submitted. */
    private int tail;
    private int published;
    /** Per in-flight slot: the descriptor held for the kernel, and the caller's tag. */
    private final FileDescriptor[] slotFds;
    private final long[] slotTags;
    private final int[] freeSlots;
    private int free;

    private IoUring(FileDescriptor ring, MemorySegment params) throws NativeCallException {
        this.ring = ring;
        sqEntries = params.get(U32, SQ_ENTRIES);
        int cqEntries = params.get(U32, CQ_ENTRIES);
        int features = params.get(U32, FEATURES);
        sqHead = params.get(U32, SQ_OFF + Structs.offset(Structs.IO_SQRING_OFFSETS, "head"));
        sqTail = params.get(U32, SQ_OFF + Structs.offset(Structs.IO_SQRING_OFFSETS, "tail"));
        long sqMaskAt = params.get(U32, SQ_OFF + Structs.offset(Structs.IO_SQRING_OFFSETS, "ring_mask"));
        sqArray = params.get(U32, SQ_OFF + Structs.offset(Structs.IO_SQRING_OFFSETS, "array"));
        cqHead = params.get(U32, CQ_OFF + Structs.offset(Structs.IO_CQRING_OFFSETS, "head"));
        cqTail = params.get(U32, CQ_OFF + Structs.offset(Structs.IO_CQRING_OFFSETS, "tail"));
        long cqMaskAt = params.get(U32, CQ_OFF + Structs.offset(Structs.IO_CQRING_OFFSETS, "ring_mask"));
        cqes = params.get(U32, CQ_OFF + Structs.offset(Structs.IO_CQRING_OFFSETS, "cqes"));
        long sqSize = sqArray + 4L * sqEntries;
        long cqSize = cqes + CQE_SIZE * cqEntries;
        if ((features & LinuxConstants.IORING_FEAT_SINGLE_MMAP) != 0) {
            sqRing = map(Math.max(sqSize, cqSize), LinuxConstants.IORING_OFF_SQ_RING);
            cqRing = sqRing;
        } else {
            sqRing = map(sqSize, LinuxConstants.IORING_OFF_SQ_RING);
            cqRing = map(cqSize, LinuxConstants.IORING_OFF_CQ_RING);
        }
        sqes = map(SQE_SIZE * sqEntries, LinuxConstants.IORING_OFF_SQES);
        sqMask = sqRing.get(U32, sqMaskAt);
        cqMask = cqRing.get(U32, cqMaskAt);
        tail = sqRing.get(U32, sqTail);
        published = tail;
        slotFds = new FileDescriptor[cqEntries];
        slotTags = new long[cqEntries];
        freeSlots = new int[cqEntries];
        for (int i = 0; i < cqEntries; i++) {
            freeSlots[i] = cqEntries - 1 - i;
        }
        free = cqEntries;
    }

    /**
     * A ring of at least {@code entries} submission entries (a power of two is taken; the
     * completion queue gets twice as many).
     *
     * @throws NativeCallException naming {@code io_uring_setup} or {@code mmap} and the errno
     *     (ENOSYS or EPERM where the kernel or a seccomp filter forbids io_uring)
     */
    public static IoUring open(int entries) throws NativeCallException {
        if (entries < 1 || entries > 4096) {
            throw new IllegalArgumentException("io_uring entries " + entries + ": 1 to 4096");
        }
        CallState s = CallState.current();
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment params = scratch.allocate(PARAMS_SIZE, 8);
            int fd = Libc.ioUringSetup(s, entries, params);
            if (fd < 0) {
                throw NativeErrors.failure("io_uring_setup", "entries " + entries, s.errno());
            }
            FileDescriptor ring = FileDescriptor.adopt(fd, "io_uring");
            try {
                return new IoUring(ring, params);
            } catch (NativeCallException | RuntimeException e) {
                ring.close();
                throw e;
            }
        }
    }

    private MemorySegment map(long size, long offset) throws NativeCallException {
        CallState s = CallState.current();
        int n = ring.acquire();
        try {
            long address = Libc.mmap(s, 0, size, LinuxConstants.PROT_READ | LinuxConstants.PROT_WRITE,
                    LinuxConstants.MAP_SHARED | LinuxConstants.MAP_POPULATE, n, offset);
            if (address == Libc.MAP_FAILED) {
                throw NativeErrors.failure("mmap", ring, s.errno(), "io_uring offset 0x" + Long.toHexString(offset));
            }
            return MemorySegment.ofAddress(address).reinterpret(size, arena,
                    segment -> Libc.munmap(CallState.current(), segment.address(), size));
        } finally {
            ring.release();
        }
    }

    /** How many operations can be queued before a {@link #submit}. */
    public int capacity() {
        return sqEntries;
    }

    /**
     * Queues a {@code writev} of the {@code count} {@code struct iovec}s at {@code iovecs} into
     * {@code fd} (at its current position), tagged {@code tag} for {@link #completions}. The
     * iovecs and the memory they name must stay as they are until its completion is taken.
     *
     * @return false, queuing nothing, when the submission queue or the in-flight slots are full
     */
    public boolean queueWritev(FileDescriptor fd, MemorySegment iovecs, int count, long tag) {
        return queue(LinuxConstants.IORING_OP_WRITEV, fd, iovecs, 0, count, tag, 0);
    }

    /**
     * As {@link #queueWritev(FileDescriptor, MemorySegment, int, long)}, the {@code count} iovecs
     * from byte {@code offset} of {@code iovecs} (one array for a whole batch, no slice per
     * operation), with {@code flags}: 0 or any of {@link #LINK_NEXT} and {@link #NO_WAIT}.
     *
     * @throws IndexOutOfBoundsException when the iovecs are not all inside {@code iovecs}
     */
    public boolean queueWritev(FileDescriptor fd, MemorySegment iovecs, long offset, int count, long tag, int flags) {
        return queue(LinuxConstants.IORING_OP_WRITEV, fd, iovecs, offset, count, tag, flags);
    }

    /** As {@link #queueWritev}, a {@code readv} from {@code fd} into the buffers the iovecs name. */
    public boolean queueReadv(FileDescriptor fd, MemorySegment iovecs, int count, long tag) {
        return queue(LinuxConstants.IORING_OP_READV, fd, iovecs, 0, count, tag, 0);
    }

    private boolean queue(byte opcode, FileDescriptor fd, MemorySegment iovecs, long offset, int count, long tag,
            int flags) {
        if ((flags & ~(LINK_NEXT | NO_WAIT)) != 0) {
            throw new IllegalArgumentException("io_uring operation flags: LINK_NEXT, NO_WAIT; not 0x" + Integer.toHexString(flags));
        }
        Objects.checkFromIndexSize(offset, IOVEC_SIZE * count, iovecs.byteSize());
        // Acquire: the kernel's head, so a slot it has not consumed yet is not overwritten.
        int head = (int) INT.getAcquire(sqRing, sqHead);
        if (tail - head >= sqEntries || free == 0) {
            return false;
        }
        int number = fd.acquire(); // released when the completion is taken
        int slot = freeSlots[--free];
        slotFds[slot] = fd;
        slotTags[slot] = tag;
        int index = tail & sqMask;
        long at = index * SQE_SIZE;
        for (long word = 0; word < SQE_SIZE; word += 8) {
            sqes.set(ValueLayout.JAVA_LONG, at + word, 0L); // flags, ioprio, rw_flags, buf_index ... all 0
        }
        sqes.set(ValueLayout.JAVA_BYTE, at + SQE_OPCODE, opcode);
        if ((flags & LINK_NEXT) != 0) {
            sqes.set(ValueLayout.JAVA_BYTE, at + SQE_FLAGS, LinuxConstants.IOSQE_IO_LINK);
        }
        if ((flags & NO_WAIT) != 0) {
            sqes.set(U32, at + SQE_RW_FLAGS, LinuxConstants.RWF_NOWAIT);
        }
        sqes.set(U32, at + SQE_FD, number);
        sqes.set(ValueLayout.JAVA_LONG, at + SQE_OFF, -1L); // the file's current position (a TAP has none)
        sqes.set(ValueLayout.JAVA_LONG, at + SQE_ADDR, iovecs.address() + offset);
        sqes.set(U32, at + SQE_LEN, count); // iovecs
        sqes.set(ValueLayout.JAVA_LONG, at + SQE_USER_DATA, slot);
        sqRing.set(U32, sqArray + 4L * index, index);
        tail++;
        return true;
    }

    /**
     * Publishes what is queued and enters the kernel once: it submits them and, when
     * {@code minCompletions} is positive, waits until that many completions are ready (a
     * completion of an earlier submit counts too).
     *
     * @return how many operations the kernel took
     * @throws NativeCallException naming {@code io_uring_enter} and the errno
     */
    public int submit(int minCompletions) throws NativeCallException {
        int toSubmit = tail - published;
        // Release: the entries and the index array above are written before the kernel sees the tail.
        INT.setRelease(sqRing, sqTail, tail);
        published = tail;
        CallState s = CallState.current();
        int n = ring.acquire();
        try {
            int flags = minCompletions > 0 ? LinuxConstants.IORING_ENTER_GETEVENTS : 0;
            while (true) {
                int r = Libc.ioUringEnter(s, n, toSubmit, minCompletions, flags);
                if (r >= 0) {
                    return r;
                }
                if (s.errno() != EINTR) {
                    throw NativeErrors.failure("io_uring_enter", ring, s.errno(),
                            toSubmit + " to submit, waiting for " + minCompletions);
                }
            }
        } finally {
            ring.release();
        }
    }

    /**
     * Takes up to {@code tags.length} ready completions: for each, the tag it was queued with and
     * its result (bytes moved, or minus the errno; {@link #failure} names it).
     *
     * @return how many it took
     */
    public int completions(long[] tags, int[] results) {
        int head = cqRing.get(U32, cqHead);
        // Acquire: the completions before the kernel's tail are written before it was.
        int ready = (int) INT.getAcquire(cqRing, cqTail) - head;
        int taken = Math.min(ready, Math.min(tags.length, results.length));
        for (int i = 0; i < taken; i++) {
            long at = cqes + (long) ((head + i) & cqMask) * CQE_SIZE;
            int slot = (int) cqRing.get(ValueLayout.JAVA_LONG, at + CQE_USER_DATA);
            results[i] = cqRing.get(U32, at + CQE_RES);
            tags[i] = slotTags[slot];
            slotFds[slot].release();
            slotFds[slot] = null;
            freeSlots[free++] = slot;
        }
        // Release: the entries are read before the kernel may reuse them.
        INT.setRelease(cqRing, cqHead, head + taken);
        return taken;
    }

    /**
     * The exception for an operation whose completion {@code result} is negative: it names the
     * operation ({@code "io_uring writev"}), the descriptor and the errno.
     */
    public static NativeCallException failure(String operation, FileDescriptor fd, int result) {
        return NativeErrors.failure("io_uring " + operation, fd, -result);
    }

    /** Operations queued or submitted whose completion was not taken yet. */
    public int inFlight() {
        return slotFds.length - free;
    }

    /**
     * Closes the ring (the kernel cancels what is still in flight) and unmaps it; releases the
     * descriptors still held for operations in flight.
     */
    @Override
    public void close() {
        if (!ring.isOpen()) {
            return;
        }
        ring.close();
        for (int slot = 0; slot < slotFds.length; slot++) {
            if (slotFds[slot] != null) {
                slotFds[slot].release();
                slotFds[slot] = null;
            }
        }
        arena.close();
    }

    @Override
    public String toString() {
        return "io_uring (" + sqEntries + " entries, " + inFlight() + " in flight)";
    }
}

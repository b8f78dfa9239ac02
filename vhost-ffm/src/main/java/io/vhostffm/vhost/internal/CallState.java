package io.vhostffm.vhost.internal;

import java.lang.foreign.Arena;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * One thread's segments for downcalls: the errno capture segment, an 8-byte scratch word
 * (eventfd's counter, int out-parameters) and one {@code struct pollfd}.
 *
 * <p>Why per thread: errno is per thread in libc, and {@code captureCallState("errno")} copies
 * it into the segment passed to the downcall; a segment shared between threads would let one
 * thread read another's errno. Why allocated once: a fresh segment per call costs tens of
 * nanoseconds and garbage on hot paths (eventfd signal/consume, vring kicks).
 *
 * <p>The memory lives in an automatic arena: freed once the thread is gone and nothing refers
 * to it. A virtual thread gets its own (allocated on its first downcall).
 */
public final class CallState {
    /** The layout the linker fills for {@code captureCallState("errno")}. */
    private static final StructLayout CAPTURE = Linker.Option.captureStateLayout();

    private static final VarHandle ERRNO = MethodHandles.insertCoordinates(
            CAPTURE.varHandle(MemoryLayout.PathElement.groupElement("errno")), 1, 0L);

    private static final long SCRATCH_OFFSET = (CAPTURE.byteSize() + 7) & -8L;
    private static final long POLLFD_OFFSET = SCRATCH_OFFSET + 8;
    private static final long SIZE = POLLFD_OFFSET + Structs.POLLFD.byteSize();

    private static final ThreadLocal<CallState> STATE = ThreadLocal.withInitial(CallState::new);

    /** Passed as the first argument of every errno-capturing downcall. */
    public final MemorySegment capture;
    /** 8 bytes, 8-aligned, for out-parameters of this thread's calls. */
    public final MemorySegment scratch;
    /** One {@code struct pollfd} for single-descriptor polls. */
    public final MemorySegment pollfd;

    private CallState() {
        MemorySegment all = Arena.ofAuto().allocate(SIZE, 8);
        capture = all.asSlice(0, CAPTURE.byteSize());
        scratch = all.asSlice(SCRATCH_OFFSET, 8);
        pollfd = all.asSlice(POLLFD_OFFSET, Structs.POLLFD.byteSize());
    }

    /** This thread's state; the same object on every call from this thread. */
    public static CallState current() {
        return STATE.get();
    }

    /** The errno the last errno-capturing downcall on this thread left. */
    public int errno() {
        return (int) ERRNO.get(capture);
    }

    static {
        if (!ValueLayout.JAVA_INT.withName("errno").equals(
                CAPTURE.select(MemoryLayout.PathElement.groupElement("errno")))) {
            throw new ExceptionInInitializerError("unexpected errno capture layout " + CAPTURE);
        }
    }
}

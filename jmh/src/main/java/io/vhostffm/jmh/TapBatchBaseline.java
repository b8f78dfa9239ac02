package io.vhostffm.jmh;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.io.IOException;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/**
 * The C side of {@link TapBatchWriteBenchmark}: {@code tap-batch-baseline.c} ({@link CompiledC}),
 * a batch of frames into a TAP queue with one writev per frame, or through its own io_uring (raw
 * system calls, as the Java side's {@link io.vhostffm.vhost.os.IoUring}) with one enter per batch.
 */
final class TapBatchBaseline implements AutoCloseable {
    static final String SOURCE = "tap-batch-baseline.c";

    private final CompiledC library;
    private final MethodHandle writevBatch;
    private final MethodHandle uringOpen;
    private final MethodHandle uringWritevBatch;
    private final MethodHandle uringClose;
    private MemorySegment ring = MemorySegment.NULL;

    TapBatchBaseline() throws IOException {
        library = new CompiledC(SOURCE);
        writevBatch = library.function("vffm_tap_writev_batch",
                FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT, ADDRESS));
        uringOpen = library.function("vffm_uring_open", FunctionDescriptor.of(ADDRESS, JAVA_INT, ADDRESS));
        uringWritevBatch = library.function("vffm_uring_writev_batch",
                FunctionDescriptor.of(JAVA_LONG, ADDRESS, JAVA_INT, ADDRESS, JAVA_INT, ADDRESS));
        uringClose = library.function("vffm_uring_close", FunctionDescriptor.ofVoid(ADDRESS));
    }

    /** {@code batch} writevs, one per {@code struct iovec} at {@code iovecs}, into {@code tap}. */
    long writevBatch(int tap, MemorySegment iovecs, int batch) {
        try {
            return library.check((long) writevBatch.invokeExact(tap, iovecs, batch, library.failedCall()));
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /** Sets up the C side's io_uring of {@code entries} entries. */
    void openRing(int entries) {
        try {
            ring = (MemorySegment) uringOpen.invokeExact(entries, library.failedCall());
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
        if (ring.equals(MemorySegment.NULL)) {
            throw new IllegalStateException(SOURCE + ": " + library.failedCallName() + " failed");
        }
    }

    /** As {@link #writevBatch}, the writevs queued on the C side's ring and submitted and awaited with one enter. */
    long uringWritevBatch(int tap, MemorySegment iovecs, int batch) {
        try {
            return library.check((long) uringWritevBatch.invokeExact(ring, tap, iovecs, batch, library.failedCall()));
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /** Closes the ring, unloads the library. */
    @Override
    public void close() {
        if (!ring.equals(MemorySegment.NULL)) {
            try {
                uringClose.invokeExact(ring);
            } catch (RuntimeException | Error e) {
                throw e;
            } catch (Throwable t) {
                throw new IllegalStateException(t);
            }
            ring = MemorySegment.NULL;
        }
        library.close();
    }
}

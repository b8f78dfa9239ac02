package io.vhostffm.jmh;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.io.IOException;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/**
 * The C baseline of {@link UserspaceDatapathBenchmark}: {@code datapath-baseline.c}, compiled when
 * a trial starts ({@link CompiledC}) and called through FFM with the descriptors the benchmark's
 * fixture opened (the TAP queues and the AF_PACKET socket), so that both sides of the ratio run
 * on the same set-up in the same JVM run.
 */
final class DatapathBaseline implements AutoCloseable {
    static final String SOURCE = "datapath-baseline.c";
    private static final FunctionDescriptor TRANSMIT = FunctionDescriptor.of(JAVA_LONG,
            ADDRESS, JAVA_INT, JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, ADDRESS);
    private static final FunctionDescriptor RECEIVE = FunctionDescriptor.of(JAVA_LONG,
            JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT,
            ADDRESS, ADDRESS);

    private final CompiledC library;
    private final MethodHandle transmit;
    private final MethodHandle receive;
    private final MethodHandle nonblocking;
    private final MemorySegment failedCall;

    DatapathBaseline() throws IOException {
        library = new CompiledC(SOURCE);
        transmit = library.function("vffm_baseline_transmit", TRANSMIT);
        receive = library.function("vffm_baseline_receive", RECEIVE);
        nonblocking = library.function("vffm_baseline_nonblocking", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS));
        failedCall = library.failedCall();
    }

    /**
     * {@code batch} writevs of {@code packet} (vnet header + frame) into the TAP queues
     * ({@code queues} ints at {@code taps}), taking them in turn, then receives from {@code socket}
     * until all of them arrived.
     *
     * @return the frames that arrived (fewer than {@code batch}: timed out)
     */
    long transmit(MemorySegment taps, int queues, int socket, MemorySegment packet, MemorySegment buffer, int batch,
            int timeoutMillis) {
        try {
            return check((long) transmit.invokeExact(taps, queues, socket, packet, packet.byteSize(), buffer,
                    buffer.byteSize(), batch, timeoutMillis, failedCall));
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /**
     * {@code batch} sends from {@code socket}, taking the {@code flows} frames of {@code frameLength}
     * bytes at {@code frames} in turn, then readv from the TAP queues ({@code queues} ints at
     * {@code taps}) in turn until all of them arrived, adding to {@code perQueue} (a long per queue)
     * the frames each queue gave.
     *
     * @return the frames that arrived (fewer than {@code batch}: timed out)
     */
    long receive(int socket, MemorySegment taps, int queues, MemorySegment frames, long frameLength, int flows,
            MemorySegment buffer, int batch, int timeoutMillis, MemorySegment perQueue) {
        try {
            return check((long) receive.invokeExact(socket, taps, queues, frames, frameLength, flows, buffer,
                    buffer.byteSize(), batch, timeoutMillis, perQueue, failedCall));
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /**
     * Sets O_NONBLOCK on {@code fd}: with more than one TAP queue the receive loop reads each in
     * turn, and a blocking read on an empty one would wait while the frames sit on another.
     */
    void nonblocking(int fd) {
        try {
            check((long) nonblocking.invokeExact(fd, failedCall));
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    private long check(long result) {
        return library.check(result);
    }

    /** Unloads the library and removes its temporary directory. */
    @Override
    public void close() {
        library.close();
    }
}

package io.vhostffm.jmh;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import io.vhostffm.vhost.os.Errno;
import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.AddressLayout;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * The C baseline of {@link UserspaceDatapathBenchmark}: {@code datapath-baseline.c} (a resource of
 * this jar, from {@code jmh/src/main/c}), compiled with gcc {@code -O2} into a shared library in
 * a temporary directory when a trial starts, and called through FFM with the descriptors the
 * benchmark's fixture opened (the TAP queues and the AF_PACKET socket), so that both sides of the
 * ratio run on the same set-up in the same JVM run. Needs gcc (or cc) on the PATH.
 */
final class DatapathBaseline implements AutoCloseable {
    static final String SOURCE = "datapath-baseline.c";
    private static final AddressLayout CSTRING_POINTER = ADDRESS.withTargetLayout(
            java.lang.foreign.MemoryLayout.sequenceLayout(64, java.lang.foreign.ValueLayout.JAVA_BYTE));
    private static final FunctionDescriptor TRANSMIT = FunctionDescriptor.of(JAVA_LONG,
            ADDRESS, JAVA_INT, JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, ADDRESS);
    private static final FunctionDescriptor RECEIVE = FunctionDescriptor.of(JAVA_LONG,
            JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT,
            ADDRESS, ADDRESS);

    private final Path directory;
    private final Arena arena = Arena.ofShared();
    private final MethodHandle transmit;
    private final MethodHandle receive;
    private final MethodHandle nonblocking;
    private final MemorySegment failedCall;

    DatapathBaseline() throws IOException {
        directory = Files.createTempDirectory("vffm-datapath-baseline");
        try {
            Path source = directory.resolve(SOURCE);
            try (InputStream in = DatapathBaseline.class.getResourceAsStream(SOURCE)) {
                if (in == null) {
                    throw new IllegalStateException(SOURCE + " is not on the class path next to " + DatapathBaseline.class);
                }
                Files.copy(in, source);
            }
            Path library = directory.resolve("libvffm-datapath-baseline.so");
            compile(source, library);
            SymbolLookup lookup = SymbolLookup.libraryLookup(library, arena);
            Linker linker = Linker.nativeLinker();
            transmit = linker.downcallHandle(lookup.findOrThrow("vffm_baseline_transmit"), TRANSMIT);
            receive = linker.downcallHandle(lookup.findOrThrow("vffm_baseline_receive"), RECEIVE);
            nonblocking = linker.downcallHandle(lookup.findOrThrow("vffm_baseline_nonblocking"),
                    FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS));
            failedCall = arena.allocate(ADDRESS);
        } catch (IOException | RuntimeException e) {
            close();
            throw e;
        }
    }

    private static void compile(Path source, Path library) throws IOException {
        List<String> command = new ArrayList<>(List.of(compiler(), "-std=gnu11", "-O2", "-Wall", "-Werror",
                "-shared", "-fPIC", "-o", library.toString(), source.toString()));
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        byte[] out = p.getInputStream().readAllBytes();
        try {
            if (!p.waitFor(60, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IllegalStateException("gcc did not finish in 60 s: " + command);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted compiling " + source, e);
        }
        if (p.exitValue() != 0) {
            throw new IllegalStateException("gcc could not compile " + source + ":\n" + new String(out, StandardCharsets.UTF_8));
        }
    }

    private static String compiler() {
        for (String candidate : List.of("gcc", "cc")) {
            for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(":")) {
                if (Files.isExecutable(Path.of(dir, candidate))) {
                    return Path.of(dir, candidate).toString();
                }
            }
        }
        throw new IllegalStateException("no C compiler (gcc) on the PATH for the datapath's C baseline: apt-get install gcc");
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
        if (result >= 0) {
            return result;
        }
        String call = failedCall.get(CSTRING_POINTER, 0).getString(0, StandardCharsets.US_ASCII);
        throw new IllegalStateException("C baseline: " + call + ": " + Errno.describe((int) -result));
    }

    /** Unloads the library and removes the temporary directory. */
    @Override
    public void close() {
        arena.close();
        try (Stream<Path> files = Files.walk(directory)) {
            for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException e) {
            throw new IllegalStateException("could not remove " + directory, e);
        }
    }
}

package io.vhostffm.jmh;

import static java.lang.foreign.ValueLayout.ADDRESS;

import io.vhostffm.vhost.os.Errno;
import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.AddressLayout;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
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
 * A C baseline compiled when a trial starts: a {@code .c} resource of this jar (from
 * {@code jmh/src/main/c}) copied into a temporary directory, compiled with gcc {@code -O2} into a
 * shared library and loaded, so a benchmark's C side runs in the same JVM run and on the same
 * fixture as its Java side. Its functions return minus the errno on failure with the call's name
 * in a {@code const char **} the caller passes ({@link #failedCall()}); {@link #check} turns that
 * into an exception. Needs gcc (or cc) on the PATH.
 */
final class CompiledC implements AutoCloseable {
    private static final AddressLayout CSTRING_POINTER = ADDRESS.withTargetLayout(
            MemoryLayout.sequenceLayout(64, ValueLayout.JAVA_BYTE));

    private final String source;
    private final Path directory;
    private final Arena arena = Arena.ofShared();
    private final SymbolLookup lookup;
    private final MemorySegment failedCall;

    /** Compiles and loads {@code source}, a resource next to this class. */
    CompiledC(String source) throws IOException {
        this.source = source;
        directory = Files.createTempDirectory("vffm-c-baseline");
        try {
            Path file = directory.resolve(source);
            try (InputStream in = CompiledC.class.getResourceAsStream(source)) {
                if (in == null) {
                    throw new IllegalStateException(source + " is not on the class path next to " + CompiledC.class);
                }
                Files.copy(in, file);
            }
            Path library = directory.resolve("lib" + source.replace(".c", ".so"));
            compile(file, library);
            lookup = SymbolLookup.libraryLookup(library, arena);
            failedCall = arena.allocate(ADDRESS);
        } catch (IOException | RuntimeException e) {
            close();
            throw e;
        }
    }

    /** A downcall handle for {@code function}. */
    MethodHandle function(String function, FunctionDescriptor descriptor) {
        return Linker.nativeLinker().downcallHandle(lookup.findOrThrow(function), descriptor);
    }

    /** The {@code const char **} the functions name their failed call in. */
    MemorySegment failedCall() {
        return failedCall;
    }

    /** {@code result} when not negative; else an exception naming the failed call and the errno. */
    long check(long result) {
        if (result >= 0) {
            return result;
        }
        throw new IllegalStateException(source + ": " + failedCallName() + ": " + Errno.describe((int) -result));
    }

    /** The name the last failed function left in {@link #failedCall()}. */
    String failedCallName() {
        return failedCall.get(CSTRING_POINTER, 0).getString(0, StandardCharsets.US_ASCII);
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
        throw new IllegalStateException("no C compiler (gcc) on the PATH for the C baselines: apt-get install gcc");
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

package io.vhostffm.jmh;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;

/** This process's open file descriptors, for the no-leak checks of the fixture tests. */
final class OpenDescriptors {
    private OpenDescriptors() {}

    /** How many descriptors /proc/self/fd lists (the listing's own directory descriptor included, always). */
    static long count() {
        try (Stream<Path> fds = Files.list(Path.of("/proc/self/fd"))) {
            return fds.count();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}

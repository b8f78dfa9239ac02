package io.vhostffm.vhost.os;

import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * The minimal leak check of vhost-ffm's own tests: /proc/self/fd as number to link target. The
 * full checker (kinds, diffs) is testkit's {@code FdLinks}, which these tests cannot use:
 * testkit depends on this module.
 */
public final class FdLinks {
    private FdLinks() {}

    /**
     * How many entries /proc/self/fd lists now, the listing's own descriptor included: one
     * directory read, no link read, for a leak check run millions of times (a fuzz target's).
     * Two counts compare like two {@link #snapshot()} sizes (the listing's descriptor is in both).
     */
    public static int count() {
        String[] names = FD_DIRECTORY.list();
        if (names == null) {
            throw new UncheckedIOException(new IOException("cannot list " + FD_DIRECTORY));
        }
        return names.length;
    }

    private static final File FD_DIRECTORY = new File("/proc/self/fd");

    /** Number to link target of every descriptor open now (one closed while listed is left out). */
    public static Map<Integer, String> snapshot() {
        Map<Integer, String> links = new TreeMap<>();
        try (Stream<Path> fds = Files.list(Path.of("/proc/self/fd"))) {
            fds.forEach(fd -> {
                try {
                    links.put(Integer.valueOf(fd.getFileName().toString()), Files.readSymbolicLink(fd).toString());
                } catch (IOException closedMeanwhile) {
                    // the listing's own descriptor is gone by now
                }
            });
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return links;
    }
}

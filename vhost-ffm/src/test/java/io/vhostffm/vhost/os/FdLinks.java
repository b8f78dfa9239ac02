package io.vhostffm.vhost.os;

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

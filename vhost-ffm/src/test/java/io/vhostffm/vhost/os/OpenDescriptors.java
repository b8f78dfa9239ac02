package io.vhostffm.vhost.os;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;

/** The process's open descriptors as /proc/self/fd shows them: number to link target. */
public final class OpenDescriptors {
    private OpenDescriptors() {}

    public static Map<Integer, String> snapshot() {
        Map<Integer, String> open = new TreeMap<>();
        String[] names = new File("/proc/self/fd").list();
        if (names == null) {
            throw new IllegalStateException("/proc/self/fd is not readable");
        }
        for (String name : names) {
            try {
                open.put(Integer.parseInt(name), Files.readSymbolicLink(Path.of("/proc/self/fd", name)).toString());
            } catch (IOException e) {
                // the directory descriptor the listing used is gone by now: not ours to count
            }
        }
        return open;
    }
}

package io.vhostffm.vhost.vhostuser.backend;

import io.vhostffm.vhost.os.FdLinks;
import java.io.File;
import java.util.Map;
import java.util.TreeMap;

/** Finding the real peers (installed by bin/peer-bench) and running them as processes. */
final class PeerTools {
    private PeerTools() {}

    /** The executable {@code name} on PATH; fails (never skips) when it is missing. */
    static String executable(String name) {
        for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(":")) {
            File f = new File(dir, name);
            if (f.canExecute()) {
                return f.getPath();
            }
        }
        throw new AssertionError(name + " is not installed; bin/peer-bench installs the peers (Debian packages)");
    }

    /** Descriptors of the kinds a backend session opens (eventfds, memfds, sockets, TAPs). */
    static Map<Integer, String> sessionDescriptors() {
        Map<Integer, String> kept = new TreeMap<>();
        FdLinks.snapshot().forEach((fd, target) -> {
            if (target.contains("eventfd") || target.startsWith("/memfd:") || target.startsWith("socket:")
                    || target.equals("/dev/net/tun")) {
                kept.put(fd, target);
            }
        });
        return kept;
    }
}

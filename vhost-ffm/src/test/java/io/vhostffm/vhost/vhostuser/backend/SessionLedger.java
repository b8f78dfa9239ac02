package io.vhostffm.vhost.vhostuser.backend;

import io.vhostffm.vhost.os.FdLinks;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * What a vhost-user session could leave behind in this process, counted by kind: open descriptors
 * (eventfd, memfd, socket, TAP, other, from /proc/self/fd), live threads by name prefix (the name
 * up to its first digit, so "vhost-ffm userspace datapath pair 0 (...)" and "... pair 1 (...)"
 * count together), and the memfd mappings of /proc/self/maps (their number and bytes). The full
 * ledger is testkit's; this module's tests cannot use testkit, which depends on this module.
 *
 * @param counts every count by its label ("eventfd descriptors", "threads 'vhost-ffm userspace
 *               datapath pair'", "memfd mappings", "memfd mapped bytes", ...)
 * @param descriptors number to link target of every descriptor open, to name what a leak opened
 */
record SessionLedger(Map<String, Long> counts, Map<Integer, String> descriptors) {

    /** The ledger now. */
    static SessionLedger take() {
        Map<String, Long> counts = new TreeMap<>();
        for (String kind : List.of("eventfd", "memfd", "socket", "TAP", "other")) {
            counts.put(kind + " descriptors", 0L);
        }
        Map<Integer, String> descriptors = FdLinks.snapshot();
        descriptors.values().forEach(target -> counts.merge(kindOf(target) + " descriptors", 1L, Long::sum));
        for (Thread t : Thread.getAllStackTraces().keySet()) {
            if (t.isAlive()) {
                counts.merge("threads '" + prefixOf(t.getName()) + "'", 1L, Long::sum);
            }
        }
        counts.put("memfd mappings", 0L);
        counts.put("memfd mapped bytes", 0L);
        try (Stream<String> maps = Files.lines(Path.of("/proc/self/maps"))) {
            maps.filter(l -> l.contains("/memfd:")).forEach(l -> {
                String[] range = l.substring(0, l.indexOf(' ')).split("-");
                counts.merge("memfd mappings", 1L, Long::sum);
                counts.merge("memfd mapped bytes", Long.parseUnsignedLong(range[1], 16) - Long.parseUnsignedLong(range[0], 16),
                        Long::sum);
            });
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return new SessionLedger(Map.copyOf(counts), descriptors);
    }

    static String kindOf(String linkTarget) {
        if (linkTarget.contains("[eventfd]")) {
            return "eventfd";
        } else if (linkTarget.startsWith("/memfd:")) {
            return "memfd";
        } else if (linkTarget.startsWith("socket:")) {
            return "socket";
        } else if (linkTarget.equals("/dev/net/tun")) {
            return "TAP";
        }
        return "other";
    }

    private static String prefixOf(String threadName) {
        int i = 0;
        while (i < threadName.length() && !Character.isDigit(threadName.charAt(i))) {
            i++;
        }
        return threadName.substring(0, i).strip();
    }

    /**
     * Fails when any count of {@code after} is above {@code before}, naming {@code what}, each
     * count that grew with both values, and the descriptors opened in between.
     */
    static void requireFlat(String what, SessionLedger before, SessionLedger after) {
        List<String> grew = new ArrayList<>();
        after.counts.forEach((label, n) -> {
            long was = before.counts.getOrDefault(label, 0L);
            if (n > was) {
                grew.add(label + " " + was + " -> " + n + " (+" + (n - was) + ")");
            }
        });
        if (!grew.isEmpty()) {
            Map<Integer, String> opened = new TreeMap<>(after.descriptors);
            // Left out: the same descriptor as before, and the listing's own (/proc/PID/fd).
            opened.entrySet().removeIf(e -> e.getValue().equals(before.descriptors.get(e.getKey()))
                    || e.getValue().matches("/proc/\\d+/fd"));
            String openedList = opened.entrySet().stream().limit(12).map(e -> e.getKey() + " -> " + e.getValue()).toList()
                    + (opened.size() > 12 ? " and " + (opened.size() - 12) + " more" : "");
            throw new AssertionError(what + " leaks: " + grew + "; descriptors opened " + openedList);
        }
    }
}

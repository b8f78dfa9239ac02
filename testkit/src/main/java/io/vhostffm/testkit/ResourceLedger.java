package io.vhostffm.testkit;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What the process holds that a device's life cycle could leak, counted so that a test can prove
 * a transition run many times leaves nothing behind: take a {@link #take() snapshot} after a few
 * warm-up cycles, another after many more, and {@link #requireFlat} them. A leak then reads as the
 * kind of resource that grew and by how much ("eventfd descriptors 26 -> 126"), not a number.
 *
 * <p>Counted:
 * <ul>
 *   <li>open descriptors by {@link OpenDescriptors.Kind} (eventfd, memfd, TAP, vhost-net, socket,
 *       other), from {@link OpenDescriptors#snapshot()};</li>
 *   <li>live threads by {@link ThreadKind}, from their names (each thread the library starts is
 *       named after its job);</li>
 *   <li>mapped guest memory: the memfd mappings in {@code /proc/self/maps} and their bytes.</li>
 * </ul>
 * Native memory the library allocates through an {@code Arena} is not visible from inside the
 * process without native memory tracking; each such allocation belongs to an object whose
 * descriptors, threads or mappings are counted here. Direct byte buffers are not counted: the
 * library makes none, and the JDK's own (temporary buffers of its channels) are freed by the
 * garbage collector whenever it runs, so their count between two snapshots says nothing.
 */
public final class ResourceLedger {
    private ResourceLedger() {}

    /** The library's threads, told apart by the names it gives them. */
    public enum ThreadKind {
        /** {@code virtio-net-ctrl-vq-N}: serves the control virtqueue while the datapath runs. */
        CONTROL_QUEUE("virtio-net-ctrl-vq-"),
        /** {@code vhost-ffm userspace datapath pair N (...)[, pair M (...)]}: one per running worker. */
        USERSPACE_DATAPATH("vhost-ffm userspace datapath pair "),
        /** {@code vhost-net-ring-errors TAP}: waits on vhost-net's ring error eventfds. */
        VHOST_NET_ERROR_WATCHER("vhost-net-ring-errors "),
        /** {@code vhost-net quickstart TAP ...}: parked at prestart for a parallel kernel quickstart. */
        KERNEL_QUICKSTART("vhost-net quickstart "),
        /** {@code virtio-net-backend-closed}: tells the device its backend went away. */
        BACKEND_CLOSED_NOTICE("virtio-net-backend-closed"),
        /** {@code virtio-net-bad-input}: puts the device into NEEDS_RESET after bad guest input. */
        BAD_INPUT_REPORT("virtio-net-bad-input"),
        /** {@code migration-precopy}, {@code ram-precopy}: a migration's helpers. */
        MIGRATION("migration-precopy", "ram-precopy"),
        /** Any other thread (the JVM's, the test's). */
        OTHER();

        private final String[] prefixes;

        ThreadKind(String... prefixes) {
            this.prefixes = prefixes;
        }

        /** The kind of a thread named {@code name}. */
        public static ThreadKind of(String name) {
            for (ThreadKind k : values()) {
                for (String p : k.prefixes) {
                    if (name.startsWith(p)) {
                        return k;
                    }
                }
            }
            return OTHER;
        }

        /** How a count of these reads in a ledger: "control queue threads". */
        public String label() {
            return name().toLowerCase().replace('_', ' ') + " threads";
        }
    }

    /**
     * The process's resources at one moment.
     *
     * @param descriptors open descriptors, number to link target ({@link OpenDescriptors#snapshot()})
     * @param threads live threads by kind, each kind's names in order
     * @param memfdMappings mappings of memfds in {@code /proc/self/maps}
     * @param memfdMappedBytes the bytes those mappings span
     */
    public record Snapshot(Map<Integer, String> descriptors, Map<ThreadKind, List<String>> threads, long memfdMappings,
            long memfdMappedBytes) {

        /** Copies the collections. */
        public Snapshot {
            descriptors = Map.copyOf(descriptors);
            Map<ThreadKind, List<String>> copy = new EnumMap<>(ThreadKind.class);
            threads.forEach((k, v) -> copy.put(k, List.copyOf(v)));
            threads = copy;
        }

        /** Open descriptors of {@code kind}. */
        public long descriptors(OpenDescriptors.Kind kind) {
            return OpenDescriptors.count(descriptors, kind);
        }

        /** Live threads of {@code kind}. */
        public int threads(ThreadKind kind) {
            List<String> names = threads.get(kind);
            return names == null ? 0 : names.size();
        }

        /**
         * Every count by its label, in a fixed order: descriptors by kind, threads by kind, memfd
         * mappings and bytes.
         */
        public Map<String, Long> counts() {
            Map<String, Long> out = new LinkedHashMap<>();
            for (OpenDescriptors.Kind k : OpenDescriptors.Kind.values()) {
                out.put(label(k), descriptors(k));
            }
            for (ThreadKind k : ThreadKind.values()) {
                out.put(k.label(), (long) threads(k));
            }
            out.put("memfd mappings", memfdMappings);
            out.put("memfd mapped bytes", memfdMappedBytes);
            return out;
        }

        /** The non-zero counts, e.g. {@code eventfd descriptors=12, memfd mappings=2, ...}. */
        @Override
        public String toString() {
            StringBuilder b = new StringBuilder();
            counts().forEach((label, n) -> {
                if (n != 0) {
                    b.append(b.isEmpty() ? "" : ", ").append(label).append('=').append(n);
                }
            });
            return b.toString();
        }
    }

    /** One count that grew between two snapshots. */
    public record Growth(String resource, long before, long after) {
        @Override
        public String toString() {
            return resource + " " + before + " -> " + after + " (+" + (after - before) + ")";
        }
    }

    /** How a count of descriptors of {@code kind} reads: "eventfd descriptors", "TAP descriptors". */
    public static String label(OpenDescriptors.Kind kind) {
        return switch (kind) {
            case EVENTFD -> "eventfd descriptors";
            case MEMFD -> "memfd descriptors";
            case TAP -> "TAP descriptors";
            case VHOST -> "vhost-net descriptors";
            case SOCKET -> "socket descriptors";
            case OTHER -> "other descriptors";
        };
    }

    /** The process's resources now. */
    public static Snapshot take() {
        Map<Integer, String> descriptors = OpenDescriptors.snapshot();
        Map<ThreadKind, List<String>> threads = new EnumMap<>(ThreadKind.class);
        for (Thread t : liveThreads()) {
            if (t.isAlive()) {
                threads.computeIfAbsent(ThreadKind.of(t.getName()), k -> new ArrayList<>()).add(t.getName());
            }
        }
        threads.values().forEach(names -> names.sort(null));
        long[] memfd = memfdMappings();
        return new Snapshot(descriptors, threads, memfd[0], memfd[1]);
    }

    /**
     * How many descriptors are open and threads alive, whatever their kind: a reading cheap enough
     * for a check after every input of a fuzz target (one directory listing, no link read, no
     * {@code /proc/self/maps}). Equal readings mean nothing was opened or started net; a caller
     * takes a full {@link #take() snapshot} when they differ, and now and then anyway (a descriptor
     * of the device leaked while another of the process closed reads as no change).
     *
     * @param descriptors open descriptors, the listing's own included
     * @param threads live platform threads
     */
    public record Totals(int descriptors, int threads) {}

    /** The {@link Totals} now. */
    public static Totals totals() {
        return new Totals(OpenDescriptors.count(), liveThreads().size());
    }

    /** The counts that are higher in {@code after} than in {@code before}, in {@link Snapshot#counts()} order. */
    public static List<Growth> growth(Snapshot before, Snapshot after) {
        Map<String, Long> was = before.counts();
        List<Growth> out = new ArrayList<>();
        after.counts().forEach((label, n) -> {
            long b = was.getOrDefault(label, 0L);
            if (n > b) {
                out.add(new Growth(label, b, n));
            }
        });
        return out;
    }

    /**
     * Throws {@link AssertionError} when any count grew from {@code before} to {@code after},
     * naming {@code what} (the transition), each count that grew with both values, the
     * descriptors opened in between and the new threads' names.
     */
    public static void requireFlat(String what, Snapshot before, Snapshot after) {
        List<Growth> grown = growth(before, after);
        if (grown.isEmpty()) {
            return;
        }
        StringBuilder m = new StringBuilder(what).append(" leaks: ").append(grown);
        List<OpenDescriptors.Descriptor> opened = OpenDescriptors.opened(before.descriptors(), after.descriptors());
        if (!opened.isEmpty()) {
            m.append("; descriptors opened ").append(opened.size() > 10 ? opened.subList(0, 10) + " ..." : opened);
        }
        for (ThreadKind k : ThreadKind.values()) {
            if (after.threads(k) > before.threads(k)) {
                List<String> names = new ArrayList<>(after.threads().get(k));
                names.removeAll(before.threads().getOrDefault(k, List.of()));
                m.append("; new ").append(k.label()).append(' ').append(names.size() > 10 ? names.subList(0, 10) : names);
            }
        }
        m.append("; before: ").append(before).append("; after: ").append(after);
        throw new AssertionError(m.toString());
    }

    /**
     * The live platform threads, from the root thread group: unlike {@code Thread.getAllStackTraces()}
     * no stack is walked and no safepoint taken (a ledger taken after every input of a fuzz target
     * must be cheap).
     */
    public static List<Thread> liveThreads() {
        ThreadGroup root = Thread.currentThread().getThreadGroup();
        while (root.getParent() != null) {
            root = root.getParent();
        }
        Thread[] threads = new Thread[root.activeCount() + 16];
        int n;
        while ((n = root.enumerate(threads, true)) == threads.length) {
            threads = new Thread[threads.length * 2]; // more than room: some were left out, again
        }
        return Arrays.asList(threads).subList(0, n);
    }

    /** Mappings of memfds in {@code /proc/self/maps} and the bytes they span. */
    private static long[] memfdMappings() {
        List<String> lines;
        try {
            lines = Files.readAllLines(Path.of("/proc/self/maps"));
        } catch (IOException e) {
            throw new IllegalStateException("/proc/self/maps is not readable", e);
        }
        long count = 0;
        long bytes = 0;
        for (String line : lines) {
            // "start-end perms offset dev inode path": memfd paths read "/memfd:NAME (deleted)"
            if (!line.contains(" /memfd:")) {
                continue;
            }
            int dash = line.indexOf('-');
            int space = line.indexOf(' ');
            long start = Long.parseUnsignedLong(line.substring(0, dash), 16);
            long end = Long.parseUnsignedLong(line.substring(dash + 1, space), 16);
            count++;
            bytes += end - start;
        }
        return new long[] {count, bytes};
    }
}

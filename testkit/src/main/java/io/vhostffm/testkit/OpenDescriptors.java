package io.vhostffm.testkit;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The process's open file descriptors as {@code /proc/self/fd} shows them, to prove a test closed
 * what it opened: take a {@link #snapshot()} before, another after, and {@link #diff} them. Each
 * descriptor is classified by what it refers to ({@link Kind}), so a leak reads as "2 eventfd,
 * 1 TAP" rather than a list of numbers.
 */
public final class OpenDescriptors {
    private OpenDescriptors() {}

    /** What a descriptor refers to, from its {@code /proc/self/fd} link. */
    public enum Kind {
        /** {@code anon_inode:[eventfd]}. */
        EVENTFD,
        /** {@code /memfd:...}. */
        MEMFD,
        /** {@code /dev/net/tun}: a TAP queue. */
        TAP,
        /** {@code /dev/vhost-net}. */
        VHOST,
        /** {@code socket:[...]}. */
        SOCKET,
        /** Anything else (files, pipes, other anonymous inodes). */
        OTHER;

        /** The kind of a descriptor whose link reads {@code target}. */
        public static Kind of(String target) {
            if (target.equals("anon_inode:[eventfd]")) {
                return EVENTFD;
            }
            if (target.startsWith("/memfd:")) {
                return MEMFD;
            }
            if (target.equals("/dev/net/tun")) {
                return TAP;
            }
            if (target.equals("/dev/vhost-net")) {
                return VHOST;
            }
            if (target.startsWith("socket:")) {
                return SOCKET;
            }
            return OTHER;
        }
    }

    /** One open descriptor: its number, link target and kind. */
    public record Descriptor(int number, String target, Kind kind) {
        @Override
        public String toString() {
            return number + " -> " + target;
        }
    }

    private static final Path FD_DIRECTORY = Path.of("/proc/self/fd");

    /**
     * How many descriptors are open now: the size the kernel gives {@code /proc/self/fd} (its
     * count of open descriptors, since Linux 6.2: one stat, cheap enough for a check after every
     * fuzz input), or on an older kernel, which gives 0 there, the entries of one directory
     * listing, the listing's own descriptor included. Compare counts taken the same way only.
     */
    public static int count() {
        try {
            long size = Files.readAttributes(FD_DIRECTORY, BasicFileAttributes.class).size();
            if (size > 0) {
                return Math.toIntExact(size);
            }
        } catch (IOException e) {
            throw new IllegalStateException("/proc/self/fd is not readable", e);
        }
        return listing().length;
    }

    /** The entries of {@code /proc/self/fd}. */
    private static String[] listing() {
        String[] names = FD_DIRECTORY.toFile().list();
        if (names == null) {
            throw new IllegalStateException("/proc/self/fd is not readable");
        }
        return names;
    }

    /**
     * The open descriptors now: number to link target. The listing's own directory descriptor is
     * gone by the time its link would be read, so it is not in the map.
     */
    public static Map<Integer, String> snapshot() {
        Map<Integer, String> open = new TreeMap<>();
        for (String name : listing()) {
            try {
                open.put(Integer.parseInt(name), Files.readSymbolicLink(FD_DIRECTORY.resolve(name)).toString());
            } catch (IOException e) {
                // the directory descriptor the listing used is gone by now: not ours to count
            }
        }
        return open;
    }

    /**
     * The other processes that hold a descriptor to {@code target} (a {@code pipe:[inode]} or
     * {@code socket:[inode]} link, which names one kernel object host-wide), as "pid (command)
     * fd N": who keeps a pipe's end open when it should have ended. Processes whose descriptors
     * this one may not read are not listed.
     */
    public static List<String> holders(String target) {
        List<String> out = new ArrayList<>();
        long self = ProcessHandle.current().pid();
        String[] pids = new File("/proc").list((dir, name) -> name.chars().allMatch(Character::isDigit));
        if (pids == null) {
            return out;
        }
        for (String pid : pids) {
            if (Long.parseLong(pid) == self) {
                continue;
            }
            String[] fds = new File("/proc/" + pid + "/fd").list();
            if (fds == null) {
                continue; // gone, or not ours to read
            }
            for (String fd : fds) {
                try {
                    if (Files.readSymbolicLink(Path.of("/proc", pid, "fd", fd)).toString().equals(target)) {
                        out.add(pid + " (" + command(pid) + ") fd " + fd);
                    }
                } catch (IOException e) {
                    // closed meanwhile
                }
            }
        }
        return out;
    }

    private static String command(String pid) {
        try {
            return Files.readString(Path.of("/proc", pid, "comm")).strip();
        } catch (IOException e) {
            return "?";
        }
    }

    /** How many descriptors of {@code kind} {@code snapshot} holds. */
    public static long count(Map<Integer, String> snapshot, Kind kind) {
        return snapshot.values().stream().filter(t -> Kind.of(t) == kind).count();
    }

    /**
     * The descriptors open in {@code after} that were not open (or referred to something else) in
     * {@code before}: what was opened in between and not closed.
     */
    public static List<Descriptor> opened(Map<Integer, String> before, Map<Integer, String> after) {
        List<Descriptor> out = new ArrayList<>();
        for (var e : after.entrySet()) {
            if (!e.getValue().equals(before.get(e.getKey()))) {
                out.add(new Descriptor(e.getKey(), e.getValue(), Kind.of(e.getValue())));
            }
        }
        return out;
    }

    /**
     * As {@link #opened} against a snapshot taken now, but a pipe is looked at again until it
     * stays open for {@code settle}: right after a child process ends the JDK keeps the read end
     * of a pipe of its own open for a few milliseconds and then closes it (seen with any child;
     * no event tells when), which is not a leak. What is still open then is returned.
     */
    public static List<Descriptor> openedAfterSettling(Map<Integer, String> before, java.time.Duration settle) {
        long deadline = System.nanoTime() + settle.toNanos();
        while (true) {
            List<Descriptor> open = opened(before, snapshot());
            if (open.stream().noneMatch(d -> d.target().startsWith("pipe:")) || System.nanoTime() > deadline) {
                return open;
            }
            java.util.concurrent.locks.LockSupport.parkNanos(1_000_000);
        }
    }

    /**
     * What changed between two snapshots, in words: descriptors opened and closed, by kind; the
     * empty string when nothing did.
     */
    public static String diff(Map<Integer, String> before, Map<Integer, String> after) {
        List<Descriptor> opened = opened(before, after);
        List<Descriptor> closed = opened(after, before);
        if (opened.isEmpty() && closed.isEmpty()) {
            return "";
        }
        return "opened " + byKind(opened) + " " + opened + ", closed " + byKind(closed) + " " + closed;
    }

    private static Map<Kind, Integer> byKind(List<Descriptor> descriptors) {
        Map<Kind, Integer> out = new TreeMap<>();
        for (Descriptor d : descriptors) {
            out.merge(d.kind(), 1, Integer::sum);
        }
        return out;
    }
}

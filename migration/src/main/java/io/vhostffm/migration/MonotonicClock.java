package io.vhostffm.migration;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The clock the downtime is measured with, and whether two processes share it.
 *
 * <p>On Linux, HotSpot's {@link System#nanoTime()} is {@code clock_gettime(CLOCK_MONOTONIC)}
 * (os_posix: {@code os::javaTimeNanos}), not a per-process origin: every process of one boot
 * of one kernel in one time namespace reads the same clock, so a timestamp taken in the
 * source process and one taken in the destination process can be subtracted. Checked on the
 * build host by reading CLOCK_MONOTONIC from another process before and after a JVM printed
 * its {@code System.nanoTime()}: the JVM's value lay between the two. A time namespace
 * ({@code CLONE_NEWTIME}, containers) offsets CLOCK_MONOTONIC, and another boot or host has
 * another origin; {@link #domain()} names both, and only equal domains compare.
 */
public final class MonotonicClock {
    private static final String DOMAIN = readDomain();

    private MonotonicClock() {}

    /** Now, in ns of CLOCK_MONOTONIC. */
    public static long now() {
        return System.nanoTime();
    }

    /**
     * This process's clock domain: the kernel's boot id and the time namespace; "" when this is
     * not Linux or /proc cannot tell (then no other process is assumed to share the clock).
     */
    public static String domain() {
        return DOMAIN;
    }

    /** Whether a timestamp from a process of clock domain {@code other} compares with {@link #now()}. */
    public static boolean sameAs(String other) {
        return !DOMAIN.isEmpty() && DOMAIN.equals(other);
    }

    private static String readDomain() {
        try {
            String boot = Files.readString(Path.of("/proc/sys/kernel/random/boot_id")).strip();
            Path ns = Path.of("/proc/self/ns/time");
            String time = Files.exists(ns) ? Files.readSymbolicLink(ns).toString() : "time:[none]";
            return boot + " " + time;
        } catch (IOException | UnsupportedOperationException | SecurityException e) {
            return "";
        }
    }
}

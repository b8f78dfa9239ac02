package io.vhostffm.vhost.internal;

import java.lang.System.Logger.Level;
import java.time.Duration;
import java.util.function.LongSupplier;

/**
 * Warnings a guest can cause, at most a burst of them per interval, as the kernel's
 * {@code printk_ratelimited} does ({@code lib/ratelimit.c}, {@code DEFAULT_RATELIMIT_BURST} 10 per
 * {@code DEFAULT_RATELIMIT_INTERVAL} 5 s). A guest that breaks a rule, is reset and breaks it
 * again, hundreds of times a second, must not fill the host's log nor spend the host's processor
 * on it: past the burst a message goes out at {@code DEBUG} (still there for whoever enables it),
 * and the first warning of the next interval says how many were held back. The last reason is
 * never lost either way: the device keeps it ({@code needsResetReason}).
 *
 * <p>Thread-safe; one instance per source whose warnings belong together (a device, or a call
 * site of the datapath, which is started again at every reset).
 */
public final class RateLimitedWarnings {
    /** Warnings let through per interval, {@code DEFAULT_RATELIMIT_BURST}. */
    public static final int DEFAULT_BURST = 10;
    /** The interval, {@code DEFAULT_RATELIMIT_INTERVAL}. */
    public static final Duration DEFAULT_INTERVAL = Duration.ofSeconds(5);

    private final System.Logger log;
    private final int burst;
    private final long intervalNanos;
    private final LongSupplier nanoClock;
    private boolean started;
    private long windowStart;
    private int passed;
    private long heldBack;

    /** Warnings to {@code log}, {@link #DEFAULT_BURST} per {@link #DEFAULT_INTERVAL}. */
    public RateLimitedWarnings(System.Logger log) {
        this(log, DEFAULT_BURST, DEFAULT_INTERVAL, System::nanoTime);
    }

    /**
     * Warnings to {@code log}, {@code burst} per {@code interval} of {@code nanoClock}.
     *
     * @throws IllegalArgumentException when the burst is below 1 or the interval not positive
     */
    public RateLimitedWarnings(System.Logger log, int burst, Duration interval, LongSupplier nanoClock) {
        if (burst < 1 || interval.isNegative() || interval.isZero()) {
            throw new IllegalArgumentException("burst " + burst + ", interval " + interval);
        }
        this.log = log;
        this.burst = burst;
        this.intervalNanos = interval.toNanos();
        this.nanoClock = nanoClock;
    }

    /**
     * Logs {@code message} (as it is, no formatting) at {@code WARNING} when this interval has
     * room for it, else at {@code DEBUG}.
     *
     * @return whether it went out as a warning
     */
    public synchronized boolean warn(String message) {
        long now = nanoClock.getAsLong();
        if (!started || now - windowStart >= intervalNanos) {
            if (heldBack > 0) {
                log.log(Level.WARNING, heldBack + " similar warning(s) logged at DEBUG only in the last "
                        + Duration.ofNanos(now - windowStart).toMillis() + " ms (at most " + burst + " per "
                        + Duration.ofNanos(intervalNanos).toMillis() + " ms)");
            }
            started = true;
            windowStart = now;
            passed = 0;
            heldBack = 0;
        }
        if (passed < burst) {
            passed++;
            log.log(Level.WARNING, message);
            return true;
        }
        heldBack++;
        log.log(Level.DEBUG, message);
        return false;
    }
}

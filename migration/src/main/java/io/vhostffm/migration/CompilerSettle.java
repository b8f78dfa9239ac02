package io.vhostffm.migration;

import java.lang.management.CompilationMXBean;
import java.lang.management.ManagementFactory;
import java.time.Duration;

/**
 * Waits, after the destination's rehearsals, until the JIT compiler has finished what they gave
 * it, so that its compilations do not run inside the downtime. The rehearsals run the switchover's
 * code often enough to queue it for compilation; the compiler threads then work through that
 * queue for tens of milliseconds, on the processors the switchover will need. On a host with few
 * processors, or with the migration's threads under a real-time policy (which the compiler
 * threads inherit and which does not time-slice them), a switchover that comes during that
 * backlog waits for it.
 *
 * <p>The JDK gives no event for "the compile queue is empty"; {@link CompilationMXBean} gives the
 * compiler's accumulated time, in milliseconds. The compiler counts as settled once that time
 * has not grown over {@link #QUIET} checks {@link #STEP} apart; the wait never lasts longer than
 * its deadline (the early load goes on regardless; it only costs precopy time, not downtime).
 * {@link MigrationDestination} waits after its own rehearsals; a hypervisor that rehearses its own
 * switchover code (its vCPU state's encoding, say) calls {@link #await} after that.
 */
public final class CompilerSettle {
    /** Consecutive unchanged readings that count as settled. */
    public static final int QUIET = 3;
    /** Between readings. */
    public static final Duration STEP = Duration.ofMillis(5);

    private CompilerSettle() {}

    /**
     * Waits until the compiler settled or {@code deadline} passed.
     *
     * @return milliseconds waited, or -1 when this JVM gives no compilation time (no JIT, or not monitored)
     */
    public static long await(Duration deadline) {
        CompilationMXBean compiler = ManagementFactory.getCompilationMXBean();
        if (compiler == null || !compiler.isCompilationTimeMonitoringSupported() || deadline.isZero()) {
            return -1;
        }
        long start = System.nanoTime();
        long end = start + deadline.toNanos();
        long last = compiler.getTotalCompilationTime();
        int unchanged = 0;
        while (unchanged < QUIET && System.nanoTime() < end) {
            try {
                Thread.sleep(STEP);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
            long now = compiler.getTotalCompilationTime();
            unchanged = now == last ? unchanged + 1 : 0;
            last = now;
        }
        return (System.nanoTime() - start) / 1_000_000;
    }
}

package io.vhostffm.jmh;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadInfo;
import java.lang.management.ThreadMXBean;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import org.openjdk.jmh.infra.BenchmarkParams;
import org.openjdk.jmh.infra.IterationParams;
import org.openjdk.jmh.profile.InternalProfiler;
import org.openjdk.jmh.results.AggregationPolicy;
import org.openjdk.jmh.results.IterationResult;
import org.openjdk.jmh.results.Result;
import org.openjdk.jmh.results.ScalarResult;

/**
 * A JMH profiler ({@code -prof io.vhostffm.jmh.CpuTimeProfiler}) for machines shared with other
 * work: the CPU time the benchmark threads really used per operation, which does not grow when
 * the scheduler takes the CPU away the way wall-clock time does.
 *
 * <p>Per iteration it reports:
 * <ul>
 *   <li>{@code cpu.time.norm} (ns/op): CPU time of JMH's worker threads (named
 *       {@code ...-jmh-worker-N}) over the iteration, minus the setup work benchmarks declare with
 *       {@link #excludeSetup}, divided by all operations of the iteration (as the gc profiler's
 *       {@code gc.alloc.rate.norm} does);</li>
 *   <li>{@code cpu.share} (%): that CPU time over the iteration's wall-clock time times the
 *       number of worker threads: 100% when the threads ran the whole time, less when they waited
 *       for a processor;</li>
 *   <li>{@code cpu.datapath.norm} (ns/op), only when the userspace datapath's worker threads
 *       (named {@value #DATAPATH_NAME}...) ran during the iteration: their CPU time over the
 *       iteration divided by all its operations, busy polling included. With {@code
 *       cpu.time.norm} it gives the CPU a frame costs on every thread that handles it.</li>
 * </ul>
 * For a benchmark that spins (a ping-pong), CPU time includes the spinning, so it is the CPU a
 * round trip costs, not its latency. Thread CPU time comes from the JVM
 * ({@link ThreadMXBean#getThreadCpuTime}, Linux's per-thread CPU clock).
 */
public final class CpuTimeProfiler implements InternalProfiler {
    private static final String WORKER_NAME = "-jmh-worker-";
    /** How the userspace datapath's worker threads' names start. */
    static final String DATAPATH_NAME = "vhost-ffm userspace datapath";
    private static final ThreadMXBean THREADS = ManagementFactory.getThreadMXBean();
    private static final AtomicLong EXCLUDED_NANOS = new AtomicLong();

    private final Map<Long, Long> cpuAtStart = new HashMap<>();
    private final Map<Long, Long> datapathCpuAtStart = new HashMap<>();
    private long wallAtStart;

    /**
     * Declares CPU time a worker thread spent on setup work that is not part of the operation
     * (e.g. a {@code Level.Invocation} setup refilling a ring); it is left out of
     * {@code cpu.time.norm} for the current iteration.
     */
    public static void excludeSetup(long cpuNanos) {
        EXCLUDED_NANOS.addAndGet(cpuNanos);
    }

    /** The calling thread's CPU time in nanoseconds, for {@link #excludeSetup}. */
    public static long currentThreadCpuNanos() {
        return THREADS.getCurrentThreadCpuTime();
    }

    @Override
    public String getDescription() {
        return "CPU time of the benchmark threads per operation, and their share of the wall-clock time";
    }

    @Override
    public void beforeIteration(BenchmarkParams benchmarkParams, IterationParams iterationParams) {
        cpuAtStart.clear();
        cpuAtStart.putAll(cpuTimes(WORKER_NAME));
        datapathCpuAtStart.clear();
        datapathCpuAtStart.putAll(cpuTimes(DATAPATH_NAME));
        EXCLUDED_NANOS.set(0);
        wallAtStart = System.nanoTime();
    }

    @Override
    public List<? extends Result<?>> afterIteration(BenchmarkParams benchmarkParams, IterationParams iterationParams,
                                                    IterationResult result) {
        return results(result.getMetadata().getAllOps(), benchmarkParams.getThreads());
    }

    /** The iteration's figures, for {@code ops} operations done by {@code threads} worker threads. */
    List<ScalarResult> results(long ops, int threads) {
        long wall = System.nanoTime() - wallAtStart;
        long cpu = cpuSince(cpuAtStart, WORKER_NAME);
        long operationCpu = Math.max(0, cpu - EXCLUDED_NANOS.get());
        List<ScalarResult> results = new ArrayList<>(List.of(
                new ScalarResult("cpu.time.norm", ops == 0 ? Double.NaN : (double) operationCpu / ops, "ns/op",
                        AggregationPolicy.AVG),
                new ScalarResult("cpu.share", wall == 0 ? Double.NaN : 100.0 * cpu / ((double) wall * threads), "%",
                        AggregationPolicy.AVG)));
        long datapathCpu = cpuSince(datapathCpuAtStart, DATAPATH_NAME);
        if (datapathCpu > 0) {
            results.add(new ScalarResult("cpu.datapath.norm", ops == 0 ? Double.NaN : (double) datapathCpu / ops,
                    "ns/op", AggregationPolicy.AVG));
        }
        return results;
    }

    /** CPU time the live threads whose names contain {@code name} used since {@code atStart}. */
    private static long cpuSince(Map<Long, Long> atStart, String name) {
        long cpu = 0;
        for (Map.Entry<Long, Long> thread : cpuTimes(name).entrySet()) {
            // A thread that started during the iteration spent all its CPU time in it.
            cpu += thread.getValue() - atStart.getOrDefault(thread.getKey(), 0L);
        }
        return cpu;
    }

    /** CPU time of every live thread whose name contains {@code name}, by thread id. */
    private static Map<Long, Long> cpuTimes(String name) {
        Map<Long, Long> times = new HashMap<>();
        long[] ids = THREADS.getAllThreadIds();
        ThreadInfo[] infos = THREADS.getThreadInfo(ids);
        for (int i = 0; i < ids.length; i++) {
            if (infos[i] != null && infos[i].getThreadName().contains(name)) {
                long cpu = THREADS.getThreadCpuTime(ids[i]);
                if (cpu >= 0) {
                    times.put(ids[i], cpu);
                }
            }
        }
        return times;
    }
}

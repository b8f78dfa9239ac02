package io.vhostffm.jmh;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.openjdk.jmh.results.ScalarResult;

class CpuTimeProfilerTest {
    private static final long BURN_NANOS = 20_000_000;

    @Test
    void countsWorkerThreadsOnlyAndLeavesDeclaredSetupOut() throws Exception {
        CpuTimeProfiler profiler = new CpuTimeProfiler();
        profiler.beforeIteration(null, null);

        CountDownLatch burnt = new CountDownLatch(2);
        CountDownLatch release = new CountDownLatch(1);
        AtomicLong workerCpu = new AtomicLong();
        Thread worker = burner("bench.method-jmh-worker-1", burnt, release, workerCpu, true);
        Thread bystander = burner("some-other-thread", burnt, release, new AtomicLong(), false);
        worker.start();
        bystander.start();
        burnt.await();

        List<ScalarResult> results = profiler.results(1000, 1);
        release.countDown();
        worker.join();
        bystander.join();

        assertEquals("cpu.time.norm", results.get(0).getLabel());
        assertEquals("ns/op", results.get(0).getScoreUnit());
        double perOp = results.get(0).getScore();
        // The worker declared half its CPU time as setup; the bystander is not a worker at all.
        double expected = (workerCpu.get() - BURN_NANOS / 2) / 1000.0;
        assertTrue(perOp >= expected, perOp + " ns/op below the worker's own CPU time " + expected);
        assertTrue(perOp < expected + 5_000_000 / 1000.0,
                perOp + " ns/op: more than the worker's CPU time " + expected + " (bystander counted?)");
        assertEquals("cpu.share", results.get(1).getLabel());
        assertTrue(results.get(1).getScore() > 0 && results.get(1).getScore() <= 100.5, "share " + results.get(1).getScore());
    }

    @Test
    void reportsTheDatapathThreadsCpuApartWhenTheyRan() throws Exception {
        CpuTimeProfiler profiler = new CpuTimeProfiler();
        profiler.beforeIteration(null, null);
        List<ScalarResult> without = profiler.results(1000, 1);
        assertEquals(2, without.size(), "no datapath thread ran: " + without);

        profiler.beforeIteration(null, null);
        CountDownLatch burnt = new CountDownLatch(2);
        CountDownLatch release = new CountDownLatch(1);
        AtomicLong datapathCpu = new AtomicLong();
        Thread worker = burner("bench.method-jmh-worker-1", burnt, release, new AtomicLong(), false);
        Thread datapath = burner(CpuTimeProfiler.DATAPATH_NAME + " pair 0 (tap t0 queue 0)", burnt, release,
                datapathCpu, false);
        worker.start();
        datapath.start();
        burnt.await();

        List<ScalarResult> results = profiler.results(1000, 1);
        release.countDown();
        worker.join();
        datapath.join();

        assertEquals(3, results.size(), results.toString());
        assertEquals("cpu.datapath.norm", results.get(2).getLabel());
        assertEquals("ns/op", results.get(2).getScoreUnit());
        double perOp = results.get(2).getScore();
        // The datapath thread alone: its CPU time over the 1000 operations, not the worker's added.
        double expected = datapathCpu.get() / 1000.0;
        assertTrue(perOp >= expected, perOp + " ns/op below the datapath thread's own CPU time " + expected);
        assertTrue(perOp < expected + 5_000_000 / 1000.0,
                perOp + " ns/op: more than the datapath thread's CPU time " + expected + " (worker counted?)");
    }

    /** A thread that burns BURN_NANOS of CPU, records its CPU time, then waits (alive) for release. */
    private static Thread burner(String name, CountDownLatch burnt, CountDownLatch release, AtomicLong cpu,
                                 boolean declareHalfAsSetup) {
        Thread thread = new Thread(() -> {
            long start = CpuTimeProfiler.currentThreadCpuNanos();
            while (CpuTimeProfiler.currentThreadCpuNanos() - start < BURN_NANOS) {
                Thread.onSpinWait(); // the clock read itself burns the CPU
            }
            if (declareHalfAsSetup) {
                CpuTimeProfiler.excludeSetup(BURN_NANOS / 2);
            }
            cpu.set(CpuTimeProfiler.currentThreadCpuNanos());
            burnt.countDown();
            try {
                release.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, name);
        thread.setDaemon(true);
        return thread;
    }
}

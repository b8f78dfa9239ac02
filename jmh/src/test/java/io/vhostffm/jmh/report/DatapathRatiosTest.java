package io.vhostffm.jmh.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Locale;
import org.junit.jupiter.api.Test;

class DatapathRatiosTest {

    /** One JMH JSON entry of the datapath benchmark: thrpt in ops/s, with the gc profiler's B/op. */
    static String entry(String method, String impl, int frameSize, double score, double error, double bytesPerOp) {
        return entry(method, impl, frameSize, 1, score, error, bytesPerOp);
    }

    /** The same with a {@code pairs} parameter. */
    static String entry(String method, String impl, int frameSize, int pairs, double score, double error,
            double bytesPerOp) {
        return String.format(Locale.ROOT, """
                {"jmhVersion": "1.37", "benchmark": "io.vhostffm.jmh.UserspaceDatapathBenchmark.%s", "mode": "thrpt",
                 "threads": 1, "forks": 1, "jvm": "java", "jvmArgs": [], "jdkVersion": "25.0.3",
                 "vmName": "OpenJDK 64-Bit Server VM", "vmVersion": "25.0.3+9-LTS",
                 "warmupIterations": 3, "warmupTime": "1 s", "warmupBatchSize": 1,
                 "measurementIterations": 5, "measurementTime": "1 s", "measurementBatchSize": 1,
                 "params": {"frameSize": "%d", "impl": "%s", "pairs": "%d"},
                 "primaryMetric": {"score": %s, "scoreError": %s, "scoreConfidence": [0, 0],
                   "scorePercentiles": {}, "scoreUnit": "ops/s", "rawData": [[1, 2]]},
                 "secondaryMetrics": {"gc.alloc.rate.norm": {"score": %s, "scoreError": 0,
                   "scoreConfidence": [0, 0], "scorePercentiles": {}, "scoreUnit": "B/op", "rawData": [[0]]}}}""",
                method, frameSize, impl, pairs, score, error, bytesPerOp);
    }

    static String run() {
        return "[" + String.join(",",
                entry("receive", "c", 64, 500_000, 50_000, 0),
                entry("receive", "java", 64, 400_000, 40_000, 0.001),
                entry("transmit", "c", 64, 500_000, 0, 0),
                entry("transmit", "java", 64, 475_000, 0, 3.5),
                entry("transmit", "java", 1514, 300_000, 0, 0)) + "]";
    }

    @Test
    void dividesJavaByCPerDirectionAndFrameSize() {
        List<DatapathRatios.Row> rows = DatapathRatios.rows(BenchmarkResult.parseAll(run()));
        assertEquals(3, rows.size());
        DatapathRatios.Row rx = rows.get(0);
        assertEquals("RX", rx.direction());
        assertEquals("64", rx.frameSize());
        assertEquals(0.8, rx.javaOverC().score(), 1e-9);
        // 10% + 10% relative error
        assertEquals(0.16, rx.javaOverC().error(), 1e-9);
        assertEquals(0.95, rows.get(1).javaOverC().score(), 1e-9);
        assertEquals(3.5, rows.get(1).javaAllocation().score(), 1e-9);
        assertNull(rows.get(2).javaOverC(), "no C result at 1514 bytes");
    }

    @Test
    void saysWhetherTheGoalIsMet() {
        String table = DatapathRatios.render(BenchmarkResult.parseAll(run()));
        assertTrue(table.startsWith("## The userspace datapath against C doing the same work\n"), table);
        assertTrue(table.contains("| UserspaceDatapathBenchmark | RX | 64 | 1 | 400,000 ± 40,000 ops/s | "
                + "500,000 ± 50,000 ops/s | 0.80 ± 0.16 (not met) | ≈ 0 |"), table);
        assertTrue(table.contains("| TX | 64 | 1 | 475,000 ± 0 ops/s | 500,000 ± 0 ops/s | 0.95 ± 0.00 (met) | 3.50 |"), table);
        assertTrue(table.contains("| TX | 1514 | 1 | 300,000 ± 0 ops/s | — | — | ≈ 0 |"), table);
    }

    @Test
    void keepsOneAndTwoPairsApart() {
        String json = "[" + String.join(",",
                entry("receive", "java", 64, 1, 400_000, 0, 0),
                entry("receive", "c", 64, 1, 500_000, 0, 0),
                entry("receive", "java", 64, 2, 600_000, 0, 0),
                entry("receive", "c", 64, 2, 500_000, 0, 0)) + "]";
        List<DatapathRatios.Row> rows = DatapathRatios.rows(BenchmarkResult.parseAll(json));
        assertEquals(2, rows.size());
        assertEquals("1", rows.get(0).pairs());
        assertEquals(0.8, rows.get(0).javaOverC().score(), 1e-9);
        assertEquals("2", rows.get(1).pairs());
        assertEquals(1.2, rows.get(1).javaOverC().score(), 1e-9);
        assertTrue(DatapathRatios.render(BenchmarkResult.parseAll(json)).contains("| RX | 64 | 2 | 600,000"));
    }

    @Test
    void keepsSharedAndPerPairWorkersApart() {
        String json = "[" + String.join(",",
                entry("transmit", "java", 64, 2, 450_000, 0, 0).replace("\"pairs\": \"2\"", "\"pairs\": \"2\", \"workers\": \"shared\""),
                entry("transmit", "c", 64, 2, 500_000, 0, 0).replace("\"pairs\": \"2\"", "\"pairs\": \"2\", \"workers\": \"shared\""),
                entry("transmit", "java", 64, 2, 350_000, 0, 0).replace("\"pairs\": \"2\"", "\"pairs\": \"2\", \"workers\": \"per-pair\""),
                entry("transmit", "c", 64, 2, 500_000, 0, 0).replace("\"pairs\": \"2\"", "\"pairs\": \"2\", \"workers\": \"per-pair\"")) + "]";
        List<DatapathRatios.Row> rows = DatapathRatios.rows(BenchmarkResult.parseAll(json));
        assertEquals(2, rows.size());
        assertEquals("shared", rows.get(0).workers());
        assertEquals(0.9, rows.get(0).javaOverC().score(), 1e-9);
        assertEquals("per-pair", rows.get(1).workers());
        assertEquals(0.7, rows.get(1).javaOverC().score(), 1e-9);
        String table = DatapathRatios.render(BenchmarkResult.parseAll(json));
        assertTrue(table.contains("| TX | 64 | 2, shared | 450,000"), table);
        assertTrue(table.contains("| TX | 64 | 2, per-pair | 350,000"), table);
    }

    @Test
    void keepsTheTransmitSystemCallsApart() {
        String shared = "\"pairs\": \"1\", \"workers\": \"shared\"";
        String json = "[" + String.join(",",
                entry("transmit", "java", 64, 1, 450_000, 0, 0).replace("\"pairs\": \"1\"", shared + ", \"io\": \"writev\""),
                entry("transmit", "c", 64, 1, 500_000, 0, 0).replace("\"pairs\": \"1\"", shared + ", \"io\": \"writev\""),
                entry("transmit", "java", 64, 1, 300_000, 0, 0).replace("\"pairs\": \"1\"", shared + ", \"io\": \"io_uring\""),
                entry("transmit", "c", 64, 1, 400_000, 0, 0).replace("\"pairs\": \"1\"", shared + ", \"io\": \"io_uring\"")) + "]";
        List<DatapathRatios.Row> rows = DatapathRatios.rows(BenchmarkResult.parseAll(json));
        assertEquals(2, rows.size());
        assertEquals("writev", rows.get(0).io());
        assertEquals(0.9, rows.get(0).javaOverC().score(), 1e-9);
        assertEquals("io_uring", rows.get(1).io());
        assertEquals(0.75, rows.get(1).javaOverC().score(), 1e-9, "divided by the C figure of its own stretch");
        String table = DatapathRatios.render(BenchmarkResult.parseAll(json));
        assertTrue(table.contains("| TX | 64 | 1, shared, writev | 450,000"), table);
        assertTrue(table.contains("| TX | 64 | 1, shared, io_uring | 300,000"), table);
    }

    @Test
    void nothingWithoutDatapathResults() {
        assertEquals("", DatapathRatios.render(BenchmarkResult.parseAll(SwitchoverRatiosTest.kernelRun())));
    }
}

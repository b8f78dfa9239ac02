package io.vhostffm.jmh.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Locale;
import org.junit.jupiter.api.Test;

class SwitchoverRatiosTest {

    /** One JMH JSON entry of a switchover benchmark: avgt in us/op. */
    static String entry(String benchmarkClass, String method, int pairs, double score, double error) {
        return String.format(Locale.ROOT, """
                {"jmhVersion": "1.37", "benchmark": "io.vhostffm.jmh.%s.%s", "mode": "avgt", "threads": 1,
                 "forks": 1, "jvm": "java", "jvmArgs": [], "jdkVersion": "25.0.3",
                 "vmName": "OpenJDK 64-Bit Server VM", "vmVersion": "25.0.3+9-LTS",
                 "warmupIterations": 3, "warmupTime": "1 s", "warmupBatchSize": 1,
                 "measurementIterations": 5, "measurementTime": "2 s", "measurementBatchSize": 1,
                 "params": {"pairs": "%d"},
                 "primaryMetric": {"score": %s, "scoreError": %s, "scoreConfidence": [0, 0],
                   "scorePercentiles": {}, "scoreUnit": "us/op", "rawData": [[1, 2]]},
                 "secondaryMetrics": {}}""", benchmarkClass, method, pairs, score, error);
    }

    /** A kernel run: pairs 1 (classic 25x quickstart, quickstart 1.1x bare) and 16 (10x, 1.5x). */
    static String kernelRun() {
        return "[" + String.join(",",
                entry("KernelSwitchoverBenchmark", "quickstart", 1, 100, 10),
                entry("KernelSwitchoverBenchmark", "classic", 1, 2500, 250),
                entry("KernelSwitchoverBenchmark", "bareIoctls", 1, 100 / 1.1, 0),
                entry("KernelSwitchoverBenchmark", "quickstart", 16, 1500, 0),
                entry("KernelSwitchoverBenchmark", "classic", 16, 15000, 0),
                entry("KernelSwitchoverBenchmark", "bareIoctls", 16, 1000, 0)) + "]";
    }

    @Test
    void groupsByClassAndPairsAndComputesBothRatios() {
        List<SwitchoverRatios.Row> rows = SwitchoverRatios.rows(BenchmarkResult.parseAll(kernelRun()));
        assertEquals(2, rows.size());
        SwitchoverRatios.Row one = rows.get(0);
        assertEquals("KernelSwitchoverBenchmark", one.benchmarkClass());
        assertEquals("1", one.pairs());
        assertEquals(25.0, one.classicOverQuickstart().score(), 1e-9);
        // 10% + 10% relative error
        assertEquals(5.0, one.classicOverQuickstart().error(), 1e-9);
        assertEquals(1.1, one.quickstartOverBare().score(), 1e-9);
        assertEquals("x", one.quickstartOverBare().unit());
        SwitchoverRatios.Row sixteen = rows.get(1);
        assertEquals("16", sixteen.pairs());
        assertEquals(10.0, sixteen.classicOverQuickstart().score(), 1e-9);
        assertEquals(1.5, sixteen.quickstartOverBare().score(), 1e-9);
    }

    @Test
    void aParallelQuickstartIsNotTheRowsQuickstart() {
        String serial = entry("KernelSwitchoverBenchmark", "quickstart", 4, 500, 0)
                .replace("{\"pairs\": \"4\"}", "{\"pairs\": \"4\", \"quickstartThreads\": \"1\"}");
        String parallel = entry("KernelSwitchoverBenchmark", "quickstart", 4, 9000, 0)
                .replace("{\"pairs\": \"4\"}", "{\"pairs\": \"4\", \"quickstartThreads\": \"16\"}");
        String json = "[" + String.join(",", serial, parallel,
                entry("KernelSwitchoverBenchmark", "bareIoctls", 4, 400, 0)) + "]";
        List<SwitchoverRatios.Row> rows = SwitchoverRatios.rows(BenchmarkResult.parseAll(json));
        assertEquals(1, rows.size());
        assertEquals(500, rows.get(0).quickstart().score(), 1e-9);
        assertEquals(1.25, rows.get(0).quickstartOverBare().score(), 1e-9);
    }

    @Test
    void saysWhichGoalIsMetAndWhichNot() {
        String table = SwitchoverRatios.render(BenchmarkResult.parseAll(kernelRun()));
        assertTrue(table.startsWith("## The switchover: quickstart against a classic start\n"), table);
        assertTrue(table.contains("| KernelSwitchoverBenchmark | 1 | 100 ± 10 us | 2,500 ± 250 us | 90.9 ± 0.0 us | "
                + "25.0 ± 5.0x (met) | 1.10 ± 0.11x (met) |"), table);
        assertTrue(table.contains("| KernelSwitchoverBenchmark | 16 | 1,500 ± 0 us | 15,000 ± 0 us | 1,000 ± 0 us | "
                + "10.0 ± 0.0x (not met) | 1.50 ± 0.00x (not met) |"), table);
    }

    @Test
    void userspaceRowsHaveNoBareIoctlsAndOtherBenchmarksNoRow() {
        String json = "[" + String.join(",",
                entry("UserspaceSwitchoverBenchmark", "quickstart", 4, 200, 20),
                entry("UserspaceSwitchoverBenchmark", "classic", 4, 800, 0),
                entry("IndexResyncBenchmark", "queueResync", 4, 2, 0)) + "]";
        List<SwitchoverRatios.Row> rows = SwitchoverRatios.rows(BenchmarkResult.parseAll(json));
        assertEquals(1, rows.size());
        assertNull(rows.get(0).bare());
        assertNull(rows.get(0).quickstartOverBare());
        assertTrue(SwitchoverRatios.render(BenchmarkResult.parseAll(json))
                .contains("| UserspaceSwitchoverBenchmark | 4 | 200 ± 20 us | 800 ± 0 us | — | 4.00 ± 0.40x (not met) | — |"));
    }

    @Test
    void theVhostUserFrontendsFloorIsItsBareMessages() {
        String json = "[" + String.join(",",
                entry("VhostUserSwitchoverBenchmark", "quickstart", 16, 3000, 300),
                entry("VhostUserSwitchoverBenchmark", "classic", 16, 9000, 0),
                entry("VhostUserSwitchoverBenchmark", "bareMessages", 16, 2500, 250)) + "]";
        List<SwitchoverRatios.Row> rows = SwitchoverRatios.rows(BenchmarkResult.parseAll(json));
        assertEquals(1, rows.size());
        assertEquals(1.2, rows.get(0).quickstartOverBare().score(), 1e-9);
        // 10% + 10% relative error
        assertEquals(0.24, rows.get(0).quickstartOverBare().error(), 1e-9);
        assertTrue(SwitchoverRatios.render(BenchmarkResult.parseAll(json)).contains("| VhostUserSwitchoverBenchmark | 16 | "
                + "3,000 ± 300 us | 9,000 ± 0 us | 2,500 ± 250 us | 3.00 ± 0.30x (not met) | 1.20 ± 0.24x (met) |"));
    }

    @Test
    void noSwitchoverResultsNoSection() throws Exception {
        assertEquals("", SwitchoverRatios.render(BenchmarkResult.parseAll(BenchmarkResultTest.fixture())));
    }

    @Test
    void aRatioNeedsBothScoresInOneUnit() {
        var us = new BenchmarkResult.Metric(10, 1, "us/op");
        var ms = new BenchmarkResult.Metric(10, 1, "ms/op");
        assertNull(SwitchoverRatios.ratio(us, ms));
        assertNull(SwitchoverRatios.ratio(us, null));
        assertEquals("—", SwitchoverRatios.verdict(null, true, 20));
    }
}

package io.vhostffm.jmh.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Locale;
import org.junit.jupiter.api.Test;

class VhostUserDatapathRatiosTest {

    /** One JMH JSON entry of the vhost-user datapath benchmark: thrpt in ops/s. */
    static String entry(String method, String backend, String format, int frameSize, double score, double error) {
        return String.format(Locale.ROOT, """
                {"jmhVersion": "1.37", "benchmark": "io.vhostffm.jmh.VhostUserDatapathBenchmark.%s", "mode": "thrpt",
                 "threads": 1, "forks": 3, "jvm": "java", "jvmArgs": [], "jdkVersion": "25.0.3",
                 "vmName": "OpenJDK 64-Bit Server VM", "vmVersion": "25.0.3+9-LTS",
                 "warmupIterations": 3, "warmupTime": "1 s", "warmupBatchSize": 1,
                 "measurementIterations": 5, "measurementTime": "1 s", "measurementBatchSize": 1,
                 "params": {"backend": "%s", "format": "%s", "frameSize": "%d"},
                 "primaryMetric": {"score": %s, "scoreError": %s, "scoreConfidence": [0, 0],
                   "scorePercentiles": {}, "scoreUnit": "ops/s", "rawData": [[1, 2]]},
                 "secondaryMetrics": {}}""", method, backend, format, frameSize, score, error);
    }

    static String run() {
        return "[" + String.join(",",
                entry("roundTrip", "dpdk", "split", 64, 150_000, 15_000),
                entry("roundTrip", "userspace", "split", 64, 100_000, 10_000),
                entry("roundTrip", "dpdk", "packed", 64, 120_000, 0),
                entry("roundTrip", "userspace", "packed", 64, 150_000, 0),
                entry("roundTrip", "dpdk", "split", 1514, 90_000, 0)) + "]";
    }

    @Test
    void dividesDpdkByUserspacePerFormatAndFrameSize() {
        List<VhostUserDatapathRatios.Row> rows = VhostUserDatapathRatios.rows(BenchmarkResult.parseAll(run()));
        assertEquals(3, rows.size());
        assertEquals("split", rows.get(0).format());
        assertEquals("64", rows.get(0).frameSize());
        assertEquals(1.5, rows.get(0).dpdkOverUserspace().score(), 1e-9);
        // 10% + 10% relative error
        assertEquals(0.3, rows.get(0).dpdkOverUserspace().error(), 1e-9);
        assertEquals(0.8, rows.get(1).dpdkOverUserspace().score(), 1e-9);
        assertNull(rows.get(2).dpdkOverUserspace(), "no userspace result at 1514 bytes");
    }

    @Test
    void rendersTheTable() {
        String table = VhostUserDatapathRatios.render(BenchmarkResult.parseAll(run()));
        assertTrue(table.startsWith("## " + VhostUserDatapathRatios.HEADING + "\n"), table);
        assertTrue(table.contains("| VhostUserDatapathBenchmark | split | 64 | 150,000 ± 15,000 ops/s | "
                + "100,000 ± 10,000 ops/s | 1.50 ± 0.30x |"), table);
        assertTrue(table.contains("| packed | 64 | 120,000 ± 0 ops/s | 150,000 ± 0 ops/s | 0.80 ± 0.00x |"), table);
        assertTrue(table.contains("| split | 1514 | 90,000 ± 0 ops/s | — | — |"), table);
    }

    @Test
    void noResultsNoSection() throws Exception {
        assertEquals("", VhostUserDatapathRatios.render(BenchmarkResult.parseAll(BenchmarkResultTest.fixture())));
        assertEquals("", VhostUserDatapathRatios.render(BenchmarkResult.parseAll(DatapathRatiosTest.run())));
    }
}

package io.vhostffm.jmh.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class BenchmarkResultTest {

    static String fixture() throws IOException {
        try (InputStream in = BenchmarkResultTest.class.getResourceAsStream("/jmh-sample.json")) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
    }

    @Test
    void readsEveryEntryOfAJmhFile() throws IOException {
        List<BenchmarkResult> results = BenchmarkResult.parseAll(fixture());
        assertEquals(3, results.size());

        BenchmarkResult split = results.get(0);
        assertEquals("io.vhostffm.jmh.SampleResyncBenchmark.resync", split.benchmark());
        assertEquals("SampleResyncBenchmark.resync", split.shortName());
        assertEquals("avgt", split.mode());
        assertEquals(1, split.threads());
        assertEquals(Map.of("format", "split", "queues", "64"), split.params());
        assertEquals("format=split queues=64", split.paramsLabel());
        assertEquals(new BenchmarkResult.Metric(1.2345678, 0.0456, "ns/op"), split.primary());
        assertEquals(5.1744913959575554E-5, split.allocationPerOp().score());
        assertEquals("B/op", split.allocationPerOp().unit());
        assertTrue(split.groupMemberScores().isEmpty(), "gc.* metrics are not group members");
        assertEquals("25.0.3+9-LTS", split.vmVersion());
        assertEquals("JMH 1.37, 1 fork, 3 warmup x 1 s, 5 measured x 1 s", split.settings().describe());
        assertFalse(split.higherIsBetter());
        assertEquals(0.5, split.scoreByCpuTime(), "avgt ns/op: the CPU ns per op itself");
        assertEquals(39.6, split.cpuShare().score());

        BenchmarkResult packed = results.get(1);
        assertTrue(Double.isNaN(packed.primary().error()), "\"NaN\" error read as NaN");
        assertNull(packed.allocationPerOp(), "no gc profiler, no allocation figure");

        BenchmarkResult group = results.get(2);
        assertEquals("", group.paramsLabel());
        assertTrue(group.higherIsBetter());
        assertEquals(List.of("device", "driver"), List.copyOf(group.groupMemberScores().keySet()));
        assertEquals(1.605E7, group.groupMemberScores().get("driver").score());
        assertEquals(2, group.threads());
        assertEquals(5e7, group.scoreByCpuTime(), 1e-6, "thrpt ops/s: 1e9 / CPU ns per op");
        assertTrue(Double.isNaN(packed.scoreByCpuTime()), "no CPU profiler, no CPU score");
    }

    @Test
    void wrongShapeNamesTheEntryAndField() {
        IllegalArgumentException notArray = assertThrows(IllegalArgumentException.class,
                () -> BenchmarkResult.parseAll("{}"));
        assertTrue(notArray.getMessage().contains("expected a JSON array"), notArray.getMessage());

        String missingScore = "[{\"benchmark\":\"a.B.c\",\"mode\":\"avgt\",\"threads\":1,\"forks\":1,"
                + "\"warmupIterations\":1,\"measurementIterations\":1,"
                + "\"primaryMetric\":{\"scoreError\":1,\"scoreUnit\":\"ns/op\"}}]";
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> BenchmarkResult.parseAll(missingScore));
        assertEquals("JMH result entry 0: field primaryMetric.score: expected a number, found nothing", e.getMessage());

        IllegalArgumentException badMode = assertThrows(IllegalArgumentException.class,
                () -> BenchmarkResult.parseAll("[{\"benchmark\":\"a.B.c\",\"mode\":3}]"));
        assertEquals("JMH result entry 0: field mode: expected a string, found double 3.0", badMode.getMessage());
    }
}

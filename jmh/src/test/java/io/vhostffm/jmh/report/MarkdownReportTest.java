package io.vhostffm.jmh.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.time.Instant;
import java.util.List;
import org.junit.jupiter.api.Test;

class MarkdownReportTest {
    private static final MachineInfo MACHINE = new MachineInfo(2, "Test CPU", 8L * 1024 * 1024);

    @Test
    void headerNamesMachineJdkDateAndTheEmulationNote() throws IOException {
        String page = render("bench-chart.svg");
        assertTrue(page.startsWith("# Benchmark results\n"), page);
        assertTrue(page.contains("- Machine: 2 processors, Test CPU, 8.0 GiB memory\n"), page);
        assertTrue(page.contains("- JDK: OpenJDK 64-Bit Server VM 25.0.3+9-LTS\n"), page);
        assertTrue(page.contains("- Date: 2026-11-21 22:45 UTC\n"), page);
        assertTrue(page.contains("- Run: JMH 1.37, 1 fork, 3 warmup x 1 s, 5 measured x 1 s\n"), page);
        assertTrue(page.contains("- Source: `jmh-sample.json`"), page);
        assertTrue(page.contains("software-emulated (QEMU TCG) VM"), page);
        assertTrue(page.contains("only their ratios"), page);
        assertTrue(page.contains("![benchmark chart](bench-chart.svg)"), page);
    }

    @Test
    void oneRowPerResultAndGroupMember() throws IOException {
        List<String> rows = render(null).lines().filter(line -> line.startsWith("| ")).toList();
        assertEquals(List.of(
                "| Benchmark | Params | Mode | Score | Error | Units | By CPU time | On CPU | Alloc (B/op) |",
                "| SampleResyncBenchmark.resync | format=split queues=64 | avgt | 1.23 | ± 0.05 | ns/op | 0.500 | 40% | ≈ 0 |",
                "| SampleResyncBenchmark.resync | format=packed queues=1024 | avgt | 0.988 | n/a | ns/op |  |  |  |",
                "| SamplePingPong.pingPong |  | thrpt | 32,100,000 | ± 1,234,568 | ops/s | 50,000,000 |  | 24.0 |",
                "| SamplePingPong.pingPong:device |  | thrpt | 16,050,000 | ± 600,000 | ops/s |  |  |  |",
                "| SamplePingPong.pingPong:driver |  | thrpt | 16,050,000 | ± 634,568 | ops/s |  |  |  |"),
                rows);
        assertTrue(!render(null).contains("!["), "no chart link asked for, none written");
    }

    @Test
    void loadAverageLineSaysWhenOtherWorkCompeted() throws IOException {
        String busy = MarkdownReport.render(BenchmarkResult.parseAll(BenchmarkResultTest.fixture()), MACHINE,
                Instant.EPOCH, "x.json", null, LoadAverage.parse("12.68 11.53 7.33 5/900 1234"),
                LoadAverage.parse("3.00 9.5 7.5 1/2 3"));
        assertTrue(busy.contains("- Load average (1, 5, 15 min): 12.68, 11.53, 7.33 before the run; "
                + "3.00, 9.50, 7.50 after it. Other work kept more threads runnable than there are processors"), busy);
        String quiet = MarkdownReport.render(BenchmarkResult.parseAll(BenchmarkResultTest.fixture()), MACHINE,
                Instant.EPOCH, "x.json", null, LoadAverage.parse("0.10 0.20 0.30"), null);
        assertTrue(quiet.contains("- Load average (1, 5, 15 min): 0.10, 0.20, 0.30 before the run; unknown after it\n"), quiet);
        assertTrue(!render(null).contains("Load average"), "no load known, no line");
    }

    @Test
    void loadAverageParseRefusesGarbage() {
        IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                () -> LoadAverage.parse("1.0 x"));
        assertEquals("load average: expected three numbers, found \"1.0 x\"", e.getMessage());
    }

    @Test
    void figuresKeepAboutThreeSignificantDigits() {
        assertEquals("0", Figures.format(0));
        assertEquals("0.512", Figures.format(0.51234));
        assertEquals("1.23", Figures.format(1.234));
        assertEquals("12.3", Figures.format(12.34));
        assertEquals("123", Figures.format(123.4));
        assertEquals("1,235", Figures.format(1234.5));
        assertEquals("0.0001", Figures.format(0.0000517));
        assertEquals("n/a", Figures.format(Double.NaN));
    }

    private static String render(String chartLink) throws IOException {
        return MarkdownReport.render(BenchmarkResult.parseAll(BenchmarkResultTest.fixture()), MACHINE,
                Instant.parse("2026-11-21T22:45:10Z"), "jmh-sample.json", chartLink, null, null);
    }
}

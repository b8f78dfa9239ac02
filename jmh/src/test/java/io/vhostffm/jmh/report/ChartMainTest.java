package io.vhostffm.jmh.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.time.Instant;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ChartMainTest {

    @Test
    void writesTableAndChartFromAResultFile(@TempDir Path dir) throws Exception {
        Path json = dir.resolve("jmh-run.json");
        Files.writeString(json, BenchmarkResultTest.fixture());
        Files.setLastModifiedTime(json, FileTime.from(Instant.parse("2026-11-21T22:45:00Z")));
        Path markdown = dir.resolve("out/table.md");
        Path svg = dir.resolve("out/chart.svg");

        ChartMain.main(new String[] {json.toString(), "--markdown", markdown.toString(), "--svg", svg.toString()});

        String page = Files.readString(markdown);
        assertTrue(page.contains("- Date: 2026-11-21 22:45 UTC\n"), "run date is the result file's time: " + page);
        assertTrue(page.contains("![benchmark chart](chart.svg)"), "chart linked by its file name: " + page);
        assertTrue(page.contains("- Source: `jmh-run.json`"), page);
        assertEquals(6, page.lines().filter(l -> l.startsWith("| ")).count(), "header and five rows");
        String chart = Files.readString(svg);
        assertTrue(chart.startsWith("<?xml") && chart.trim().endsWith("</svg>"), chart);
        assertTrue(chart.contains("vhost-ffm benchmarks (JMH), 2026-11-21 22:45 UTC"), chart);
    }
}

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

    @Test
    void addsTheVmRunMarkedAndTheSwitchoverRatios(@TempDir Path dir) throws Exception {
        Path host = dir.resolve("jmh-host.json");
        Files.writeString(host, "[" + SwitchoverRatiosTest.entry("UserspaceSwitchoverBenchmark", "quickstart", 1, 200, 20)
                + "," + SwitchoverRatiosTest.entry("UserspaceSwitchoverBenchmark", "classic", 1, 900, 90) + "]");
        Path vm = dir.resolve("jmh-vm.json");
        Files.writeString(vm, SwitchoverRatiosTest.kernelRun());
        Files.setLastModifiedTime(vm, FileTime.from(Instant.parse("2026-11-22T00:30:00Z")));
        Path markdown = dir.resolve("table.md");
        Path svg = dir.resolve("chart.svg");

        ChartMain.main(new String[] {host.toString(), "--vm", vm.toString(), "--markdown", markdown.toString(),
                "--svg", svg.toString()});

        String page = Files.readString(markdown);
        assertTrue(page.contains("- Source: `jmh-host.json` (JMH JSON)"), page);
        assertTrue(page.contains("- Source of the rows marked [TCG VM]: `jmh-vm.json` of 2026-11-22 00:30 UTC"), page);
        assertTrue(page.contains("kernel vhost-net, TCG-emulated VM: only ratios mean anything"), page);
        assertTrue(page.contains("| KernelSwitchoverBenchmark [TCG VM].classic | pairs=16 | avgt |"), page);
        assertTrue(page.contains("| KernelSwitchoverBenchmark [TCG VM] | 1 | "), "ratio row of the VM run: " + page);
        assertTrue(page.contains("| UserspaceSwitchoverBenchmark | 1 | 200 ± 20 us | 900 ± 90 us | — | 4.50 ± 0.90x (not met) | — |"), page);
        String chart = Files.readString(svg);
        assertTrue(chart.contains("KernelSwitchoverBenchmark [TCG VM].quickstart"), "VM panels marked");
        assertTrue(chart.contains("only ratios mean anything"), "the chart says so too");
    }

    @Test
    void publishesWhereBinBenchPublishesAndTheReadmeLinks() throws Exception {
        Path root = repositoryRoot();
        assertEquals(Path.of("results", "published"), Path.of(ChartMain.PUBLISHED_DIR));
        String bench = Files.readString(root.resolve("bin/bench"));
        assertTrue(bench.contains("published=" + ChartMain.PUBLISHED_DIR + "\n"), "bin/bench --publish writes to "
                + ChartMain.PUBLISHED_DIR);
        assertTrue(bench.contains("$published/" + ChartMain.MARKDOWN_NAME) && bench.contains("$published/" + ChartMain.SVG_NAME),
                "bin/bench --publish writes the file names ChartMain defaults to");
        String readme = Files.readString(root.resolve("README.md"));
        assertTrue(readme.contains("](" + ChartMain.PUBLISHED_DIR + "/" + ChartMain.MARKDOWN_NAME + ")"),
                "the README links the published table");
        assertTrue(Files.isRegularFile(root.resolve(ChartMain.PUBLISHED_DIR).resolve(ChartMain.MARKDOWN_NAME)),
                "a published table is committed");
        String gitignore = Files.readString(root.resolve(".gitignore"));
        assertTrue(gitignore.contains("/results/*\n") && gitignore.contains("!/" + ChartMain.PUBLISHED_DIR + "/\n"),
                "raw runs ignored, the published run tracked: " + gitignore);
    }

    /** The repository's root: the first directory up from the working directory that has bin/bench. */
    private static Path repositoryRoot() {
        for (Path dir = Path.of("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
            if (Files.isRegularFile(dir.resolve("bin/bench"))) {
                return dir;
            }
        }
        throw new AssertionError("no bin/bench above " + Path.of("").toAbsolutePath());
    }

    @Test
    void aVmRunAloneIsEnough(@TempDir Path dir) throws Exception {
        Path vm = dir.resolve("jmh-vm.json");
        Files.writeString(vm, SwitchoverRatiosTest.kernelRun());
        Path markdown = dir.resolve("vm.md");
        ChartMain.main(new String[] {"--vm", vm.toString(), "--markdown", markdown.toString(), "--svg",
                dir.resolve("vm.svg").toString()});
        String page = Files.readString(markdown);
        assertTrue(!page.contains("- Source: `"), "no host source line: " + page);
        assertEquals(2, page.lines().filter(l -> l.startsWith("| KernelSwitchoverBenchmark [TCG VM] |")).count(), page);
    }
}

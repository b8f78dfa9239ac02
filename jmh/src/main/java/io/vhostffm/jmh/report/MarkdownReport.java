package io.vhostffm.jmh.report;

import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The Markdown page of a JMH run: the machine, the JDK, the date, how to read the figures, and
 * one table row per benchmark and parameter combination (plus one per member of a {@code @Group}).
 */
public final class MarkdownReport {
    /** What every page says about figures measured against the kernel. */
    static final String EMULATION_NOTE =
            "Figures of benchmarks that call the kernel's vhost-net come from a software-emulated "
            + "(QEMU TCG) VM, where one ioctl costs about a hundred times what it costs on hardware: "
            + "only their ratios within one run mean anything, never their absolute values. "
            + "Pure-Java figures (rings, index resync) were measured directly on the machine above.";

    /** How rows measured in the kernel-bench VM are marked (after the class name). */
    public static final String VM_LABEL = "[TCG VM]";
    /** What is said of the VM's rows wherever they appear. */
    public static final String VM_NOTE = "kernel vhost-net, TCG-emulated VM: only ratios mean anything";

    /**
     * Below this many bytes per operation the gc profiler's figure is its own accounting noise
     * (thread allocation counters read once per iteration, spread over millions of operations).
     */
    static final double NOTHING_ALLOCATED = 0.01;

    private static final DateTimeFormatter DATE =
            DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm 'UTC'").withZone(ZoneOffset.UTC);

    private MarkdownReport() {
    }

    /**
     * Renders the page.
     *
     * @param results the run's results, in the order to show them
     * @param machine where it ran
     * @param runDate when it ran
     * @param source the result file's name, cited under the table
     * @param chartLink relative link of the chart image to embed, or null for none
     * @param loadBefore load average just before the run, or null when unknown
     * @param loadAfter load average when the report was made (right after the run), or null
     */
    public static String render(List<BenchmarkResult> results, MachineInfo machine, Instant runDate,
                                String source, String chartLink, LoadAverage loadBefore, LoadAverage loadAfter) {
        return render(results, machine, runDate, source, chartLink, loadBefore, loadAfter, List.of());
    }

    /**
     * Renders the page, with results of runs in the kernel-bench VM among {@code results} (labelled
     * by the caller, {@link #VM_LABEL}) and the switchover ratios when there are switchover results.
     *
     * @param vmSources the VM result files' names with their dates, cited under the table (empty: none)
     */
    public static String render(List<BenchmarkResult> results, MachineInfo machine, Instant runDate,
                                String source, String chartLink, LoadAverage loadBefore, LoadAverage loadAfter,
                                List<String> vmSources) {
        StringBuilder out = new StringBuilder();
        out.append("# Benchmark results\n\n");
        out.append("- Machine: ").append(machine.describe()).append('\n');
        out.append("- JDK: ").append(jdks(results)).append('\n');
        out.append("- Date: ").append(DATE.format(runDate)).append('\n');
        out.append("- Run: ").append(settings(results)).append('\n');
        if (loadBefore != null || loadAfter != null) {
            out.append("- Load average (1, 5, 15 min): ")
                    .append(loadBefore == null ? "unknown" : loadBefore.describe()).append(" before the run; ")
                    .append(loadAfter == null ? "unknown" : loadAfter.describe()).append(" after it");
            if (loadBefore != null && loadBefore.oneMinute() >= machine.processors()) {
                out.append(". Other work kept more threads runnable than there are processors, so "
                        + "the benchmarks shared the CPU: time-based figures are pessimistic and their "
                        + "errors wide");
            }
            out.append('\n');
        }
        if (source != null) {
            out.append("- Source: `").append(source).append("` (JMH JSON)\n");
        }
        for (String vm : vmSources) {
            out.append("- Source of the rows marked ").append(VM_LABEL).append(": ").append(vm)
                    .append(" (JMH JSON), run by `bin/bench --in-vm` inside the kernel-bench VM (QEMU TCG, "
                            + "2 emulated CPUs, Debian's kernel with vhost-net) on the machine above: ")
                    .append(VM_NOTE).append('\n');
        }
        out.append('\n');
        out.append(EMULATION_NOTE).append("\n\n");
        out.append("Score: the mean over the measured iterations; error: half-width of JMH's 99.9% "
                + "confidence interval (n/a with fewer than two iterations). Mode `thrpt` is "
                + "operations per unit of time (higher is better); `avgt` is time per operation "
                + "(lower is better). By CPU time: the score as it would read if every operation took "
                + "only the CPU time the benchmark threads used (io.vhostffm.jmh.CpuTimeProfiler), that "
                + "is without the time they waited for a processor; on CPU: the share of the "
                + "wall-clock time they ran. Alloc: bytes allocated per operation by the benchmark "
                + "threads, from JMH's gc profiler; ≈ 0 means under 0.01 B/op, the profiler's own "
                + "noise: nothing allocated per operation. Blank when the profiler did not run.\n\n");
        out.append(SwitchoverRatios.render(results));
        out.append(DatapathRatios.render(results));
        out.append(VhostUserDatapathRatios.render(results));
        if (chartLink != null) {
            out.append("![benchmark chart](").append(chartLink).append(")\n\n");
        }
        out.append("| Benchmark | Params | Mode | Score | Error | Units | By CPU time | On CPU | Alloc (B/op) |\n");
        out.append("|---|---|---|--:|--:|---|--:|--:|--:|\n");
        for (BenchmarkResult result : results) {
            row(out, result.shortName(), result, result.primary(), byCpuTime(result), cpuShare(result),
                    allocation(result));
            for (Map.Entry<String, BenchmarkResult.Metric> member : result.groupMemberScores().entrySet()) {
                row(out, result.shortName() + ":" + member.getKey(), result, member.getValue(), "", "", "");
            }
        }
        return out.toString();
    }

    /** A run's date as the report shows it, e.g. {@code 2026-11-21 22:45 UTC}. */
    static String formatDate(Instant instant) {
        return DATE.format(instant);
    }

    private static void row(StringBuilder out, String name, BenchmarkResult result, BenchmarkResult.Metric metric,
                            String byCpuTime, String cpuShare, String allocation) {
        int decimals = Figures.decimalsFor(metric.score());
        out.append("| ").append(cell(name))
                .append(" | ").append(cell(result.paramsLabel()))
                .append(" | ").append(result.mode())
                .append(" | ").append(Figures.format(metric.score(), decimals))
                .append(" | ").append(Double.isFinite(metric.error()) ? "± " + Figures.format(metric.error(), decimals) : "n/a")
                .append(" | ").append(cell(metric.unit()))
                .append(" | ").append(byCpuTime)
                .append(" | ").append(cpuShare)
                .append(" | ").append(allocation)
                .append(" |\n");
    }

    private static String byCpuTime(BenchmarkResult result) {
        double score = result.scoreByCpuTime();
        return Double.isFinite(score) ? Figures.format(score) : "";
    }

    private static String cpuShare(BenchmarkResult result) {
        BenchmarkResult.Metric share = result.cpuShare();
        return share == null || !Double.isFinite(share.score()) ? "" : Math.round(share.score()) + "%";
    }

    private static String allocation(BenchmarkResult result) {
        BenchmarkResult.Metric allocation = result.allocationPerOp();
        if (allocation == null) {
            return "";
        }
        return allocation.score() < NOTHING_ALLOCATED ? "≈ 0" : Figures.format(allocation.score());
    }

    /** Table cells must not break the table: escape pipes, flatten newlines. */
    private static String cell(String text) {
        return text.replace("|", "\\|").replace('\n', ' ');
    }

    private static String jdks(List<BenchmarkResult> results) {
        Set<String> jdks = new LinkedHashSet<>();
        for (BenchmarkResult result : results) {
            jdks.add((result.vmName() + " " + result.vmVersion()).trim());
        }
        if (jdks.isEmpty() || jdks.equals(Set.of(""))) {
            return System.getProperty("java.vm.name") + " " + System.getProperty("java.vm.version")
                    + " (the report's JVM; the result file names none)";
        }
        return String.join("; ", jdks);
    }

    private static String settings(List<BenchmarkResult> results) {
        Set<String> settings = new LinkedHashSet<>();
        for (BenchmarkResult result : results) {
            settings.add(result.settings().describe());
        }
        return settings.isEmpty() ? "no results" : String.join("; ", settings);
    }
}

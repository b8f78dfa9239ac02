package io.vhostffm.jmh.report;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.List;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Locale;

/**
 * Turns JMH JSON result files into a Markdown table and an SVG chart.
 *
 * <pre>
 * ChartMain [RESULTS.json] [--vm VM-RESULTS.json]... [--markdown FILE.md] [--svg FILE.svg]
 *           [--chart-link LINK] [--load-before "1.00 0.80 0.50"]
 * </pre>
 *
 * {@code RESULTS.json} is a run on this machine; each {@code --vm} file a run in the kernel-bench
 * VM ({@code bin/bench --in-vm}), whose rows and chart panels are marked
 * {@value MarkdownReport#VM_LABEL} with the note that only their ratios mean anything. At least one
 * file is needed. The switchover benchmarks' ratios are tabled from all of them. Without
 * {@code --markdown} and {@code --svg} the report goes where a published run lives,
 * {@value #PUBLISHED_DIR}/ under the working directory ({@code bin/bench --publish} writes there
 * too; raw runs stay in the untracked {@code results/}).
 * The run's date is the first result file's modification time (JMH writes it when the run ends). The
 * chart link, embedded in the Markdown, defaults to the SVG's file name. {@code --load-before}
 * is {@code /proc/loadavg} as read before the run ({@code bin/bench} passes it); the load after
 * is read when the report is made.
 */
public final class ChartMain {
    /** Where a published run's table, chart and JSON live, relative to the repository's root. */
    static final String PUBLISHED_DIR = "results/published";
    /** The published table's file name. */
    static final String MARKDOWN_NAME = "bench-results.md";
    /** The published chart's file name. */
    static final String SVG_NAME = "bench-chart.svg";

    private ChartMain() {
    }

    /**
     * Entry point.
     *
     * @param args the result file, then options (see the class comment)
     */
    public static void main(String[] args) throws IOException {
        if (args.length == 0) {
            usage("missing the JMH JSON result file");
        }
        Path json = args[0].startsWith("-") ? null : Path.of(args[0]);
        List<Path> vmJsons = new ArrayList<>();
        Path markdown = Path.of(PUBLISHED_DIR, MARKDOWN_NAME);
        Path svg = Path.of(PUBLISHED_DIR, SVG_NAME);
        String chartLink = null;
        LoadAverage loadBefore = null;
        for (int i = json == null ? 0 : 1; i < args.length; i++) {
            String option = args[i];
            if (i + 1 >= args.length) {
                usage("option " + option + " needs a value");
            }
            String value = args[++i];
            switch (option) {
                case "--vm" -> vmJsons.add(Path.of(value));
                case "--markdown" -> markdown = Path.of(value);
                case "--svg" -> svg = Path.of(value);
                case "--chart-link" -> chartLink = value;
                case "--load-before" -> loadBefore = LoadAverage.parse(value);
                default -> usage("unknown option " + option);
            }
        }
        if (chartLink == null) {
            chartLink = svg.getFileName().toString();
        }

        // JMH runs benchmarks in no particular order; show them by name (stable: parameter
        // combinations keep JMH's order within a benchmark).
        if (json == null && vmJsons.isEmpty()) {
            usage("missing the JMH JSON result file");
        }
        List<BenchmarkResult> results = new ArrayList<>();
        if (json != null) {
            results.addAll(BenchmarkResult.parseAll(Files.readString(json)));
        }
        List<String> vmSources = new ArrayList<>();
        for (Path vm : vmJsons) {
            for (BenchmarkResult r : BenchmarkResult.parseAll(Files.readString(vm))) {
                results.add(r.labelled(MarkdownReport.VM_LABEL));
            }
            vmSources.add("`" + vm.getFileName() + "` of " + MarkdownReport.formatDate(Files.getLastModifiedTime(vm).toInstant()));
        }
        results.sort(Comparator.comparing(BenchmarkResult::benchmark));
        MachineInfo machine = MachineInfo.current();
        Instant runDate = Files.getLastModifiedTime(json != null ? json : vmJsons.get(0)).toInstant();

        LoadAverage loadAfter = LoadAverage.current();
        write(markdown, MarkdownReport.render(results, machine, runDate,
                json == null ? null : json.getFileName().toString(), chartLink, loadBefore, loadAfter, vmSources));
        String jdk = results.isEmpty() ? System.getProperty("java.vm.version") : results.get(0).vmVersion();
        String load = loadBefore == null ? "" : "  ·  load average " + String.format(Locale.ROOT, "%.1f", loadBefore.oneMinute()) + " before the run";
        String vmNote = vmJsons.isEmpty() ? "" : "  ·  " + MarkdownReport.VM_LABEL + ": " + MarkdownReport.VM_NOTE;
        write(svg, SvgChart.render(results, "vhost-ffm benchmarks (JMH), " + MarkdownReport.formatDate(runDate),
                machine.describe() + "  ·  JDK " + jdk + load + vmNote));
        // The ratio tables go to the terminal too (bin/bench prints them at the end of a run).
        for (String ratios : List.of(SwitchoverRatios.render(results), DatapathRatios.render(results),
                VhostUserDatapathRatios.render(results))) {
            System.out.print(ratios);
        }
        System.err.println("ChartMain: " + results.size() + " results -> " + markdown + ", " + svg);
    }

    private static void write(Path path, String text) throws IOException {
        Path parent = path.toAbsolutePath().getParent();
        if (parent != null) {
            Files.createDirectories(parent);
        }
        Files.writeString(path, text);
    }

    private static void usage(String problem) {
        System.err.println("ChartMain: " + problem);
        System.err.println("usage: ChartMain [RESULTS.json] [--vm VM-RESULTS.json]... [--markdown FILE.md] [--svg FILE.svg] [--chart-link LINK]"
                + " [--load-before \"1 5 15-minute load\"]");
        System.exit(2);
    }
}

package io.vhostffm.jmh.report;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.List;

/**
 * Turns a JMH JSON result file into a Markdown table and an SVG chart.
 *
 * <pre>
 * ChartMain RESULTS.json [--markdown docs/bench-results.md] [--svg docs/bench-chart.svg] [--chart-link LINK]
 *           [--load-before "1.00 0.80 0.50"]
 * </pre>
 *
 * The run's date is the result file's modification time (JMH writes it when the run ends). The
 * chart link, embedded in the Markdown, defaults to the SVG's file name. {@code --load-before}
 * is {@code /proc/loadavg} as read before the run ({@code bin/bench} passes it); the load after
 * is read when the report is made.
 */
public final class ChartMain {
    private ChartMain() {
    }

    /**
     * Entry point.
     *
     * @param args the result file, then options (see the class comment)
     */
    public static void main(String[] args) throws IOException {
        if (args.length == 0 || args[0].startsWith("-")) {
            usage("missing the JMH JSON result file");
        }
        Path json = Path.of(args[0]);
        Path markdown = Path.of("docs/bench-results.md");
        Path svg = Path.of("docs/bench-chart.svg");
        String chartLink = null;
        LoadAverage loadBefore = null;
        for (int i = 1; i < args.length; i++) {
            String option = args[i];
            if (i + 1 >= args.length) {
                usage("option " + option + " needs a value");
            }
            String value = args[++i];
            switch (option) {
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
        List<BenchmarkResult> results = new java.util.ArrayList<>(BenchmarkResult.parseAll(Files.readString(json)));
        results.sort(java.util.Comparator.comparing(BenchmarkResult::benchmark));
        MachineInfo machine = MachineInfo.current();
        Instant runDate = Files.getLastModifiedTime(json).toInstant();

        LoadAverage loadAfter = LoadAverage.current();
        write(markdown, MarkdownReport.render(results, machine, runDate, json.getFileName().toString(), chartLink,
                loadBefore, loadAfter));
        String jdk = results.isEmpty() ? System.getProperty("java.vm.version") : results.get(0).vmVersion();
        String load = loadBefore == null ? "" : "  ·  load average " + String.format(java.util.Locale.ROOT, "%.1f", loadBefore.oneMinute()) + " before the run";
        write(svg, SvgChart.render(results, "vhost-ffm benchmarks (JMH), " + MarkdownReport.formatDate(runDate),
                machine.describe() + "  ·  JDK " + jdk + load));
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
        System.err.println("usage: ChartMain RESULTS.json [--markdown FILE.md] [--svg FILE.svg] [--chart-link LINK]"
                + " [--load-before \"1 5 15-minute load\"]");
        System.exit(2);
    }
}

package io.vhostffm.jmh.report;

import java.util.ArrayList;
import java.util.List;

/**
 * The userspace datapath against C doing the same work, from {@code UserspaceDatapathBenchmark}'s
 * results: for each direction (its {@code transmit} and {@code receive} methods) and
 * {@code frameSize}, {@code pairs} (1 when the run has no such parameter) and {@code workers}
 * (the datapath's worker threads: {@code shared} or {@code per-pair}; none in older runs) and
 * {@code io} (how its transmit enters the kernel: {@code writev} or {@code io_uring}; none in older runs), the
 * score with {@code impl=java} divided by the score with {@code impl=c} of the same parameters
 * (goal: at least {@value #GOAL}), with the Java side's allocation per frame. A ratio's error adds
 * the two scores' relative errors ({@link SwitchoverRatios#ratio}).
 */
public final class DatapathRatios {
    /** The section's heading in the Markdown page. */
    static final String HEADING = "The userspace datapath against C doing the same work";
    /** Java at least this fraction of C. */
    static final double GOAL = 0.9;

    /**
     * One row: a direction at one frame size, pairs, worker threads and transmit system calls (""
     * when the run had no {@code workers} / {@code io} parameter); any metric may be null when it
     * did not run.
     */
    public record Row(String benchmarkClass, String direction, String frameSize, String pairs, String workers,
                      String io, BenchmarkResult.Metric java, BenchmarkResult.Metric c,
                      BenchmarkResult.Metric javaAllocation) {
        /** java / c with its error; null when either is missing. */
        public BenchmarkResult.Metric javaOverC() {
            return SwitchoverRatios.ratio(java, c);
        }
    }

    private DatapathRatios() {
    }

    /**
     * The rows: every {@code transmit} or {@code receive} result with an {@code impl} parameter in
     * a class named {@code ...UserspaceDatapath...}, grouped by class (with any label), method,
     * {@code frameSize}, {@code pairs}, {@code workers} and {@code io}, in the order first seen.
     */
    public static List<Row> rows(List<BenchmarkResult> results) {
        List<Row> rows = new ArrayList<>();
        for (ResultGroups.Group g : ResultGroups.of(results, (r, benchmarkClass, method) -> {
            String impl = r.params().get("impl");
            if (impl == null || !benchmarkClass.contains("UserspaceDatapath")
                    || !method.equals("transmit") && !method.equals("receive")) {
                return null;
            }
            return new ResultGroups.Place(ResultGroups.key(benchmarkClass, method,
                    r.params().getOrDefault("frameSize", ""), r.params().getOrDefault("pairs", "1"),
                    r.params().getOrDefault("workers", ""), r.params().getOrDefault("io", "")), impl);
        })) {
            List<String> k = g.key();
            BenchmarkResult java = g.bySide().get("java");
            BenchmarkResult c = g.bySide().get("c");
            rows.add(new Row(k.get(0), k.get(1).equals("transmit") ? "TX" : "RX", k.get(2), k.get(3), k.get(4), k.get(5),
                    java == null ? null : java.primary(), c == null ? null : c.primary(),
                    java == null ? null : java.allocationPerOp()));
        }
        return rows;
    }

    /** The Markdown section: a table of the rows and how to read it; empty when there is no row. */
    public static String render(List<BenchmarkResult> results) {
        List<Row> rows = rows(results);
        if (rows.isEmpty()) {
            return "";
        }
        StringBuilder out = new StringBuilder();
        out.append("## " + HEADING + "\n\n");
        out.append("Frames per second (mean ± 99.9% half-width) through a real TAP: the guest and the userspace "
                + "datapath (`impl=java`), and C doing the same work on the same TAP and AF_PACKET socket "
                + "(`impl=c`, one system call per frame), over 1 or more queue pairs (with `workers`: the "
                + "datapath's pairs on one `shared` worker thread, or a worker `per-pair`; with `io`: the datapath's "
                + "transmit writevs one system call each, `writev`, or a round's with one `io_uring` enter); Java / C, goal at least "
                + Figures.format(GOAL, 1) + "; the Java side's allocation per frame (gc profiler). Ratios of the "
                + "same run only; a ratio's error adds the two relative errors.\n\n");
        out.append("| Benchmark | Direction | Frame size | Pairs | Java | C | Java / C | Java alloc (B/op) |\n");
        out.append("|---|---|--:|--:|--:|--:|--:|--:|\n");
        for (Row row : rows) {
            out.append("| ").append(row.benchmarkClass().replace("|", "\\|"))
                    .append(" | ").append(row.direction())
                    .append(" | ").append(row.frameSize())
                    .append(" | ").append(row.pairs()).append(row.workers().isEmpty() ? "" : ", " + row.workers())
                    .append(row.io().isEmpty() ? "" : ", " + row.io())
                    .append(" | ").append(Figures.withError(row.java(), ""))
                    .append(" | ").append(Figures.withError(row.c(), ""))
                    .append(" | ").append(verdict(row.javaOverC()))
                    .append(" | ").append(allocation(row.javaAllocation()))
                    .append(" |\n");
        }
        return out.append('\n').toString();
    }

    /** "0.93 ± 0.05 (met)" or "(not met)"; "—" without a ratio. */
    static String verdict(BenchmarkResult.Metric ratio) {
        if (ratio == null) {
            return "—";
        }
        String error = Double.isFinite(ratio.error()) ? " ± " + Figures.format(ratio.error(), 2) : "";
        return Figures.format(ratio.score(), 2) + error + " (" + (ratio.score() >= GOAL ? "met" : "not met") + ")";
    }

    private static String allocation(BenchmarkResult.Metric m) {
        if (m == null) {
            return "";
        }
        return m.score() < MarkdownReport.NOTHING_ALLOCATED ? "≈ 0" : Figures.format(m.score());
    }
}

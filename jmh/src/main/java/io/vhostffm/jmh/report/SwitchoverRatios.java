package io.vhostffm.jmh.report;

import java.util.ArrayList;
import java.util.List;

/**
 * The switchover goals, from the switchover benchmarks' results: for each backend (and
 * where it ran) and each {@code pairs}, classic start / quickstart (goal: at least
 * {@value #CLASSIC_GOAL}x) and quickstart / its bare floor (goal: at most {@value #BARE_GOAL}x): the
 * kernel's bare ioctls ({@code bareIoctls}) or the vhost-user frontend's bare messages
 * ({@code bareMessages}); the userspace backend has no floor. A ratio's error is first-order and conservative: its relative error is the sum of the
 * two scores' relative errors (each JMH's 99.9% half-width).
 */
public final class SwitchoverRatios {
    /** The section's heading in the Markdown page. */
    static final String HEADING = "The switchover: quickstart against a classic start";
    /** Classic start at least this many times the quickstart. */
    static final double CLASSIC_GOAL = 20;
    /** Quickstart at most this many times its bare floor. */
    static final double BARE_GOAL = 1.2;

    /**
     * One row: a backend class (as the report names it) at one {@code pairs}; {@code bare} is the
     * floor, {@code bareIoctls} or {@code bareMessages}, or null.
     */
    public record Row(String benchmarkClass, String pairs, BenchmarkResult.Metric quickstart,
                      BenchmarkResult.Metric classic, BenchmarkResult.Metric bare) {
        /** classic / quickstart with its error; null when either is missing. */
        public BenchmarkResult.Metric classicOverQuickstart() {
            return ratio(classic, quickstart);
        }

        /** quickstart / bare with its error; null when either is missing. */
        public BenchmarkResult.Metric quickstartOverBare() {
            return ratio(quickstart, bare);
        }
    }

    private SwitchoverRatios() {
    }

    /** {@code a / b}, error from the relative errors; null when either is missing or not in the same unit. */
    static BenchmarkResult.Metric ratio(BenchmarkResult.Metric a, BenchmarkResult.Metric b) {
        if (a == null || b == null || !a.unit().equals(b.unit()) || !(b.score() > 0)) {
            return null;
        }
        double r = a.score() / b.score();
        double relative = Math.abs(a.error() / a.score()) + Math.abs(b.error() / b.score());
        return new BenchmarkResult.Metric(r, Double.isFinite(relative) ? r * relative : Double.NaN, "x");
    }

    /**
     * The rows: every result whose method is {@code quickstart}, {@code classic},
     * {@code bareIoctls} or {@code bareMessages} in a class named {@code ...Switchover...}, grouped
     * by class (with any label the report gave it) and the {@code pairs} parameter, in the order
     * first seen. A kernel quickstart with {@code quickstartThreads} other than 1 (pairs' steps in
     * parallel, not the default) is left out.
     */
    public static List<Row> rows(List<BenchmarkResult> results) {
        List<Row> rows = new ArrayList<>();
        for (ResultGroups.Group g : ResultGroups.of(results, (r, benchmarkClass, method) -> {
            if (!benchmarkClass.contains("Switchover")
                    || !List.of("quickstart", "classic", "bareIoctls", "bareMessages").contains(method)) {
                return null;
            }
            if (!r.params().getOrDefault("quickstartThreads", "1").equals("1")) {
                return null; // the goals are the default (serial) quickstart's; the others are in the chart
            }
            return new ResultGroups.Place(ResultGroups.key(benchmarkClass, r.params().getOrDefault("pairs", "")),
                    method.startsWith("bare") ? "bare" : method);
        })) {
            List<String> k = g.key();
            rows.add(new Row(k.get(0), k.get(1), primary(g, "quickstart"), primary(g, "classic"), primary(g, "bare")));
        }
        return rows;
    }

    private static BenchmarkResult.Metric primary(ResultGroups.Group g, String side) {
        BenchmarkResult r = g.bySide().get(side);
        return r == null ? null : r.primary();
    }

    /** The Markdown section: a table of the rows and how to read it; empty when there is no row. */
    public static String render(List<BenchmarkResult> results) {
        List<Row> rows = rows(results);
        if (rows.isEmpty()) {
            return "";
        }
        StringBuilder out = new StringBuilder();
        out.append("## " + HEADING + "\n\n");
        out.append("Time per switchover (mean ± 99.9% half-width) of early migration's quickstart, a classic "
                + "start from no backend, and the bare floor: only the ioctls (kernel) or vhost-user messages "
                + "(vhost-user frontend) quickstart must issue, with no backend around them; and the "
                + "ratios the goal is about: classic / quickstart at least " + Figures.format(CLASSIC_GOAL, 0)
                + "x, quickstart / bare floor at most " + Figures.format(BARE_GOAL, 1) + "x. Ratios of the "
                + "same run only; a ratio's error adds the two relative errors.\n\n");
        out.append("| Backend | Pairs | Quickstart | Classic | Bare floor | Classic / quickstart | "
                + "Quickstart / bare |\n");
        out.append("|---|--:|--:|--:|--:|--:|--:|\n");
        for (Row row : rows) {
            out.append("| ").append(row.benchmarkClass().replace("|", "\\|"))
                    .append(" | ").append(row.pairs())
                    .append(" | ").append(Figures.withError(row.quickstart(), "/op"))
                    .append(" | ").append(Figures.withError(row.classic(), "/op"))
                    .append(" | ").append(Figures.withError(row.bare(), "/op"))
                    .append(" | ").append(verdict(row.classicOverQuickstart(), true, CLASSIC_GOAL))
                    .append(" | ").append(verdict(row.quickstartOverBare(), false, BARE_GOAL))
                    .append(" |\n");
        }
        return out.append('\n').toString();
    }

    /** "31.2 ± 4.0x (met)" or "(not met)"; "—" without a ratio. */
    static String verdict(BenchmarkResult.Metric ratio, boolean atLeast, double goal) {
        if (ratio == null) {
            return "—";
        }
        int decimals = ratio.score() >= 10 ? 1 : 2;
        boolean met = atLeast ? ratio.score() >= goal : ratio.score() <= goal;
        String error = Double.isFinite(ratio.error()) ? " ± " + Figures.format(ratio.error(), decimals) : "";
        return Figures.format(ratio.score(), decimals) + error + "x (" + (met ? "met" : "not met") + ")";
    }
}

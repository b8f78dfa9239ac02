package io.vhostffm.jmh.report;

import java.util.ArrayList;
import java.util.List;

/**
 * The guest's frames per second through DPDK's vhost-user backend (our frontend on testpmd's
 * net_vhost) against the same guest on the userspace datapath and a TAP, from
 * {@code VhostUserDatapathBenchmark}'s results: for each ring {@code format} and
 * {@code frameSize}, the score with {@code backend=dpdk} divided by the score with
 * {@code backend=userspace}. No goal: the userspace side is
 * the device's other backend doing the same round trip, not a floor. A ratio's error adds the two
 * scores' relative errors ({@link SwitchoverRatios#ratio}).
 */
public final class VhostUserDatapathRatios {
    /** The section's heading in the Markdown page. */
    static final String HEADING = "The guest's frames through DPDK's vhost-user backend against the userspace datapath";

    /** One row: a ring format at one frame size; either side may be null when it did not run. */
    public record Row(String benchmarkClass, String format, String frameSize, BenchmarkResult dpdk,
                      BenchmarkResult userspace) {
        /** dpdk / userspace with its error; null when either is missing. */
        public BenchmarkResult.Metric dpdkOverUserspace() {
            return dpdk == null || userspace == null ? null : SwitchoverRatios.ratio(dpdk.primary(), userspace.primary());
        }
    }

    private VhostUserDatapathRatios() {
    }

    /**
     * The rows: every {@code roundTrip} result with a {@code backend} parameter in a class named
     * {@code ...VhostUserDatapath...}, grouped by class (with any label), {@code format} and
     * {@code frameSize}, in the order first seen.
     */
    public static List<Row> rows(List<BenchmarkResult> results) {
        List<Row> rows = new ArrayList<>();
        for (ResultGroups.Group g : ResultGroups.of(results, (r, benchmarkClass, method) -> {
            String backend = r.params().get("backend");
            if (backend == null || !benchmarkClass.contains("VhostUserDatapath") || !method.equals("roundTrip")) {
                return null;
            }
            return new ResultGroups.Place(ResultGroups.key(benchmarkClass, r.params().getOrDefault("format", ""),
                    r.params().getOrDefault("frameSize", "")), backend);
        })) {
            List<String> k = g.key();
            rows.add(new Row(k.get(0), k.get(1), k.get(2), g.bySide().get("dpdk"), g.bySide().get("userspace")));
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
        out.append("Frames per second (mean ± 99.9% half-width) the fake guest sends and gets back, in batches "
                + "of 32: through our vhost-user frontend to DPDK testpmd (macswap) (`backend=dpdk`), and through "
                + "the userspace datapath to a TAP, where a reflector thread sends each frame back "
                + "(`backend=userspace`); and their ratio. No goal: the userspace side is the "
                + "device's other backend, not a floor. Ratios of the same run only; a ratio's error adds the "
                + "two relative errors.\n\n");
        out.append("| Benchmark | Format | Frame size | DPDK | Userspace | DPDK / userspace |\n");
        out.append("|---|---|--:|--:|--:|--:|\n");
        for (Row row : rows) {
            out.append("| ").append(row.benchmarkClass().replace("|", "\\|"))
                    .append(" | ").append(row.format())
                    .append(" | ").append(row.frameSize())
                    .append(" | ").append(Figures.withError(row.dpdk() == null ? null : row.dpdk().primary(), ""))
                    .append(" | ").append(Figures.withError(row.userspace() == null ? null : row.userspace().primary(), ""))
                    .append(" | ").append(ratio(row.dpdkOverUserspace()))
                    .append(" |\n");
        }
        return out.append('\n').toString();
    }

    private static String ratio(BenchmarkResult.Metric ratio) {
        if (ratio == null) {
            return "—";
        }
        String error = Double.isFinite(ratio.error()) ? " ± " + Figures.format(ratio.error(), 2) : "";
        return Figures.format(ratio.score(), 2) + error + "x";
    }
}

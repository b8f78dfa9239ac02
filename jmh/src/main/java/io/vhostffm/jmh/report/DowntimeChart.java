package io.vhostffm.jmh.report;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.stream.Stream;

/**
 * The device-downtime benchmark's distribution chart: for each configuration (one CSV of the
 * downtime harness, {@code <label>.csv}: one migration a line, {@code total_ns} the fourth
 * column), the downtime against its percentile, on log scales (x: 0, 90, 99, 99.9 %..., as
 * HdrHistogram plots; y: ms), the first migration of a fresh destination process a dot at x=0.
 * The first migrations of {@code --fresh} runs ({@code <label>-first.csv}) are not drawn.
 * Same look as {@link SvgChart}.
 *
 * <pre>
 * java -cp jmh/target/classes io.vhostffm.jmh.report.DowntimeChart DIR OUT.svg
 * </pre>
 */
public final class DowntimeChart {
    private static final String[] PALETTE = {"#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#e15759", "#76b7b2",
        "#edc948", "#9c755f", "#bab0ac", "#ff9da7"};
    private static final int WIDTH = SvgChart.WIDTH;
    private static final int HEIGHT = 560;
    private static final int LEFT = 80;
    private static final int RIGHT = 300;
    private static final int TOP = 70;
    private static final int BOTTOM = 60;

    private DowntimeChart() {}

    /** One configuration: its label, the first migration and the sorted rest, in ns. */
    record Series(String label, long firstNanos, long[] sortedNanos) {}

    public static void main(String[] args) throws IOException {
        if (args.length != 2) {
            System.err.println("usage: DowntimeChart RESULTS-DIR OUT.svg");
            System.exit(2);
        }
        List<Series> series = new ArrayList<>();
        try (Stream<Path> files = Files.list(Path.of(args[0]))) {
            for (Path csv : files.filter(f -> f.toString().endsWith(".csv"))
                    .filter(f -> !f.toString().endsWith("-first.csv")).sorted().toList()) {
                series.add(read(csv));
            }
        }
        Files.writeString(Path.of(args[1]), render(series, "Device downtime per migration, by percentile",
                "pause at the source to the datapath ready on every queue at the destination; dot: first migration of a fresh destination process"));
    }

    static Series read(Path csv) throws IOException {
        List<String> lines = Files.readAllLines(csv);
        String label = csv.getFileName().toString().replaceFirst("\\.csv$", "");
        long first = -1;
        List<Long> rest = new ArrayList<>();
        for (String line : lines.subList(1, lines.size())) {
            String[] f = line.split(",");
            long total = Long.parseLong(f[3]);
            if (Integer.parseInt(f[0]) == 0) {
                first = total;
            } else {
                rest.add(total);
            }
        }
        long[] sorted = rest.stream().mapToLong(Long::longValue).toArray();
        Arrays.sort(sorted);
        return new Series(label, first, sorted);
    }

    /** x of percentile {@code p} (0..1): log10 of 1 / (1 - p), so 90 % is 1, 99 % is 2. */
    private static double nines(double p) {
        return Math.log10(1 / Math.max(1e-6, 1 - p));
    }

    static String render(List<Series> series, String title, String subtitle) {
        double maxNines = 1;
        double minMs = Double.MAX_VALUE;
        double maxMs = 0;
        for (Series s : series) {
            int n = s.sortedNanos().length;
            if (n > 0) {
                maxNines = Math.max(maxNines, nines((n - 0.5) / n));
                minMs = Math.min(minMs, s.sortedNanos()[0] / 1e6);
                maxMs = Math.max(maxMs, s.sortedNanos()[n - 1] / 1e6);
            }
            if (s.firstNanos() > 0) {
                maxMs = Math.max(maxMs, s.firstNanos() / 1e6);
                minMs = Math.min(minMs, s.firstNanos() / 1e6);
            }
        }
        if (maxMs == 0) {
            minMs = 0.1;
            maxMs = 1;
        }
        double lo = Math.floor(Math.log10(Math.max(1e-3, minMs)));
        double hi = Math.ceil(Math.log10(Math.max(maxMs, minMs * 1.01)));
        double xMax = Math.ceil(maxNines);
        int plotW = WIDTH - LEFT - RIGHT;
        int plotH = HEIGHT - TOP - BOTTOM;
        StringBuilder b = new StringBuilder();
        text(b, 20, 26, 16, "bold", "#222", "start", title);
        text(b, 20, 46, 12, "normal", "#555", "start", subtitle);
        b.append(String.format(Locale.ROOT, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#bbb\"/>%n",
                LEFT, TOP, plotW, plotH));
        for (double d = lo; d <= hi; d++) {
            int y = (int) Math.round(TOP + plotH - (d - lo) / (hi - lo) * plotH);
            b.append(String.format(Locale.ROOT, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#eee\"/>%n",
                    LEFT, y, LEFT + plotW, y));
            text(b, LEFT - 6, y + 4, 11, "normal", "#555", "end", SvgChart.compact(Math.pow(10, d)) + " ms");
        }
        for (int k = 0; k <= (int) xMax; k++) {
            int x = (int) Math.round(LEFT + k / xMax * plotW);
            b.append(String.format(Locale.ROOT, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#eee\"/>%n",
                    x, TOP, x, TOP + plotH));
            String label = k == 0 ? "0 %" : (100 - 100 / Math.pow(10, k)) + " %";
            text(b, x, TOP + plotH + 16, 11, "normal", "#555", "middle", label.replace(".0 %", " %"));
        }
        text(b, LEFT + plotW / 2, TOP + plotH + 36, 12, "normal", "#333", "middle", "percentile");
        for (int i = 0; i < series.size(); i++) {
            Series s = series.get(i);
            String color = PALETTE[i % PALETTE.length];
            long[] v = s.sortedNanos();
            StringBuilder points = new StringBuilder();
            for (int j = 0; j < v.length; j++) {
                double x = LEFT + nines((j + 0.5) / v.length) / xMax * plotW;
                double y = TOP + plotH - (Math.log10(Math.max(1e-3, v[j] / 1e6)) - lo) / (hi - lo) * plotH;
                points.append(String.format(Locale.ROOT, "%.1f,%.1f ", x, y));
            }
            b.append("<polyline fill=\"none\" stroke=\"").append(color).append("\" stroke-width=\"2\" points=\"")
                    .append(points.toString().trim()).append("\"/>\n");
            if (s.firstNanos() > 0) {
                double y = TOP + plotH - (Math.log10(s.firstNanos() / 1e6) - lo) / (hi - lo) * plotH;
                b.append(String.format(Locale.ROOT, "<circle cx=\"%d\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>%n", LEFT, y, color));
            }
            int ly = TOP + 14 + i * 18;
            b.append(String.format(Locale.ROOT, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"4\" fill=\"%s\"/>%n",
                    LEFT + plotW + 16, ly - 5, color));
            String p50 = v.length == 0 ? "-" : SvgChart.compact(v[(v.length - 1) / 2] / 1e6);
            String p99 = v.length == 0 ? "-" : SvgChart.compact(v[(int) Math.min(v.length - 1, Math.ceil(v.length * 0.99) - 1)] / 1e6);
            text(b, LEFT + plotW + 36, ly, 11, "normal", "#222", "start",
                    s.label() + "  p50 " + p50 + "  p99 " + p99 + " ms");
        }
        return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                + "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + WIDTH + "\" height=\"" + HEIGHT
                + "\" viewBox=\"0 0 " + WIDTH + " " + HEIGHT
                + "\" font-family=\"DejaVu Sans, Arial, Helvetica, sans-serif\">\n"
                + "<rect x=\"0\" y=\"0\" width=\"" + WIDTH + "\" height=\"" + HEIGHT + "\" fill=\"#ffffff\"/>\n"
                + b + "</svg>\n";
    }

    private static void text(StringBuilder out, int x, int y, int size, String weight, String color, String anchor,
            String content) {
        out.append(String.format(Locale.ROOT,
                "<text x=\"%d\" y=\"%d\" font-size=\"%d\" font-weight=\"%s\" fill=\"%s\" text-anchor=\"%s\">%s</text>%n",
                x, y, size, weight, color, anchor, SvgChart.escape(content)));
    }
}

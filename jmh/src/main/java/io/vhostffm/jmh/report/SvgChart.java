package io.vhostffm.jmh.report;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * A horizontal bar chart of a JMH run as SVG: one panel per benchmark (and mode and unit), one
 * bar per parameter combination with its 99.9% confidence interval as a whisker, each panel on
 * its own scale since units differ. Bars are coloured by the parameter that splits the panel into
 * the fewest groups (e.g. {@code format=split} against {@code format=packed}), with a legend.
 */
public final class SvgChart {
    static final int WIDTH = 1000;
    private static final int MARGIN = 20;
    private static final int CHAR_WIDTH = 7; // average advance of the 12px sans-serif used
    private static final int VALUE_WIDTH = 220;
    private static final int ROW_HEIGHT = 22;
    private static final int BAR_HEIGHT = 14;
    private static final String[] PALETTE = {"#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#e15759", "#76b7b2"};

    private SvgChart() {
    }

    /** One bar: a label, a score and its error, and the score by CPU time (NaN when unknown). */
    private record Bar(String label, double score, double error, double byCpuTime, int color) {
    }

    /** One benchmark's bars, on one scale. */
    private record Panel(String title, List<Bar> bars, List<String> legend) {
    }

    /**
     * Renders the chart.
     *
     * @param results the run's results, in the order to show them
     * @param title first heading line
     * @param subtitle second heading line (machine, JDK)
     */
    public static String render(List<BenchmarkResult> results, String title, String subtitle) {
        List<Panel> panels = panels(results);
        int labelWidth = 120;
        for (Panel panel : panels) {
            for (Bar bar : panel.bars()) {
                labelWidth = Math.max(labelWidth, bar.label().length() * CHAR_WIDTH + 16);
            }
        }
        labelWidth = Math.min(labelWidth, 380);
        int barX = MARGIN + labelWidth;
        int barWidth = WIDTH - barX - VALUE_WIDTH - MARGIN;

        StringBuilder body = new StringBuilder();
        int y = 80;
        text(body, MARGIN, 26, 16, "bold", "#222", "start", title);
        String legend = "bar: mean, whisker: 99.9% confidence interval";
        boolean anyCpu = panels.stream().flatMap(p -> p.bars().stream()).anyMatch(b -> Double.isFinite(b.byCpuTime()));
        text(body, MARGIN, 46, 12, "normal", "#555", "start", subtitle);
        text(body, MARGIN, 62, 12, "normal", "#555", "start", legend);
        if (anyCpu) {
            int x = MARGIN + legend.length() * CHAR_WIDTH + 24;
            diamond(body, x, 58);
            text(body, x + 10, 62, 12, "normal", "#555", "start",
                    "score by CPU time (without the time spent waiting for a processor)");
        }
        if (panels.isEmpty()) {
            text(body, MARGIN, y + 20, 12, "normal", "#222", "start", "No results in this run.");
            y += 40;
        }
        for (Panel panel : panels) {
            y = renderPanel(body, panel, y, barX, barWidth);
        }
        int height = y + 4;
        return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                + "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + WIDTH + "\" height=\"" + height
                + "\" viewBox=\"0 0 " + WIDTH + " " + height + "\" font-family=\"DejaVu Sans, Arial, Helvetica, sans-serif\">\n"
                + "<rect x=\"0\" y=\"0\" width=\"" + WIDTH + "\" height=\"" + height + "\" fill=\"#ffffff\"/>\n"
                + body
                + "</svg>\n";
    }

    private static int renderPanel(StringBuilder out, Panel panel, int top, int barX, int barWidth) {
        text(out, MARGIN, top + 14, 13, "bold", "#222", "start", panel.title());
        int y = top + 22;
        if (!panel.legend().isEmpty()) {
            int x = barX;
            for (int i = 0; i < panel.legend().size(); i++) {
                String entry = panel.legend().get(i);
                out.append(String.format(Locale.ROOT,
                        "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/>\n", x, y + 2, PALETTE[i % PALETTE.length]));
                text(out, x + 14, y + 11, 11, "normal", "#333", "start", entry);
                x += 14 + entry.length() * 7 + 18;
            }
            y += 18;
        }
        double max = 0;
        for (Bar bar : panel.bars()) {
            double upper = bar.score() + (Double.isFinite(bar.error()) ? bar.error() : 0);
            if (Double.isFinite(upper)) {
                max = Math.max(max, upper);
            }
            if (Double.isFinite(bar.byCpuTime())) {
                max = Math.max(max, bar.byCpuTime());
            }
        }
        double step = niceStep(max / 5);
        double axisMax = max <= 0 ? 1 : Math.ceil(max / step) * step;
        int rowsTop = y + 4;
        int rowsBottom = rowsTop + panel.bars().size() * ROW_HEIGHT;
        // Grid lines and tick labels first, so bars draw over them.
        int ticks = (int) Math.round(axisMax / step);
        for (int i = 0; i <= ticks; i++) {
            double tick = i * step;
            double x = barX + barWidth * tick / axisMax;
            out.append(String.format(Locale.ROOT,
                    "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\" stroke-width=\"1\"/>\n",
                    x, rowsTop, x, rowsBottom, tick == 0 ? "#888" : "#e2e2e2"));
            text(out, (int) Math.round(x), rowsBottom + 14, 10, "normal", "#555", "middle", tickLabel(tick));
        }
        int row = 0;
        for (Bar bar : panel.bars()) {
            int rowTop = rowsTop + row * ROW_HEIGHT;
            int center = rowTop + ROW_HEIGHT / 2;
            text(out, barX - 8, center + 4, 12, "normal", "#222", "end", bar.label());
            double score = Double.isFinite(bar.score()) ? Math.max(0, bar.score()) : 0;
            double length = barWidth * score / axisMax;
            out.append(String.format(Locale.ROOT,
                    "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>\n",
                    barX, center - BAR_HEIGHT / 2, length, BAR_HEIGHT, PALETTE[bar.color() % PALETTE.length]));
            if (Double.isFinite(bar.error()) && bar.error() > 0) {
                double low = barX + barWidth * Math.max(0, bar.score() - bar.error()) / axisMax;
                double high = barX + barWidth * Math.min(axisMax, bar.score() + bar.error()) / axisMax;
                out.append(String.format(Locale.ROOT,
                        "<path d=\"M%.1f %dV%dM%.1f %dH%.1fM%.1f %dV%d\" stroke=\"#222\" stroke-width=\"1.2\" fill=\"none\"/>\n",
                        low, center - 5, center + 5, low, center, high, high, center - 5, center + 5));
            }
            if (Double.isFinite(bar.byCpuTime())) {
                diamond(out, barX + barWidth * Math.max(0, bar.byCpuTime()) / axisMax, center);
            }
            String value = withError(bar.score(), bar.error());
            text(out, barX + barWidth + 10, center + 4, 12, "normal", "#222", "start", value);
            if (Double.isFinite(bar.byCpuTime())) {
                text(out, barX + barWidth + 10 + value.length() * CHAR_WIDTH + 8, center + 4, 11, "normal", "#666",
                        "start", "◇ " + withError(bar.byCpuTime(), Double.NaN));
            }
            row++;
        }
        return rowsBottom + 34;
    }

    private static List<Panel> panels(List<BenchmarkResult> results) {
        Map<String, List<BenchmarkResult>> grouped = new LinkedHashMap<>();
        for (BenchmarkResult result : results) {
            String key = result.shortName() + "\u0000" + result.mode() + "\u0000" + result.primary().unit();
            grouped.computeIfAbsent(key, k -> new ArrayList<>()).add(result);
        }
        List<Panel> panels = new ArrayList<>();
        for (List<BenchmarkResult> members : grouped.values()) {
            BenchmarkResult first = members.get(0);
            String colorParam = colorParameter(members);
            List<String> colorValues = new ArrayList<>();
            if (colorParam != null) {
                for (BenchmarkResult r : members) {
                    if (!colorValues.contains(r.params().get(colorParam))) {
                        colorValues.add(r.params().get(colorParam));
                    }
                }
            }
            List<Bar> bars = new ArrayList<>();
            for (BenchmarkResult r : members) {
                int color = colorParam == null ? 0 : colorValues.indexOf(r.params().get(colorParam));
                boolean group = !r.groupMemberScores().isEmpty();
                String label = r.paramsLabel().isEmpty() ? (group ? "total" : "(no params)")
                        : r.paramsLabel() + (group ? " total" : "");
                bars.add(new Bar(label, r.primary().score(), r.primary().error(), r.scoreByCpuTime(), color));
                for (Map.Entry<String, BenchmarkResult.Metric> member : r.groupMemberScores().entrySet()) {
                    BenchmarkResult.Metric m = member.getValue();
                    String memberLabel = (r.paramsLabel().isEmpty() ? "" : r.paramsLabel() + " ") + "· " + member.getKey();
                    bars.add(new Bar(memberLabel, m.score(), m.error(), Double.NaN, color));
                }
            }
            List<String> legend = new ArrayList<>();
            for (String value : colorValues) {
                legend.add(colorParam + "=" + value);
            }
            String direction = first.higherIsBetter() ? "higher is better" : "lower is better";
            String title = first.shortName() + "  (" + first.mode() + ", " + first.primary().unit() + ", " + direction + ")";
            panels.add(new Panel(title, bars, legend));
        }
        return panels;
    }

    /**
     * The parameter with 2 to 6 distinct values that splits the panel into the fewest groups, or
     * null; none when only one parameter varies, since the bar labels already tell those apart.
     */
    private static String colorParameter(List<BenchmarkResult> members) {
        Map<String, Set<String>> values = new LinkedHashMap<>();
        for (BenchmarkResult r : members) {
            r.params().forEach((name, value) -> values.computeIfAbsent(name, n -> new LinkedHashSet<>()).add(value));
        }
        long varying = values.values().stream().filter(v -> v.size() >= 2).count();
        if (varying < 2) {
            return null;
        }
        String best = null;
        int bestCount = Integer.MAX_VALUE;
        for (Map.Entry<String, Set<String>> e : values.entrySet()) {
            int count = e.getValue().size();
            if (count >= 2 && count <= PALETTE.length && count < bestCount) {
                best = e.getKey();
                bestCount = count;
            }
        }
        return best;
    }

    /** 1, 2, 2.5 or 5 times a power of ten, at least {@code raw}. */
    static double niceStep(double raw) {
        if (!(raw > 0) || !Double.isFinite(raw)) {
            return 1;
        }
        double power = Math.pow(10, Math.floor(Math.log10(raw)));
        for (double factor : new double[] {1, 2, 2.5, 5, 10}) {
            if (factor * power >= raw * (1 - 1e-9)) {
                return factor * power;
            }
        }
        return 10 * power;
    }

    /** An axis tick: the compact figure without trailing zeros (1, 2.5, 30M). */
    static String tickLabel(double tick) {
        String label = compact(tick);
        String suffix = label.isEmpty() || Character.isDigit(label.charAt(label.length() - 1))
                ? "" : label.substring(label.length() - 1);
        String number = label.substring(0, label.length() - suffix.length());
        if (number.contains(".")) {
            number = number.replaceAll("0+$", "").replaceAll("\\.$", "");
        }
        return number + suffix;
    }

    /** Score and error on the score's scale and precision: {@code 32.1M ± 1.2M}, {@code 1.23 ± 0.05}. */
    static String withError(double score, double error) {
        if (!Double.isFinite(score)) {
            return "n/a";
        }
        double magnitude = Math.abs(score);
        double divisor = magnitude >= 1e9 ? 1e9 : magnitude >= 1e6 ? 1e6 : magnitude >= 1e4 ? 1e3 : 1;
        String suffix = divisor == 1e9 ? "G" : divisor == 1e6 ? "M" : divisor == 1e3 ? "k" : "";
        int decimals = Figures.decimalsFor(score / divisor);
        String text = Figures.format(score / divisor, decimals) + suffix;
        if (Double.isFinite(error)) {
            text += " ± " + Figures.format(error / divisor, decimals) + suffix;
        }
        return text;
    }

    /** Short figure for the chart: 32.1M, 4.56k, 12.3, 0.512. */
    static String compact(double value) {
        if (!Double.isFinite(value)) {
            return "n/a";
        }
        double magnitude = Math.abs(value);
        if (magnitude >= 1e9) {
            return Figures.format(value / 1e9) + "G";
        }
        if (magnitude >= 1e6) {
            return Figures.format(value / 1e6) + "M";
        }
        if (magnitude >= 1e4) {
            return Figures.format(value / 1e3) + "k";
        }
        return Figures.format(value);
    }

    /** A small black-outlined white diamond centred on (x, y): the score by CPU time. */
    private static void diamond(StringBuilder out, double x, int y) {
        out.append(String.format(Locale.ROOT,
                "<path d=\"M%.1f %dL%.1f %dL%.1f %dL%.1f %dZ\" fill=\"#ffffff\" stroke=\"#222\" stroke-width=\"1.2\"/>\n",
                x, y - 6, x + 5, y, x, y + 6, x - 5, y));
    }

    private static void text(StringBuilder out, int x, int y, int size, String weight, String color,
                             String anchor, String text) {
        out.append("<text x=\"").append(x).append("\" y=\"").append(y)
                .append("\" font-size=\"").append(size).append('"');
        if (!weight.equals("normal")) {
            out.append(" font-weight=\"").append(weight).append('"');
        }
        out.append(" fill=\"").append(color).append('"');
        if (!anchor.equals("start")) {
            out.append(" text-anchor=\"").append(anchor).append('"');
        }
        out.append('>').append(escape(text)).append("</text>\n");
    }

    /** XML text escaping. */
    static String escape(String text) {
        StringBuilder out = new StringBuilder(text.length());
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            switch (c) {
                case '&' -> out.append("&amp;");
                case '<' -> out.append("&lt;");
                case '>' -> out.append("&gt;");
                case '"' -> out.append("&quot;");
                default -> {
                    if (c < 0x20 && c != '\t' && c != '\n') {
                        out.append(' '); // XML 1.0 forbids most control characters
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        return out.toString();
    }
}

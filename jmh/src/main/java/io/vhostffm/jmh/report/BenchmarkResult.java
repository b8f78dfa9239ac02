package io.vhostffm.jmh.report;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Collections;
import java.util.Locale;

/**
 * One entry of a JMH JSON result file: a benchmark run with one combination of parameters.
 *
 * @param benchmark fully qualified benchmark name ({@code package.Class.method}, or
 *     {@code package.Class.group} for a {@code @Group})
 * @param mode JMH mode code: {@code thrpt}, {@code avgt}, {@code sample}, {@code ss}
 * @param threads threads that ran it
 * @param params the {@code @Param} values, in JMH's order (empty when none)
 * @param primary the score
 * @param secondary secondary metrics by label: profiler figures such as
 *     {@code gc.alloc.rate.norm}, or the per-method scores of a {@code @Group}
 * @param vmName the forked JVM's {@code java.vm.name}
 * @param vmVersion the forked JVM's {@code java.vm.version}
 * @param settings how long JMH ran it
 */
public record BenchmarkResult(
        String benchmark,
        String mode,
        int threads,
        Map<String, String> params,
        Metric primary,
        Map<String, Metric> secondary,
        String vmName,
        String vmVersion,
        RunSettings settings) {

    /** The gc profiler's bytes allocated per operation. */
    public static final String ALLOCATION_PER_OP = "gc.alloc.rate.norm";
    /** CPU time of the benchmark threads per operation ({@code io.vhostffm.jmh.CpuTimeProfiler}). */
    public static final String CPU_TIME_PER_OP = "cpu.time.norm";
    /** Share of the wall-clock time the benchmark threads were on a CPU, in percent (same profiler). */
    public static final String CPU_SHARE = "cpu.share";

    /**
     * How JMH ran a benchmark.
     *
     * @param jmhVersion JMH's version
     * @param forks forked JVMs
     * @param warmupIterations warmup iterations per fork
     * @param warmupTime length of one warmup iteration, as JMH writes it ("1 s")
     * @param measurementIterations measured iterations per fork
     * @param measurementTime length of one measured iteration
     */
    public record RunSettings(String jmhVersion, int forks, int warmupIterations, String warmupTime,
                              int measurementIterations, String measurementTime) {
        /** E.g. {@code JMH 1.37, 1 fork, 3 warmup x 1 s, 5 measured x 1 s}. */
        public String describe() {
            return "JMH " + jmhVersion + ", " + forks + (forks == 1 ? " fork, " : " forks, ")
                    + warmupIterations + " warmup x " + warmupTime + ", "
                    + measurementIterations + " measured x " + measurementTime;
        }
    }

    /** Defensive copies; names must be present. */
    public BenchmarkResult {
        Objects.requireNonNull(benchmark, "benchmark");
        Objects.requireNonNull(mode, "mode");
        Objects.requireNonNull(primary, "primary");
        Objects.requireNonNull(settings, "settings");
        params = unmodifiableOrdered(params);
        secondary = unmodifiableOrdered(secondary);
    }

    private static <V> Map<String, V> unmodifiableOrdered(Map<String, V> map) {
        return Collections.unmodifiableMap(new LinkedHashMap<>(map));
    }

    /**
     * A score with its error and unit.
     *
     * @param score the mean
     * @param error half-width of JMH's 99.9% confidence interval; NaN when JMH had too few
     *     iterations to compute one
     * @param unit e.g. {@code ns/op}, {@code ops/s}, {@code B/op}
     */
    public record Metric(double score, double error, String unit) {
        /** Unit must be present. */
        public Metric {
            Objects.requireNonNull(unit, "unit");
        }
    }

    /** The benchmark's class and method (or group), without the package. */
    public String shortName() {
        String[] parts = benchmark.split("\\.");
        if (parts.length < 2) {
            return benchmark;
        }
        return parts[parts.length - 2] + "." + parts[parts.length - 1];
    }

    /**
     * This result with {@code label} after its class name ({@code pkg.Class label.method}), so
     * rows and chart panels of another run (the VM's) stand apart from this machine's.
     */
    public BenchmarkResult labelled(String label) {
        int dot = benchmark.lastIndexOf('.');
        String renamed = dot < 0 ? benchmark + " " + label
                : benchmark.substring(0, dot) + " " + label + benchmark.substring(dot);
        return new BenchmarkResult(renamed, mode, threads, params, primary, secondary, vmName, vmVersion, settings);
    }

    /** The parameters as {@code name=value} pairs separated by spaces; empty when none. */
    public String paramsLabel() {
        StringBuilder out = new StringBuilder();
        params.forEach((name, value) -> {
            if (!out.isEmpty()) {
                out.append(' ');
            }
            out.append(name).append('=').append(value);
        });
        return out.toString();
    }

    /** Bytes allocated per operation from the gc profiler, when it ran. */
    public Metric allocationPerOp() {
        return secondary.get(ALLOCATION_PER_OP);
    }

    /** CPU time per operation from the CPU time profiler, when it ran. */
    public Metric cpuTimePerOp() {
        return secondary.get(CPU_TIME_PER_OP);
    }

    /** Percentage of the wall-clock time the benchmark threads were on a CPU, when measured. */
    public Metric cpuShare() {
        return secondary.get(CPU_SHARE);
    }

    /**
     * The score as it would read if every operation took exactly its CPU time: wall-clock time
     * less the time the threads waited for a processor. In the score's own unit; NaN when the CPU
     * time profiler did not run or the unit is not a time per op or ops per time.
     */
    public double scoreByCpuTime() {
        Metric cpu = cpuTimePerOp();
        if (cpu == null || !(cpu.score() > 0) || !cpu.unit().equals("ns/op")) {
            return Double.NaN;
        }
        String unit = primary.unit();
        if (unit.endsWith("/op")) {
            double nanosPerUnit = nanosPer(unit.substring(0, unit.length() - 3));
            return cpu.score() / nanosPerUnit;
        }
        if (unit.startsWith("ops/")) {
            double nanosPerUnit = nanosPer(unit.substring(4));
            return nanosPerUnit / cpu.score();
        }
        return Double.NaN;
    }

    /** Nanoseconds in one JMH time unit ("ns", "us", "ms", "s", "min"); NaN when unknown. */
    private static double nanosPer(String timeUnit) {
        return switch (timeUnit) {
            case "ns" -> 1;
            case "us" -> 1e3;
            case "ms" -> 1e6;
            case "s" -> 1e9;
            case "min" -> 60e9;
            default -> Double.NaN;
        };
    }

    /**
     * Secondary metrics that are scores of their own rather than profiler figures: the per-method
     * results of a {@code @Group} benchmark. Profiler metrics (names with a dot, such as
     * {@code gc.count}) are left out.
     */
    public Map<String, Metric> groupMemberScores() {
        Map<String, Metric> members = new LinkedHashMap<>();
        secondary.forEach((label, metric) -> {
            if (!label.contains(".") && !label.startsWith("·")) {
                members.put(label, metric);
            }
        });
        return members;
    }

    /** Whether a bigger score is better: throughput modes; smaller is better for time per op. */
    public boolean higherIsBetter() {
        return mode.equals("thrpt");
    }

    /**
     * Reads every entry of a JMH JSON result file ({@code -rf json}).
     *
     * @throws Json.JsonException when the text is not JSON
     * @throws IllegalArgumentException naming the entry and field when the JSON is not JMH's shape
     */
    public static List<BenchmarkResult> parseAll(String jsonText) {
        Object root = Json.parse(jsonText);
        if (!(root instanceof List<?> entries)) {
            throw new IllegalArgumentException("JMH result file: expected a JSON array at the top level");
        }
        List<BenchmarkResult> results = new ArrayList<>(entries.size());
        for (int i = 0; i < entries.size(); i++) {
            try {
                results.add(fromEntry(asObject(entries.get(i), "entry")));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("JMH result entry " + i + ": " + e.getMessage(), e);
            }
        }
        return results;
    }

    private static BenchmarkResult fromEntry(Map<String, Object> entry) {
        Map<String, String> params = new LinkedHashMap<>();
        Object rawParams = entry.get("params");
        if (rawParams != null) {
            asObject(rawParams, "params").forEach((name, value) -> params.put(name, String.valueOf(value)));
        }
        Map<String, Metric> secondary = new LinkedHashMap<>();
        Object rawSecondary = entry.get("secondaryMetrics");
        if (rawSecondary != null) {
            asObject(rawSecondary, "secondaryMetrics").forEach((label, metric) ->
                    secondary.put(label, metric(asObject(metric, "secondaryMetrics." + label), "secondaryMetrics." + label)));
        }
        return new BenchmarkResult(
                string(entry, "benchmark"),
                string(entry, "mode"),
                (int) number(entry.get("threads"), "threads"),
                params,
                metric(asObject(entry.get("primaryMetric"), "primaryMetric"), "primaryMetric"),
                secondary,
                optionalString(entry, "vmName"),
                optionalString(entry, "vmVersion"),
                new RunSettings(
                        optionalString(entry, "jmhVersion"),
                        (int) number(entry.get("forks"), "forks"),
                        (int) number(entry.get("warmupIterations"), "warmupIterations"),
                        optionalString(entry, "warmupTime"),
                        (int) number(entry.get("measurementIterations"), "measurementIterations"),
                        optionalString(entry, "measurementTime")));
    }

    private static Metric metric(Map<String, Object> metric, String where) {
        return new Metric(
                number(metric.get("score"), where + ".score"),
                number(metric.get("scoreError"), where + ".scoreError"),
                string(metric, "scoreUnit"));
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> asObject(Object value, String field) {
        if (value instanceof Map<?, ?> map) {
            return (Map<String, Object>) map;
        }
        throw new IllegalArgumentException("field " + field + ": expected an object, found " + describe(value));
    }

    private static String string(Map<String, Object> object, String field) {
        if (object.get(field) instanceof String s) {
            return s;
        }
        throw new IllegalArgumentException("field " + field + ": expected a string, found " + describe(object.get(field)));
    }

    private static String optionalString(Map<String, Object> object, String field) {
        return object.get(field) instanceof String s ? s : "";
    }

    /** JMH writes non-finite scores as the strings "NaN", "Infinity", "-Infinity". */
    private static double number(Object value, String field) {
        if (value instanceof Double d) {
            return d;
        }
        if (value instanceof String s) {
            switch (s) {
                case "NaN" -> { return Double.NaN; }
                case "Infinity" -> { return Double.POSITIVE_INFINITY; }
                case "-Infinity" -> { return Double.NEGATIVE_INFINITY; }
                default -> { }
            }
        }
        throw new IllegalArgumentException("field " + field + ": expected a number, found " + describe(value));
    }

    private static String describe(Object value) {
        if (value == null) {
            return "nothing";
        }
        if (value instanceof String s) {
            return "the string \"" + s + "\"";
        }
        return value.getClass().getSimpleName().toLowerCase(Locale.ROOT) + " " + value;
    }
}

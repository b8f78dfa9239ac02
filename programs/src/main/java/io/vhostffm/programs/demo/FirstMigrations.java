package io.vhostffm.programs.demo;

import io.vhostffm.migration.DeviceDowntime;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import org.HdrHistogram.Histogram;

/**
 * The first migration of a fresh destination process, as a distribution: {@code DowntimeBench
 * --fresh N} runs a configuration N more times with two migrations each (a new child process
 * every time, the parent warm from the main run) and keeps each run's first, the migration into
 * the new child.
 *
 * <p>A destination process is usually new: a hypervisor on the target host starts one per
 * incoming migration. So the first migration is the downtime a guest sees, and one sample of it
 * per configuration says little on a shared host; N of them give its p50 and spread, set beside
 * the main run's p50 (migrations 2..N of processes that have migrated many times).
 */
final class FirstMigrations {
    private FirstMigrations() {}

    /** Runs {@code s} {@code n} times with two migrations, quietly; returns each run's first migration. */
    static List<DowntimeBench.Sample> measure(DowntimeBench.Settings s, int n) throws Exception {
        Path scratch = Files.createTempDirectory("vhostffm-downtime-fresh");
        PrintStream quiet = new PrintStream(OutputStream.nullOutputStream());
        List<DowntimeBench.Sample> firsts = new ArrayList<>();
        try {
            for (int k = 0; k < n; k++) {
                DowntimeBench.Settings once = new DowntimeBench.Settings(s.pairs(), 2, s.frames(), s.delta(),
                        s.label() + "-fresh", scratch, s.packed(), s.vhostUser());
                firsts.add(DowntimeBench.measure(once, quiet).samples().get(0));
            }
        } finally {
            try (var files = Files.list(scratch)) {
                for (Path f : files.toList()) {
                    Files.deleteIfExists(f);
                }
            }
            Files.deleteIfExists(scratch);
        }
        return firsts;
    }

    /**
     * Prints and writes ({@code <label>-first.csv}, {@code <label>-first.summary} under the
     * configuration's {@code out}) the first migrations' p50 / p90 / max, their ratio to the main
     * run's p50, and the median of each part.
     */
    static void report(DowntimeBench.Settings s, List<DowntimeBench.Sample> firsts, List<DowntimeBench.Sample> main,
            PrintStream log) throws IOException {
        Histogram steady = new Histogram(3_600_000_000_000L, 3);
        for (DowntimeBench.Sample x : main) {
            if (x.index() > 0) {
                steady.recordValue(Math.max(0, x.totalNanos()));
            }
        }
        Histogram first = new Histogram(3_600_000_000_000L, 3);
        StringBuilder csv = new StringBuilder("run,total_ns");
        for (DeviceDowntime.Part p : firsts.get(0).parts()) {
            csv.append(',').append(p.name().replaceAll("[^A-Za-z0-9]+", "_")).append("_ns");
        }
        csv.append('\n');
        for (int k = 0; k < firsts.size(); k++) {
            DowntimeBench.Sample x = firsts.get(k);
            first.recordValue(Math.max(0, x.totalNanos()));
            csv.append(k).append(',').append(x.totalNanos());
            x.parts().forEach(p -> csv.append(',').append(p.nanos()));
            csv.append('\n');
        }
        long steadyP50 = steady.getValueAtPercentile(50);
        log.printf(Locale.ROOT, "%-28s first migration of %d fresh destination processes: p50 %.3f ms  p90 %.3f ms"
                + "  max %.3f ms; p50 / main run's p50 %.1fx%n", "", firsts.size(),
                ms(first.getValueAtPercentile(50)), ms(first.getValueAtPercentile(90)), ms(first.getMaxValue()),
                first.getValueAtPercentile(50) / (double) Math.max(1, steadyP50));
        log.println(medianParts(firsts));
        Files.createDirectories(s.out());
        Files.writeString(s.out().resolve(s.label() + "-first.csv"), csv);
        Files.writeString(s.out().resolve(s.label() + "-first.summary"), String.format(Locale.ROOT,
                "label=%s%nfresh_processes=%d%nfirst_p50_ns=%d%nfirst_p90_ns=%d%nfirst_max_ns=%d%n"
                + "main_p50_ns=%d%nfirst_p50_over_main_p50=%.2f%n", s.label(), firsts.size(),
                first.getValueAtPercentile(50), first.getValueAtPercentile(90), first.getMaxValue(), steadyP50,
                first.getValueAtPercentile(50) / (double) Math.max(1, steadyP50)));
    }

    private static String medianParts(List<DowntimeBench.Sample> firsts) {
        StringBuilder sb = new StringBuilder("  first migrations' median parts:");
        int n = firsts.get(0).parts().size();
        for (int k = 0; k < n; k++) {
            int part = k;
            List<Long> values = firsts.stream().filter(x -> x.parts().size() == n)
                    .map(x -> x.parts().get(part).nanos()).sorted(Comparator.naturalOrder()).toList();
            sb.append(String.format(Locale.ROOT, " %s %.3f ms;", firsts.get(0).parts().get(k).name(),
                    ms(values.get(values.size() / 2))));
        }
        return sb.toString();
    }

    private static double ms(long nanos) {
        return nanos / 1e6;
    }
}

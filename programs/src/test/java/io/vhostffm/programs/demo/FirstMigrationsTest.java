package io.vhostffm.programs.demo;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.migration.DeviceDowntime;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The first migrations' report: percentiles, the ratio to the main run, the files. */
class FirstMigrationsTest {

    @Test
    void theReportGivesTheFreshDestinationsPercentilesAgainstTheMainRunsMedian(@TempDir Path out) throws Exception {
        DowntimeBench.Settings s = new DowntimeBench.Settings(4, 6, 64, false, "userspace-4p-nodelta", out);
        // The main run: its first migration (index 0) is left out of its p50, as in its own report.
        List<DowntimeBench.Sample> main = new ArrayList<>();
        main.add(sample(0, 90_000_000, 1_000_000));
        for (int i = 1; i <= 5; i++) {
            main.add(sample(i, 2_000_000, 500_000));
        }
        List<DowntimeBench.Sample> firsts = List.of(sample(0, 8_000_000, 3_000_000), sample(0, 4_000_000, 1_000_000),
                sample(0, 6_000_000, 2_000_000));
        ByteArrayOutputStream printed = new ByteArrayOutputStream();

        FirstMigrations.report(s, firsts, main, new PrintStream(printed, true));

        Map<String, String> summary = Files.readAllLines(out.resolve("userspace-4p-nodelta-first.summary")).stream()
                .map(l -> l.split("=", 2)).collect(Collectors.toMap(a -> a[0], a -> a[1]));
        assertEquals("3", summary.get("fresh_processes"));
        assertEquals(6.0, Long.parseLong(summary.get("first_p50_ns")) / 1e6, 0.01);
        assertEquals(8.0, Long.parseLong(summary.get("first_max_ns")) / 1e6, 0.01);
        assertEquals(2.0, Long.parseLong(summary.get("main_p50_ns")) / 1e6, 0.01);
        assertEquals("3.00", summary.get("first_p50_over_main_p50"));
        List<String> csv = Files.readAllLines(out.resolve("userspace-4p-nodelta-first.csv"));
        assertEquals(List.of("run,total_ns,stream_ns,quickstart_ns", "0,8000000,3000000,5000000",
                "1,4000000,1000000,3000000", "2,6000000,2000000,4000000"), csv);
        String text = printed.toString();
        assertTrue(text.contains("first migration of 3 fresh destination processes: p50 6.00"), text);
        assertTrue(text.contains("p50 / main run's p50 3.0x"), text);
        assertTrue(text.contains("stream 2.000 ms; quickstart 4.000 ms;"), text);
    }

    /** A migration of {@code total} ns: a stream part, the rest the quickstart. */
    private static DowntimeBench.Sample sample(int index, long total, long stream) {
        return new DowntimeBench.Sample(index, true, total, List.of(new DeviceDowntime.Part("stream", stream),
                new DeviceDowntime.Part("quickstart", total - stream)), "QUICKSTART", true, List.of(), List.of());
    }
}

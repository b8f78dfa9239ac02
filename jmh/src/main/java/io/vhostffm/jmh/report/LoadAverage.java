package io.vhostffm.jmh.report;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * The system load average over 1, 5 and 15 minutes, as Linux's {@code /proc/loadavg} gives it:
 * how many threads were runnable on average. Next to the processor count it says whether other
 * work competed with a benchmark run for the CPU.
 *
 * @param oneMinute   average over the last minute
 * @param fiveMinutes over the last 5 minutes
 * @param fifteenMinutes over the last 15 minutes
 */
public record LoadAverage(double oneMinute, double fiveMinutes, double fifteenMinutes) {

    /**
     * Parses the first three fields of {@code /proc/loadavg} text ({@code "12.68 11.53 7.33 5/900 1234"}).
     *
     * @throws IllegalArgumentException naming the text when it has no three numbers
     */
    public static LoadAverage parse(String text) {
        String[] fields = text.trim().split("\\s+");
        if (fields.length < 3) {
            throw new IllegalArgumentException("load average: expected three numbers, found \"" + text.trim() + "\"");
        }
        try {
            return new LoadAverage(Double.parseDouble(fields[0]), Double.parseDouble(fields[1]),
                    Double.parseDouble(fields[2]));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("load average: expected three numbers, found \"" + text.trim() + "\"", e);
        }
    }

    /** This machine's load average now, or null when {@code /proc/loadavg} cannot be read. */
    public static LoadAverage current() {
        try {
            return parse(Files.readString(Path.of("/proc/loadavg")));
        } catch (IOException | IllegalArgumentException e) {
            return null;
        }
    }

    /** E.g. {@code 12.68, 11.53, 7.33}. */
    public String describe() {
        return String.format(Locale.ROOT, "%.2f, %.2f, %.2f", oneMinute, fiveMinutes, fifteenMinutes);
    }
}

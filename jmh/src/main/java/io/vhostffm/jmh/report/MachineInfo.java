package io.vhostffm.jmh.report;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * The machine a report describes: processors, CPU model and memory, read from Linux's
 * {@code /proc/cpuinfo} and {@code /proc/meminfo}.
 *
 * @param processors processors available to the JVM (what {@code nproc} prints)
 * @param cpuModel the first {@code model name} of {@code /proc/cpuinfo}, or "unknown CPU"
 * @param memoryKib {@code MemTotal} of {@code /proc/meminfo} in KiB, or -1 when unknown
 */
public record MachineInfo(int processors, String cpuModel, long memoryKib) {

    /** This machine; files that cannot be read leave their field unknown. */
    public static MachineInfo current() {
        return fromProcText(readOrEmpty(Path.of("/proc/cpuinfo")), readOrEmpty(Path.of("/proc/meminfo")),
                Runtime.getRuntime().availableProcessors());
    }

    /** Parses the text of {@code /proc/cpuinfo} and {@code /proc/meminfo}. */
    public static MachineInfo fromProcText(String cpuinfo, String meminfo, int processors) {
        String model = "unknown CPU";
        for (String line : cpuinfo.split("\n")) {
            if (line.startsWith("model name")) {
                int colon = line.indexOf(':');
                if (colon >= 0) {
                    model = line.substring(colon + 1).trim().replaceAll("\\s+", " ");
                    break;
                }
            }
        }
        long memory = -1;
        for (String line : meminfo.split("\n")) {
            if (line.startsWith("MemTotal:")) {
                String[] fields = line.substring("MemTotal:".length()).trim().split("\\s+");
                try {
                    memory = Long.parseLong(fields[0]);
                } catch (NumberFormatException e) {
                    memory = -1; // left unknown: the report says so instead of guessing
                }
                break;
            }
        }
        return new MachineInfo(processors, model, memory);
    }

    /** One line such as {@code 2 processors, Intel(R) Xeon(R) ..., 23.5 GiB memory}. */
    public String describe() {
        String memory = memoryKib < 0 ? "unknown memory"
                : String.format(Locale.ROOT, "%.1f GiB memory", memoryKib / (1024.0 * 1024.0));
        return processors + (processors == 1 ? " processor, " : " processors, ") + cpuModel + ", " + memory;
    }

    private static String readOrEmpty(Path path) {
        try {
            return Files.readString(path);
        } catch (IOException | RuntimeException e) {
            return "";
        }
    }
}

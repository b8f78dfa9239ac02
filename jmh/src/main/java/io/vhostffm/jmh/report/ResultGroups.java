package io.vhostffm.jmh.report;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Benchmark results grouped for a ratio table: each result the classifier keeps goes into the
 * group of its key (the benchmark class first, then whatever else tells rows apart), under its
 * side (an implementation, a backend, a method); groups in the order first seen.
 */
final class ResultGroups {
    private ResultGroups() {
    }

    /** Where a result goes: its row's key parts and its side in that row. */
    record Place(List<String> key, String side) {
        Place {
            key = List.copyOf(key);
        }
    }

    /** A row's key parts and its results by side. */
    record Group(List<String> key, Map<String, BenchmarkResult> bySide) {}

    /** Decides where a result goes, from its class and method names; null leaves it out. */
    interface Classifier {
        Place place(BenchmarkResult result, String benchmarkClass, String method);
    }

    /** The groups of {@code results} as {@code classifier} places them. */
    static List<Group> of(List<BenchmarkResult> results, Classifier classifier) {
        Map<List<String>, Map<String, BenchmarkResult>> groups = new LinkedHashMap<>();
        for (BenchmarkResult r : results) {
            String name = r.shortName();
            int dot = name.lastIndexOf('.');
            if (dot < 0) {
                continue;
            }
            Place place = classifier.place(r, name.substring(0, dot), name.substring(dot + 1));
            if (place != null) {
                groups.computeIfAbsent(place.key(), k -> new LinkedHashMap<>()).put(place.side(), r);
            }
        }
        List<Group> out = new ArrayList<>();
        groups.forEach((key, bySide) -> out.add(new Group(key, bySide)));
        return out;
    }

    /** Key parts, for a classifier. */
    static List<String> key(String... parts) {
        return Arrays.asList(parts);
    }
}

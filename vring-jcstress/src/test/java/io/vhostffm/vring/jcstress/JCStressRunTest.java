package io.vhostffm.vring.jcstress;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.openjdk.jcstress.JCStress;
import org.openjdk.jcstress.Options;
import org.openjdk.jcstress.infra.collectors.DiskReadCollector;
import org.openjdk.jcstress.infra.collectors.InProcessCollector;
import org.openjdk.jcstress.infra.collectors.TestResult;
import org.openjdk.jcstress.infra.grading.ReportUtils;

/**
 * Runs the jcstress tests of this module (package {@code io.vhostffm.vring.jcstress}, not the
 * counterexamples) through jcstress's own runner, and fails when any test observed a FORBIDDEN
 * outcome, errored, timed out, crashed its VM, or did not run at all.
 *
 * <p>jcstress reports failures by throwing from {@link JCStress#run()} (its
 * {@code ExceptionReportPrinter}); but "no matching tests" returns quietly, so this test also
 * reads the result blob back and checks that every expected test produced samples.
 *
 * <p>Settings (system properties, set from Maven properties of the same names):
 * {@code jcstress.mode} (default {@code quick}), {@code jcstress.jvmArgs} (the JVM
 * configuration of the forks; empty for jcstress's auto-detected set), {@code jcstress.extraArgs}
 * (more jcstress options split at spaces, e.g. {@code -time 1000 -iters 10}),
 * {@code jcstress.filter} (a regexp selecting other tests, e.g. a counterexample; then only
 * "at least one ran" is checked instead of the full list), {@code jcstress.resultDir}.
 */
class JCStressRunTest {
    /** Test names as jcstress lists them (nested classes with '.'): all must run. */
    private static final Set<String> EXPECTED = new TreeSet<>(List.of(
            "io.vhostffm.vring.jcstress.SplitAvailOrderingTest",
            "io.vhostffm.vring.jcstress.SplitUsedOrderingTest",
            "io.vhostffm.vring.jcstress.PackedAvailOrderingTest",
            "io.vhostffm.vring.jcstress.PackedUsedOrderingTest",
            "io.vhostffm.vring.jcstress.SplitUsedBatchOrderingTest",
            "io.vhostffm.vring.jcstress.PackedUsedBatchOrderingTest",
            "io.vhostffm.vring.jcstress.SplitNotificationHandshakeTest.KickEventIdx",
            "io.vhostffm.vring.jcstress.SplitNotificationHandshakeTest.KickFlags",
            "io.vhostffm.vring.jcstress.SplitNotificationHandshakeTest.InterruptEventIdx",
            "io.vhostffm.vring.jcstress.SplitNotificationHandshakeTest.InterruptFlags",
            "io.vhostffm.vring.jcstress.PackedNotificationHandshakeTest.KickEventIdx",
            "io.vhostffm.vring.jcstress.PackedNotificationHandshakeTest.KickFlags",
            "io.vhostffm.vring.jcstress.PackedNotificationHandshakeTest.InterruptEventIdx",
            "io.vhostffm.vring.jcstress.PackedNotificationHandshakeTest.InterruptFlags"));

    /** Our package's tests, not the counterexamples in its subpackage. */
    private static final String DEFAULT_FILTER = "^io\\.vhostffm\\.vring\\.jcstress\\.(?!counterexample\\.)";

    @Test
    void noForbiddenOutcomeInAnyRingOrderingTest() throws Exception {
        String filter = System.getProperty("jcstress.filter", "").strip();
        boolean defaultSelection = filter.isEmpty();
        List<String> args = new ArrayList<>(List.of(
                "-t", defaultSelection ? DEFAULT_FILTER : filter,
                "-m", System.getProperty("jcstress.mode", "quick"),
                "-r", System.getProperty("jcstress.resultDir", "jcstress-results")));
        String jvmArgs = System.getProperty("jcstress.jvmArgs", "").strip();
        if (!jvmArgs.isEmpty()) {
            args.addAll(List.of("-jvmArgs", jvmArgs));   // one option value; jcstress splits it
        }
        String extra = System.getProperty("jcstress.extraArgs", "").strip();
        if (!extra.isEmpty()) {
            args.addAll(List.of(extra.split("\\s+")));
        }
        Options options = new Options(args.toArray(String[]::new));
        assertTrue(options.parse(), "jcstress rejected its options " + args);

        try {
            new JCStress(options).run();
        } catch (AssertionError e) {
            fail("jcstress found failures (FORBIDDEN outcomes or test errors; see the report above and "
                    + options.getResultDest() + "):" + e.getMessage(), e);
        }

        Path blob = Path.of(options.getResultFile());
        assertTrue(Files.exists(blob), "no jcstress result file " + blob.toAbsolutePath()
                + ": did any test run?");
        InProcessCollector collector = new InProcessCollector();
        DiskReadCollector reader = new DiskReadCollector(options.getResultFile(), collector);
        reader.dump();
        reader.close();

        // Every fork's result on its own (an error in one JVM configuration must not be averaged away).
        List<String> problems = new ArrayList<>();
        for (TestResult result : collector.getTestResults()) {
            if (!ReportUtils.statusToPassed(result) || !result.grading().isPassed) {
                problems.add(result.getName() + " " + result.getConfig().jvmArgs + ": "
                        + ReportUtils.statusToLabel(result) + " " + result.grading().failureMessages);
            }
        }
        Map<String, Long> samples = new TreeMap<>();
        for (TestResult result : ReportUtils.mergedByName(collector.getTestResults())) {
            samples.merge(result.getName(), result.getTotalCount(), Long::sum);
            StringBuilder outcomes = new StringBuilder();
            for (String state : new TreeSet<>(result.getStateKeys())) {
                outcomes.append(String.format("   [%s] %,d", state, result.getCount(state)));
            }
            System.out.printf("jcstress %s: %,d samples:%s%n", result.getName(), result.getTotalCount(), outcomes);
        }
        assertEquals(List.of(), problems, "jcstress tests that failed");
        if (defaultSelection) {
            assertEquals(EXPECTED, samples.keySet(), "jcstress tests that ran");
        } else {
            assertTrue(!samples.isEmpty(), "no jcstress test matched " + filter);
        }
        samples.forEach((name, count) -> assertTrue(count > 0, name + " produced no samples"));
    }
}

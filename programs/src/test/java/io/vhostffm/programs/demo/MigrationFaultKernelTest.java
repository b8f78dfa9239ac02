package io.vhostffm.programs.demo;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.migration.net.MigrationDeadlines;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * {@link MigrationFaultTest}'s cases that matter most, with kernel vhost-net on both sides: the
 * destination killed in stop-and-copy, stalled before its answer, cut off after the commit, and
 * the source cutting its connection during precopy; and the source process ({@link SourceFaultCase})
 * killed in stop-and-copy and stopped after its commit. Deadlines longer than on the host: the VM
 * bench emulates its CPU.
 */
@Tag("kernel")
class MigrationFaultKernelTest {
    @BeforeAll
    static void vhostNetIsHere() {
        Path node = Path.of("/dev/vhost-net");
        assertTrue(Files.isReadable(node) && Files.isWritable(node), "kernel test without /dev/vhost-net");
    }

    static Stream<FaultCase> cases() {
        return Stream.of(new FaultCase("destination", "STOP_AND_COPY", "kill", false),
                new FaultCase("destination", "ACKNOWLEDGEMENT", "stop", false),
                new FaultCase("destination", "COMPLETION", "cut", false),
                new FaultCase("source", "PRECOPY", "cut", false));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    @Timeout(600)
    void oneProcessRunsTheGuestAndEveryFrameArrivesOnceOnVhostNet(FaultCase c) throws Exception {
        System.out.println(c.run(MigrationDeadlines.uniform(vmDeadline(c.action())), Duration.ofSeconds(240)));
    }

    /** The source process (a child, vhost-net) killed while the guest is paused, and stopped after its commit. */
    static Stream<SourceFaultCase> sourceProcessCases() {
        return Stream.of(new SourceFaultCase("STOP_AND_COPY", "kill", false),
                new SourceFaultCase("COMPLETION", "stop", false));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("sourceProcessCases")
    @Timeout(600)
    void theSourceProcessFailsAndOneProcessRunsTheGuestOnVhostNet(SourceFaultCase c) throws Exception {
        System.out.println(c.run(MigrationDeadlines.uniform(vmDeadline(c.action())), Duration.ofSeconds(240)));
    }

    /**
     * The VM emulates its CPU: a stalled peer is found after 20 s, while a live one (a cold JVM in
     * the VM applying and quickstarting) may take far longer than on
     * the host, and is found by its end of file when killed or cut anyway.
     */
    private static Duration vmDeadline(String action) {
        return action.equals("stop") ? Duration.ofSeconds(20) : Duration.ofSeconds(120);
    }
}

package io.vhostffm.programs.demo;

import io.vhostffm.migration.MigrationPhase;
import io.vhostffm.migration.net.MigrationDeadlines;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The two-process demo (source here, destination a child JVM, userspace datapath or vhost-net)
 * under every fault at every phase: the destination killed (SIGKILL), stopped (SIGSTOP) or cut
 * off, and the source cutting its connections ({@link FaultCase}); then the roles swapped, the
 * source a child process killed, stopped or cut off at each phase and this JVM the destination
 * ({@link SourceFaultCase}). The table of outcomes, one line per case, is printed at the end.
 */
class MigrationFaultTest {
    private static final List<String> TABLE = new ArrayList<>();

    static Stream<FaultCase> cases() {
        List<FaultCase> cases = new ArrayList<>();
        for (String action : List.of("kill", "stop")) {
            cases.add(new FaultCase("destination", "CONNECT", action, false));
        }
        for (String point : List.of("HANDOFF", "PRECOPY", "STOP_AND_COPY", "ACKNOWLEDGEMENT", "COMPLETION")) {
            for (String action : List.of("kill", "stop", "cut")) {
                cases.add(new FaultCase("destination", point, action, false));
            }
        }
        for (String action : List.of("kill", "stop", "cut")) {
            cases.add(new FaultCase("destination", "ram-precopy", action, true));
        }
        for (MigrationPhase phase : List.of(MigrationPhase.HANDOFF, MigrationPhase.SETUP, MigrationPhase.PRECOPY,
                MigrationPhase.STOP_AND_COPY, MigrationPhase.ACKNOWLEDGEMENT, MigrationPhase.COMPLETION)) {
            cases.add(new FaultCase("source", phase.name(), "cut", false));
        }
        cases.add(new FaultCase("source", MigrationPhase.RAM_PRECOPY.name(), "cut", true));
        return cases.stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    @Timeout(120)
    void oneProcessRunsTheGuestAndEveryFrameArrivesOnce(FaultCase c) throws Exception {
        TABLE.add(c.run(MigrationDeadlines.uniform(c.deadline()), Duration.ofSeconds(60)));
    }

    static Stream<SourceFaultCase> sourceProcessCases() {
        List<SourceFaultCase> cases = new ArrayList<>();
        for (String action : List.of("kill", "stop")) {
            cases.add(new SourceFaultCase("CONNECT", action, false)); // nothing to cut before connecting
        }
        for (String point : List.of("HANDOFF", "SETUP", "PRECOPY", MigrationDemo.PRECOPY_DELTA_SENT, "STOP_AND_COPY",
                "ACKNOWLEDGEMENT", "COMPLETION", MigrationDemo.ACKNOWLEDGED)) {
            for (String action : List.of("kill", "stop", "cut")) {
                cases.add(new SourceFaultCase(point, action, false));
            }
        }
        for (String action : List.of("kill", "stop", "cut")) {
            cases.add(new SourceFaultCase(MigrationPhase.RAM_PRECOPY.name(), action, true));
        }
        return cases.stream();
    }

    /** The source in a child process, killed, stopped or cut off at each phase; this JVM the destination. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("sourceProcessCases")
    @Timeout(180)
    void theSourceProcessFailsAndOneProcessRunsTheGuest(SourceFaultCase c) throws Exception {
        TABLE.add(c.run(MigrationDeadlines.uniform(
                c.action().equals("stop") ? FaultCase.STALL_DEADLINE : FaultCase.LIVE_PEER_DEADLINE), Duration.ofSeconds(60)));
    }

    @AfterAll
    static void printTable() {
        System.out.println("side x fault x phase -> outcome");
        TABLE.forEach(System.out::println);
    }
}

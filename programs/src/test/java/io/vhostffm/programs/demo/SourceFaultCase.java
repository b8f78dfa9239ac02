package io.vhostffm.programs.demo;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.migration.MigrationPeerException;
import io.vhostffm.migration.MigrationPhase;
import io.vhostffm.migration.net.MigrationDeadlines;
import io.vhostffm.testkit.OpenDescriptors;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * One fault of the SOURCE process: the demo's source runs in a child JVM (device, guest, network
 * side of its TAP) and kills itself (SIGKILL), stops itself (SIGSTOP, continued once this side
 * decided) or cuts its connections when it reaches a phase; this JVM is the destination. The
 * phase is reached by the child itself (an event, not a time).
 *
 * <p>Expected: before the commit (the paused guest's state, which the source sends once the
 * destination said it is ready) the destination never starts the device and names the failure
 * (a {@link MigrationPeerException} with the phase it was in; TIMEOUT for a stopped source); a
 * source that was stopped or cut resumes the guest with every frame exactly once and in order, a
 * killed one takes the guest with it. After the commit ({@code COMPLETION}, {@code ACKNOWLEDGED})
 * the guest runs at the destination whatever the source does, the destination names the lost
 * source in phase COMPLETION, and a source that comes back never runs the guest again. Every case:
 * nothing left open in this JVM, the survivor; the child checks its own descriptors too.
 */
record SourceFaultCase(String point, String action, boolean copyRam) {
    private static final PrintStream QUIET = new PrintStream(OutputStream.nullOutputStream());

    @Override
    public String toString() {
        return "source " + action + " at " + point + (copyRam ? " (--copy-ram)" : "");
    }

    /** Whether the fault comes after the source's commit: the guest belongs to the destination. */
    boolean afterCommit() {
        return point.equals(MigrationPhase.COMPLETION.name()) || point.equals(MigrationDemo.ACKNOWLEDGED);
    }

    /** Runs the case and checks it; returns the line of the outcome table. */
    String run(MigrationDeadlines deadlines, Duration connect) throws Exception {
        Path log = Files.createTempFile("vhostffm-source-fault", ".log");
        try {
            Map<Integer, String> before = OpenDescriptors.snapshot();
            // A source that fails before connecting is found by the connect deadline; others get the
            // time a cold JVM needs to boot and run its traffic before the migration.
            MigrationDeadlines d = deadlines.withConnect(point.equals("CONNECT") ? deadlines.connect() : connect);
            MigrationDemo.DestinationOutcome o = MigrationDemo.receiveFromSourceChild(
                    new MigrationDemo.Settings(1, 100, true, false, copyRam), QUIET, d, point + ":" + action, log);
            Process child = o.source();
            if (action.equals("stop")) {
                // The destination decided; the source goes on and must find it gone. Continue it only
                // once the kernel reports it stopped (waitid), or the stop would come after the continue.
                FaultCase.awaitStopped(child);
                new ProcessBuilder("kill", "-CONT", String.valueOf(child.pid())).inheritIO().start().waitFor();
            }
            assertTrue(child.waitFor(120, TimeUnit.SECONDS), this + ": the source did not exit");
            child.getOutputStream().close();
            child.getInputStream().close();
            child.getErrorStream().close();
            String childLog = Files.readString(log);
            assertFalse(childLog.contains("LEAKED"), this + ": the source leaked:\n" + childLog);
            assertEquals(List.of(), o.problems(), this + ": frames at the destination");
            String detail;
            if (afterCommit()) {
                assertNull(o.failure(), () -> this + ": the destination must keep the guest: " + o.failure());
                assertTrue(o.guestHere(), toString());
                assertTrue(o.datapathRunning(), this + ": the destination's device must run");
                MigrationPeerException after = o.afterCommit();
                assertNotNull(after, this + ": the lost source must be named");
                assertEquals(MigrationPhase.COMPLETION, after.phase(), after.getMessage());
                assertFalse(childLog.contains("outcome: resumed at source"), this + ": both ran the guest:\n" + childLog);
                if (action.equals("kill")) {
                    assertEquals(137, child.exitValue(), childLog);
                } else {
                    assertEquals(0, child.exitValue(), childLog);
                    assertTrue(childLog.contains("outcome: guest left") || childLog.contains("outcome: migrated"),
                            this + ":\n" + childLog);
                }
                detail = "guest runs at the destination (" + after.phase() + ", " + after.fault() + ")";
            } else {
                MigrationPeerException p = assertInstanceOf(MigrationPeerException.class, o.failure(),
                        () -> this + ": " + o.failure() + " (guest here: " + o.guestHere() + "); the source's log:\n"
                                + childLog);
                assertNotEquals(MigrationPhase.COMPLETION, p.phase(), p.getMessage());
                assertTrue(p.guestStaysAtSource(), p.getMessage());
                assertFalse(o.guestHere(), this + ": the destination ran the guest");
                assertFalse(o.datapathRunning(), this + ": the destination started the device");
                if (action.equals("stop")) {
                    assertEquals(MigrationPeerException.Fault.TIMEOUT, p.fault(), p.getMessage());
                }
                if (action.equals("kill")) {
                    assertEquals(137, child.exitValue(), childLog);
                } else {
                    assertEquals(0, child.exitValue(), this + ": the source must resume:\n" + childLog);
                    assertTrue(childLog.contains("outcome: resumed at source")
                            && childLog.contains("none lost, none duplicated, all in order"), this + ":\n" + childLog);
                }
                detail = "destination discarded, device never started (" + p.phase() + ", " + p.fault() + ")";
            }
            assertEquals("", OpenDescriptors.diff(before, OpenDescriptors.snapshot()), this + ": the destination leaked");
            return String.format("%-12s %-6s %-16s -> %s; source: %s", "source", action,
                    point + (copyRam ? "+ram" : ""), detail,
                    action.equals("kill") ? "killed, the guest died with it" : FaultCase.lastOutcome(childLog));
        } finally {
            Files.deleteIfExists(log);
        }
    }
}

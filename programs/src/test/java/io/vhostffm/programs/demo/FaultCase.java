package io.vhostffm.programs.demo;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.migration.MigrationPeerException;
import io.vhostffm.migration.MigrationPhase;
import io.vhostffm.migration.net.MigrationDeadlines;
import io.vhostffm.testkit.OpenDescriptors;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * One fault of the migration demo: the destination child kills itself (SIGKILL), stops itself
 * (SIGSTOP, continued once the source decided) or cuts its connections when it reaches a phase,
 * or the source cuts its connections when it reaches one. The phase is reached by the process
 * itself (an event, not a time); the deadlines are short so that a stalled peer is found fast.
 * Then: exactly one process runs the guest, every frame exactly once, the outcome named, and the
 * source (this JVM, the survivor) has no descriptor left open.
 */
record FaultCase(String side, String point, String action, boolean copyRam) {
    private static final PrintStream QUIET = new PrintStream(OutputStream.nullOutputStream());
    /** Short: a stalled peer costs this much. */
    static final Duration STALL_DEADLINE = Duration.ofSeconds(5);
    /**
     * A killed or cut peer is found by its end of file or reset, not by a deadline: the deadline
     * then only bounds a live peer's work (a cold destination JVM applying and quickstarting on a
     * loaded 2-core machine has taken more than 2 s), so it is generous.
     */
    static final Duration LIVE_PEER_DEADLINE = Duration.ofSeconds(30);

    @Override
    public String toString() {
        return side + " " + action + " at " + point + (copyRam ? " (--copy-ram)" : "");
    }

    /** The deadline of every blocking step: short only where the case stalls its peer. */
    Duration deadline() {
        return action.equals("stop") ? STALL_DEADLINE : LIVE_PEER_DEADLINE;
    }

    /** Whether the fault comes after the source's acknowledgement arrived (the guest has left). */
    boolean afterAcknowledgement() {
        return point.equals(MigrationPhase.COMPLETION.name());
    }

    /** Runs the case and checks it; returns the line of the outcome table. */
    String run(MigrationDeadlines deadlines, Duration connect) throws Exception {
        Path log = Files.createTempFile("vhostffm-fault", ".log");
        try {
            Map<Integer, String> before = OpenDescriptors.snapshot();
            boolean destination = side.equals("destination");
            // A child that stops before connecting is found by the connect deadline; others get the time a cold JVM needs.
            MigrationDeadlines d = deadlines.withConnect(point.equals("CONNECT") ? deadlines.connect() : connect);
            MigrationDemo.FaultPlan plan = new MigrationDemo.FaultPlan(d, destination ? point + ":" + action : null,
                    destination ? null : MigrationPhase.valueOf(point), log);
            MigrationDemo.FaultOutcome o = MigrationDemo.runWithFaults(new MigrationDemo.Settings(1, 100, true, false,
                    copyRam), QUIET, plan);
            Process child = o.child();
            if (action.equals("stop")) {
                // The source decided (its deadline passed); the destination goes on and must find the
                // source gone. The source may decide before the destination's stop took effect:
                // continue it only once the kernel reports it stopped, or the stop would come after
                // the continue.
                awaitStopped(child);
                new ProcessBuilder("kill", "-CONT", String.valueOf(child.pid())).inheritIO().start().waitFor();
            }
            assertTrue(child.waitFor(60, TimeUnit.SECONDS), this + ": the destination did not exit");
            child.getOutputStream().close();
            child.getInputStream().close();
            child.getErrorStream().close();
            String childLog = Files.readString(log);
            assertNotNull(o.failure(), this + ": the migration should have failed; destination:\n" + childLog);
            String named = o.failure().getMessage();
            if (afterAcknowledgement()) {
                MigrationPeerException p = assertInstanceOf(MigrationPeerException.class, o.failure(), named);
                assertEquals(MigrationPhase.COMPLETION, p.phase(), named);
                assertFalse(o.guestAtSource(), this + ": the source ran the guest again");
                assertNull(o.result(), toString());
                if (action.equals("kill")) {
                    assertEquals(137, child.exitValue(), childLog);
                } else {
                    assertTrue(childLog.contains("outcome: the guest runs here"), this + ":\n" + childLog);
                    assertEquals(0, child.exitValue(), childLog);
                }
            } else {
                assertTrue(o.guestAtSource(), this + ": " + named + "; destination:\n" + childLog);
                if (o.failure() instanceof MigrationPeerException p) {
                    assertTrue(p.guestStaysAtSource(), named);
                    if (action.equals("stop")) {
                        assertEquals(MigrationPeerException.Fault.TIMEOUT, p.fault(), named);
                    }
                } else {
                    // the only non-peer failure allowed: the destination said "not ready" because the connection failed there
                    assertTrue(named.contains("refused"), this + ": " + named);
                }
                assertTrue(o.result().ok(), this + ": " + o.result().problems());
                assertFalse(childLog.contains("the guest runs here"), this + ": both ran the guest:\n" + childLog);
                if (action.equals("kill") && destination) {
                    assertEquals(137, child.exitValue(), childLog);
                } else {
                    assertEquals(3, child.exitValue(), this + ": the destination must discard:\n" + childLog);
                    assertTrue(childLog.contains("outcome: discarded"), childLog);
                }
            }
            assertEquals("", OpenDescriptors.diff(before, OpenDescriptors.snapshot()), this + ": the source leaked");
            String detail = o.failure() instanceof MigrationPeerException p ? p.phase() + ", " + p.fault() : "refused";
            return String.format("%-12s %-6s %-16s -> %s (%s)%s", side, action, point + (copyRam ? "+ram" : ""),
                    o.guestAtSource() ? "guest resumed at source" : "guest left the source", detail,
                    destination ? "" : "; destination: " + lastOutcome(childLog));
        } finally {
            Files.deleteIfExists(log);
        }
    }

    /** waitid(2): the kernel's own event for a child that stopped or exited, without reaping it. */
    private static final MethodHandle WAITID = Linker.nativeLinker().downcallHandle(
            Linker.nativeLinker().defaultLookup().find("waitid").orElseThrow(),
            FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT,
                    ValueLayout.ADDRESS, ValueLayout.JAVA_INT));
    private static final int P_PID = 1;
    private static final int WEXITED = 4;
    private static final int WSTOPPED = 2;
    private static final int WNOWAIT = 0x0100_0000;
    private static final int CLD_STOPPED = 5;
    /** sizeof(siginfo_t) and where si_code lives in it (after si_signo and si_errno). */
    private static final int SIGINFO_BYTES = 128;
    private static final int SI_CODE_OFFSET = 8;

    /**
     * Waits until the child stops (SIGSTOP), at most 30 s: waitid(P_PID, WSTOPPED | WEXITED |
     * WNOWAIT) blocks until the kernel reports the child stopped or exited and reaps nothing, so
     * the JDK's own reaper still collects the exit later. It runs on a thread of its own so the
     * deadline holds even if the child does neither.
     */
    static void awaitStopped(Process child) throws Exception {
        CompletableFuture<Integer> code = CompletableFuture.supplyAsync(() -> {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment info = arena.allocate(SIGINFO_BYTES);
                int rc = (int) WAITID.invokeExact(P_PID, (int) child.pid(), info, WSTOPPED | WEXITED | WNOWAIT);
                return rc == 0 ? info.get(ValueLayout.JAVA_INT, SI_CODE_OFFSET) : -1;
            } catch (Throwable e) {
                throw new IllegalStateException("waitid on the destination " + child.pid(), e);
            }
        }, runnable -> Thread.ofPlatform().daemon().name("await-stopped-" + child.pid()).start(runnable));
        int siCode;
        try {
            siCode = code.get(30, TimeUnit.SECONDS);
        } catch (TimeoutException e) {
            throw new AssertionError("the destination neither stopped nor exited within 30 s");
        }
        if (siCode != CLD_STOPPED) {
            throw new AssertionError("the destination never stopped: waitid reported si_code " + siCode
                    + " (it exited first)");
        }
    }

    static String lastOutcome(String log) {
        for (String line : log.lines().toList().reversed()) {
            if (line.contains("outcome:")) {
                return line.substring(line.indexOf("outcome:") + 9);
            }
        }
        return "?";
    }
}

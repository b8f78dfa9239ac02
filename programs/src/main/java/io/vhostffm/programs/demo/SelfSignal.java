package io.vhostffm.programs.demo;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * The fault harness's SIGKILL and SIGSTOP sent by a process to itself, from the thread that reached
 * the fault point.
 *
 * <p>raise(3) is tgkill(2) on the calling thread: the signal is this thread's, so a SIGSTOP starts
 * the group stop as this thread leaves the system call and the thread never runs another
 * instruction until continued. A process-directed signal (kill(1) of the own pid, as before) lets
 * the kernel pick any thread to start the stop; until that thread is scheduled the others, the
 * faulting thread among them, run on, and a message the fault point was meant to withhold could
 * still go out.
 */
final class SelfSignal {
    private static final int SIGKILL = 9;
    private static final int SIGSTOP = 19;

    private static final MethodHandle RAISE = Linker.nativeLinker().downcallHandle(
            Linker.nativeLinker().defaultLookup().find("raise").orElseThrow(),
            FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));

    private SelfSignal() {}

    /** Kills this process; does not return. */
    static void kill() {
        raise(SIGKILL, "SIGKILL");
        throw new IllegalStateException("raise(SIGKILL) returned");
    }

    /** Stops this process; returns once something sends it SIGCONT. */
    static void stop() {
        raise(SIGSTOP, "SIGSTOP");
    }

    private static void raise(int signal, String name) {
        int rc;
        try {
            rc = (int) RAISE.invokeExact(signal);
        } catch (Throwable e) {
            throw new IllegalStateException("raise(" + name + ")", e);
        }
        if (rc != 0) {
            throw new IllegalStateException("raise(" + name + ") returned " + rc);
        }
    }
}

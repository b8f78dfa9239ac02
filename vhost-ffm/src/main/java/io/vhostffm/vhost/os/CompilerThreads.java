package io.vhostffm.vhost.os;

import io.vhostffm.vhost.internal.CallState;
import io.vhostffm.vhost.internal.Libc;
import io.vhostffm.vhost.internal.LinuxConstants;
import io.vhostffm.vhost.internal.NativeErrors;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/**
 * The JVM's JIT compiler threads put behind the rest of a process that runs under SCHED_FIFO or
 * SCHED_RR ({@code chrt -f}) so that its migration and datapath threads go ahead of other work on
 * the host.
 *
 * <p>Every thread of such a process inherits the policy and its priority, the JIT's compiler
 * threads too. A thread under SCHED_FIFO runs until it blocks or a higher priority wants its
 * processor: a compilation of a few milliseconds holds the processor for all of it, and the
 * migration's threads of the same priority wait behind it. A destination process runs its first
 * switchover partly on code it has not compiled yet, so compilations start inside the downtime;
 * on a host with two processors the two compiler threads held the migration's messages for
 * milliseconds. {@link #moveToLowestRealTimePriority()} moves them to priority 1 of the same
 * policy: the migration's threads preempt them, and they still run ahead of every thread under
 * the normal policy. Moving them to SCHED_OTHER instead was measured worse: on a loaded host a
 * compiler thread the load starves stalls the JVM's safepoints and locks behind it, and the whole
 * real-time process with it (tens of milliseconds of downtime).
 *
 * <p>Compiler threads are found by their names in {@code /proc/self/task/<tid>/comm} (HotSpot's
 * "C1 CompilerThreadN" and "C2 CompilerThreadN", cut to 15 characters by the kernel). A compiler
 * thread HotSpot adds later (UseDynamicNumberOfCompilerThreads) is started by a compiler thread
 * and inherits its policy and priority, so one call at start-up covers them.
 */
public final class CompilerThreads {
    /** The lowest priority of SCHED_FIFO and SCHED_RR (sched_get_priority_min's answer on Linux). */
    private static final int LOWEST_PRIORITY = 1;
    private static final int ESRCH = Errno.number("ESRCH").orElseThrow();
    private static final List<String> NAME_PREFIXES = List.of("C1 CompilerThre", "C2 CompilerThre");

    private CompilerThreads() {}

    /**
     * When the calling thread runs under SCHED_FIFO or SCHED_RR, moves every JIT compiler thread of
     * this process that runs under one of them above priority 1 to priority 1 of its policy;
     * otherwise does nothing.
     *
     * @return the ids of the threads moved (empty when the caller is not real-time, or nothing ran
     *     above priority 1)
     * @throws NativeCallException when sched_getscheduler, sched_getparam or sched_setscheduler
     *     refuses (a thread that ended meanwhile is skipped)
     */
    public static List<Integer> moveToLowestRealTimePriority() throws NativeCallException {
        CallState s = CallState.current();
        int own = Libc.schedGetscheduler(s, 0);
        if (own < 0) {
            throw NativeErrors.failure("sched_getscheduler", "the calling thread", s.errno());
        }
        if (!realTime(own)) {
            return List.of();
        }
        List<Integer> moved = new ArrayList<>();
        for (int tid : compilerThreadIds()) {
            int policy = Libc.schedGetscheduler(s, tid);
            if (policy < 0) {
                if (s.errno() == ESRCH) {
                    continue; // ended since the listing
                }
                throw NativeErrors.failure("sched_getscheduler", "thread " + tid, s.errno());
            }
            if (!realTime(policy)) {
                continue;
            }
            if (Libc.schedGetparam(s, tid, s.scratch) < 0) {
                if (s.errno() == ESRCH) {
                    continue;
                }
                throw NativeErrors.failure("sched_getparam", "thread " + tid, s.errno());
            }
            if (s.scratch.get(ValueLayout.JAVA_INT, 0) <= LOWEST_PRIORITY) {
                continue;
            }
            s.scratch.set(ValueLayout.JAVA_INT, 0, LOWEST_PRIORITY); // struct sched_param's one field
            if (Libc.schedSetscheduler(s, tid, policy, s.scratch) < 0) { // policy keeps SCHED_RESET_ON_FORK if set
                if (s.errno() == ESRCH) {
                    continue;
                }
                throw NativeErrors.failure("sched_setscheduler", "thread " + tid + " to priority " + LOWEST_PRIORITY, s.errno());
            }
            moved.add(tid);
        }
        return List.copyOf(moved);
    }

    private static boolean realTime(int policy) {
        int p = policy & ~LinuxConstants.SCHED_RESET_ON_FORK; // sched_getscheduler ORs it in
        return p == LinuxConstants.SCHED_FIFO || p == LinuxConstants.SCHED_RR;
    }

    /** The ids of this process's threads whose name is a HotSpot compiler thread's. */
    static List<Integer> compilerThreadIds() {
        List<Integer> ids = new ArrayList<>();
        try (Stream<Path> tasks = Files.list(Path.of("/proc/self/task"))) {
            for (Path task : tasks.toList()) {
                String name;
                try {
                    name = Files.readString(task.resolve("comm")).strip();
                } catch (NoSuchFileException ended) {
                    continue;
                }
                if (NAME_PREFIXES.stream().anyMatch(name::startsWith)) {
                    ids.add(Integer.parseInt(task.getFileName().toString()));
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("listing /proc/self/task", e);
        }
        return ids;
    }
}

package io.vhostffm.vhost.os;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.api.Test;

/**
 * {@link CompilerThreads#moveToLowestRealTimePriority()} on this JVM's own threads: policies and
 * priorities are set with chrt(1) and read back from /proc, independently of the code under test.
 */
class CompilerThreadsTest {
    private static final int SCHED_OTHER = 0;
    private static final int SCHED_FIFO = 1;

    @Test
    void aCallerUnderTheNormalPolicyChangesNothing() throws Exception {
        List<Integer> compilers = CompilerThreads.compilerThreadIds();
        assertFalse(compilers.isEmpty(), "a HotSpot JVM has compiler threads");
        assertEquals(SCHED_OTHER, policy(ownTid()));
        assertEquals(List.of(), CompilerThreads.moveToLowestRealTimePriority());
        for (int tid : compilers) {
            assertEquals(SCHED_OTHER, policy(tid), "compiler thread " + tid);
        }
    }

    @Test
    void aCallerAtTheLowestRealTimePriorityHasNothingBelowIt() throws Exception {
        int own = ownTid();
        List<Integer> compilers = CompilerThreads.compilerThreadIds();
        try {
            chrt("-f", "1", own);
            for (int tid : compilers) {
                chrt("-f", "1", tid);
            }
            assertEquals(List.of(), CompilerThreads.moveToLowestRealTimePriority());
            for (int tid : compilers) {
                assertEquals(SCHED_FIFO, policy(tid), "compiler thread " + tid);
                assertEquals(1, priority(tid), "compiler thread " + tid);
            }
        } finally {
            chrt("-o", "0", own);
            for (int tid : compilers) {
                chrt("-o", "0", tid);
            }
        }
    }

    @Test
    void theCompilerThreadsGoBelowTheRestOfARealTimeProcess() throws Exception {
        int own = ownTid();
        CountDownLatch done = new CountDownLatch(1);
        int[] bystander = new int[1];
        CountDownLatch started = new CountDownLatch(1);
        Thread other = Thread.ofPlatform().name("bystander").start(() -> {
            bystander[0] = ownTid();
            started.countDown();
            try {
                done.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        started.await();
        List<Integer> compilers = CompilerThreads.compilerThreadIds();
        try {
            chrt("-f", "5", own);
            chrt("-f", "5", bystander[0]);
            for (int tid : compilers) {
                chrt("-f", "5", tid);
                assertEquals(5, priority(tid), "compiler thread " + tid + " set up at SCHED_FIFO 5");
            }

            List<Integer> moved = CompilerThreads.moveToLowestRealTimePriority();

            assertEquals(new HashSet<>(compilers), Set.copyOf(moved), "the threads moved are the compiler threads");
            for (int tid : compilers) {
                assertEquals(SCHED_FIFO, policy(tid), "compiler thread " + tid + " keeps its policy");
                assertEquals(1, priority(tid), "compiler thread " + tid);
            }
            assertEquals(SCHED_FIFO, policy(own), "the caller keeps its policy");
            assertEquals(5, priority(own), "the caller keeps its priority");
            assertEquals(5, priority(bystander[0]), "another thread keeps its priority");
            assertEquals(List.of(), CompilerThreads.moveToLowestRealTimePriority(), "a second call finds nothing to move");
        } finally {
            chrt("-o", "0", own);
            chrt("-o", "0", bystander[0]);
            for (int tid : compilers) {
                chrt("-o", "0", tid);
            }
            done.countDown();
            other.join();
        }
        assertEquals(SCHED_OTHER, policy(own));
    }

    /** This thread's kernel id, from the /proc/thread-self link ("PID/task/TID"). */
    private static int ownTid() {
        try {
            return Integer.parseInt(Files.readSymbolicLink(Path.of("/proc/thread-self")).getFileName().toString());
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Field 41 of /proc/self/task/TID/stat: the scheduling policy. */
    private static int policy(int tid) {
        return statField(tid, 41);
    }

    /** Field 40 of /proc/self/task/TID/stat: the real-time priority (0 under the normal policy). */
    private static int priority(int tid) {
        return statField(tid, 40);
    }

    /** Field {@code n} (1-based, as proc(5) numbers them) of the thread's stat line. */
    private static int statField(int tid, int n) {
        try {
            String stat = Files.readString(Path.of("/proc/self/task/" + tid + "/stat"));
            String[] after = stat.substring(stat.lastIndexOf(')') + 2).split(" "); // fields 3 on; the name may hold spaces
            return Integer.parseInt(after[n - 3]);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    private static void chrt(String policyFlag, String priority, int tid) throws Exception {
        Process p = new ProcessBuilder("chrt", policyFlag, "-p", priority, Integer.toString(tid))
                .redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor() == 0, "chrt " + policyFlag + " -p " + priority + " " + tid + ": " + out);
    }
}

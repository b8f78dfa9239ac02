package io.vhostffm.testkit.device.userspace;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.testkit.Frames;
import io.vhostffm.vhost.device.DirtyLog;
import io.vhostffm.vhost.device.userspace.UserspaceDatapath;
import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * What the datapath thread allocates per frame in steady state, transmit and receive, with the
 * dirty log on: measured with {@code com.sun.management.ThreadMXBean#getThreadAllocatedBytes} on
 * the datapath thread itself while the guest (this thread, which allocates freely) drives it.
 *
 * <p>The datapath's own code allocates nothing per frame (iovecs, chain holders, counters and
 * overflow buffer are preallocated). What remains, found with JFR's allocation samples
 * ({@code jdk.ObjectAllocationSample}): the JDK's downcall path for
 * {@code captureCallState("errno")} runs {@code SharedUtils.checkCaptureSegment}, which returns
 * {@code captureSegment.asSlice(0, CapturableState.LAYOUT)}: a 40-byte
 * {@code NativeMemorySegmentImpl} per readv, writev, eventfd read or poll. C2 scalar-replaces it;
 * interpreted and C1-compiled code allocate it every call. The bound below is one such slice per
 * system call, two per frame: anything the datapath itself allocated per frame would exceed it.
 */
class UserspaceDatapathAllocationTest {

    /** Rounds of 2,000 frames each way: C2 compiles the loops only after tens of thousands of frames. */
    private static final int ROUNDS = 16;
    private static final int PER_ROUND = 2000;

    /**
     * One pair on its worker, and two pairs sharing one worker (the measured pair 0 carries the
     * frames; the worker services both in every round and polls both).
     */
    @ParameterizedTest(name = "{0} pairs on one worker thread")
    @ValueSource(ints = {1, 2})
    void steadyStateAllocationIsOnlyTheJdksErrnoCaptureSlice(int pairs) throws Exception {
        try (DatapathRig rig = new DatapathRig(pairs, true); DirtyLog log = DirtyLog.covering(rig.memory)) {
            rig.guest.postRxBuffers();
            UserspaceDatapath datapath = UserspaceDatapath.start(rig.memory, rig.configs(), rig.device, log, 1);
            try {
                Thread worker = Thread.getAllStackTraces().keySet().stream()
                        .filter(t -> t.getName().startsWith("vhost-ffm userspace datapath pair 0 (tap " + rig.tap.name()))
                        .findFirst().orElse(null);
                assertNotNull(worker, "the datapath thread");
                Random random = new Random(9);
                long[] best = {Long.MAX_VALUE, Long.MAX_VALUE};
                for (int round = 0; round < ROUNDS; round++) {
                    // 2,000 frames each way per round; the first rounds warm up (class loading, JIT)
                    long before = allocatedBytes(worker.threadId());
                    List<byte[]> rx = new ArrayList<>();
                    for (int i = 0; i < PER_ROUND; i++) {
                        rx.add(Frames.frame(FakeGuest.MAC, Frames.NETWORK_MAC, 5, (long) round * PER_ROUND + i,
                                60 + random.nextInt(1400), -1));
                    }
                    assertEquals(PER_ROUND, rig.receive(rx, 200, PER_ROUND).size());
                    long middle = allocatedBytes(worker.threadId());
                    rig.transmitAndCheck(new int[] {0}, (long) round * PER_ROUND, PER_ROUND,
                            UserspaceDatapathTest.lengths(random, PER_ROUND), 500);
                    long after = allocatedBytes(worker.threadId());
                    if (round >= ROUNDS - 4) {
                        best[0] = Math.min(best[0], middle - before);
                        best[1] = Math.min(best[1], after - middle);
                    }
                }
                long bound = PER_ROUND * 2L * 48;  // two system calls per frame, one 40-byte capture slice each (+8 slack)
                assertTrue(best[0] <= bound, "receiving 2,000 frames allocated " + best[0] + " bytes");
                assertTrue(best[1] <= bound, "transmitting 2,000 frames allocated " + best[1] + " bytes");
                log.clear();
            } finally {
                datapath.stop();
            }
        }
    }

    private static long allocatedBytes(long threadId) throws Exception {
        return (long) ALLOCATED_BYTES.invoke(THREADS, threadId);
    }

    private static final Object THREADS;
    private static final Method ALLOCATED_BYTES;

    // reflectively: the module under test does not read java.management, and need not
    static {
        try {
            THREADS = Class.forName("java.lang.management.ManagementFactory").getMethod("getThreadMXBean").invoke(null);
            ALLOCATED_BYTES = Class.forName("com.sun.management.ThreadMXBean").getMethod("getThreadAllocatedBytes",
                    long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }
}

package io.vhostffm.vhost.device.userspace;

import static io.vhostffm.vhost.device.userspace.GuestNetRig.DEVICE_MAC;
import static io.vhostffm.vhost.device.userspace.GuestNetRig.frame;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.vhost.device.DirtyLog;
import io.vhostffm.vhost.device.userspace.GuestNetRig.GuestPair;
import java.lang.foreign.Arena;
import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

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
 * {@code NativeMemorySegmentImpl} per readv, writev, eventfd read or poll. C2 scalar-replaces it
 * (0 bytes per call: {@code AllocationFreeTest}); interpreted and C1-compiled code (tiers 1-3)
 * allocate it every call, whatever kind of segment is passed (docs/vhost-ffm.md, "Costs"). During this test
 * the datapath's {@code service} loops run at C1 tiers on a loaded 2-core box (-XX:+PrintCompilation)
 * while Libc.readv/writev are C2-compiled on their own, so the figure depends on which tier runs
 * each call. The bound below is one such slice per system call, two per frame: anything the
 * datapath itself allocated per frame would exceed it.
 */
class UserspaceDatapathAllocationTest {

    /** Rounds of 2,000 frames each way: C2 compiles the loops only after tens of thousands of frames. */
    private static final int ROUNDS = 16;

    @Test
    void steadyStateAllocationIsOnlyTheJdksErrnoCaptureSlice() throws Exception {
        try (GuestNetRig rig = new GuestNetRig(1, true); Arena arena = Arena.ofShared();
                DirtyLog log = DirtyLog.covering(rig.memory)) {
            rig.wire.setReceiveBuffer(8 << 20);
            GuestPair pair = rig.pairs.get(0);
            pair.postRxBuffers(GuestNetRig.SIZE);
            UserspaceDatapath datapath = UserspaceDatapath.start(rig.memory, rig.configs(), rig.device, log);
            try (WireReader reader = new WireReader(rig.wire, f -> GuestNetRig.ours(f) && GuestNetRig.tagOf(f) == 0)) {
                Thread worker = Thread.getAllStackTraces().keySet().stream()
                        .filter(t -> t.getName().startsWith("vhost-ffm userspace datapath pair 0 (tap " + rig.tap.name()))
                        .findFirst().orElse(null);
                assertNotNull(worker, "the datapath thread");
                Random random = new Random(9);
                int sent = 0;
                long[] best = {Long.MAX_VALUE, Long.MAX_VALUE};
                for (int round = 0; round < ROUNDS; round++) {
                    // 2,000 frames each way per round; the first rounds warm up (class loading, JIT)
                    long before = allocatedBytes(worker.threadId());
                    sent += receiveOnly(rig, pair, arena, sent, 2000, random);
                    long middle = allocatedBytes(worker.threadId());
                    transmitOnly(pair, reader, 2000, random);
                    long after = allocatedBytes(worker.threadId());
                    if (round >= ROUNDS - 4) {
                        best[0] = Math.min(best[0], middle - before);
                        best[1] = Math.min(best[1], after - middle);
                    }
                }
                System.out.printf("datapath thread allocation, dirty log on: RX %d bytes, TX %d bytes per 2,000 frames%n",
                        best[0], best[1]);
                long bound = 2000L * 2 * 48;  // two system calls per frame, one 40-byte capture slice each (+8 slack)
                assertTrue(best[0] <= bound, "receiving 2,000 frames allocated " + best[0] + " bytes");
                assertTrue(best[1] <= bound, "transmitting 2,000 frames allocated " + best[1] + " bytes");
                log.clear();
            } finally {
                datapath.stop();
            }
        }
    }

    private static int receiveOnly(GuestNetRig rig, GuestPair pair, Arena arena, int first, int count, Random random)
            throws Exception {
        List<byte[]> rx = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            rx.add(frame(DEVICE_MAC, 60 + random.nextInt(1400), 5, first + i));
        }
        List<byte[]> got = UserspaceDatapathTest.receive(rig, arena, List.of(pair), rx, 200);
        assertEquals(count, got.size());
        return count;
    }

    private static void transmitOnly(GuestPair pair, WireReader reader, int count, Random random) throws Exception {
        int before = reader.count();
        UserspaceDatapathTest.transmit(pair, reader, count, 0, random, 0);
        UserspaceDatapathTest.drainTx(pair);
        assertEquals(before + count, reader.await(before + count, 60_000));
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

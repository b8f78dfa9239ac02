package io.vhostffm.testkit.device.userspace;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.testkit.Frames;
import io.vhostffm.testkit.OpenDescriptors;
import io.vhostffm.testkit.TxShape;
import io.vhostffm.vhost.device.BackendListener;
import io.vhostffm.vhost.device.userspace.QueuePairConfig;
import io.vhostffm.vhost.device.userspace.UserspaceDatapath;
import io.vhostffm.vring.QueueState;
import io.vhostffm.vring.VirtqueueException;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@link UserspaceDatapath#addPairs}: pairs join a running datapath without pausing the pairs it
 * serves (the worker threads already running are the same threads afterwards, their streams
 * unbroken), a pair whose queue state does not hold up is not added, a pair whose worker left
 * gets a worker of its own, and a stopped datapath adds nothing.
 */
class UserspaceDatapathAddPairsTest {
    private static final int FRAMES = 3_000;

    /** This rig's datapath threads (by the TAP their names carry), by name. */
    private static Map<String, Thread> datapathThreads(DatapathRig rig) {
        String tap = "(tap " + rig.tap.name() + " ";
        return Thread.getAllStackTraces().keySet().stream()
                .filter(t -> t.getName().startsWith("vhost-ffm userspace datapath ") && t.getName().contains(tap))
                .collect(Collectors.toMap(Thread::getName, t -> t));
    }

    private static String name(DatapathRig rig, int... pairs) {
        StringBuilder name = new StringBuilder("vhost-ffm userspace datapath ");
        for (int i = 0; i < pairs.length; i++) {
            name.append(i == 0 ? "" : ", ").append("pair ").append(pairs[i]).append(" (tap ").append(rig.tap.name())
                    .append(" queue ").append(pairs[i]).append(')');
        }
        return name.toString();
    }

    /**
     * Pair 0 runs alone with frames in flight; pairs 1 and 2 join. With one worker the same thread
     * serves all three; with two the first keeps pair 0 and takes pair 2, a new one serves pair 1
     * (the round-robin a start with all three would deal). Every stream arrives once and in order,
     * pair 0's across the join, and the states come back in the order the pairs were served.
     */
    @ParameterizedTest(name = "{0} worker threads")
    @ValueSource(ints = {1, 2})
    void pairsJoinARunningDatapathWhoseThreadsServeOnUnpaused(int workers) throws Exception {
        try (DatapathRig rig = new DatapathRig(3, true)) {
            List<QueuePairConfig> all = rig.configs();
            UserspaceDatapath datapath = UserspaceDatapath.start(rig.memory, all.subList(0, 1), rig.device, null, workers);
            try {
                Map<String, Thread> before = datapathThreads(rig);
                assertEquals(Set.of(name(rig, 0)), before.keySet());
                Thread first = before.get(name(rig, 0));
                // Frames of pair 0 in flight while the pairs join: its stream must not break.
                int inFlight = 64;
                for (long seq = 0; seq < inFlight; seq++) {
                    assertTrue(rig.guest.transmit(0, Frames.frame(Frames.BROADCAST, FakeGuest.MAC, 0, seq, 100, -1),
                            TxShape.SINGLE) >= 0);
                }
                rig.guest.kickIfNeeded(1);

                assertTrue(datapath.addPairs(all.subList(1, 3)));
                // Named for the pairs joining it as the call returns, whether or not the worker
                // has taken them in yet.
                Set<String> named = workers == 1 ? Set.of(name(rig, 0, 1, 2)) : Set.of(name(rig, 0, 2), name(rig, 1));
                assertEquals(named, datapathThreads(rig).keySet());

                assertEquals(List.of(0, 1, 2), datapath.pairNumbers());
                assertEquals(3, datapath.queuePairs());
                assertEquals(workers, datapath.workerThreads());
                for (long seq = 0; seq < inFlight; seq++) {
                    byte[] f = rig.network.nextFromGuest(DatapathRig.TIMEOUT_MILLIS);
                    assertTrue(f != null, "pair 0's frame " + seq + " did not arrive");
                    assertEquals(0, Frames.stream(f));
                    assertEquals(seq, Frames.sequence(f), "pair 0: in order, once, across the join");
                }
                rig.drainTx(0);
                rig.transmitAndCheck(new int[] {0, 1, 2}, inFlight, FRAMES,
                        lengths(new Random(21), inFlight, FRAMES), 300);
                assertEquals(inFlight + FRAMES, datapath.stats(0).txFrames());
                assertEquals(FRAMES, datapath.stats(1).txFrames());
                assertEquals(FRAMES, datapath.stats(2).txFrames());

                Map<String, Thread> after = datapathThreads(rig);
                if (workers == 1) {
                    assertEquals(Set.of(name(rig, 0, 1, 2)), after.keySet());
                    assertSame(first, after.get(name(rig, 0, 1, 2)), "pair 0's thread was replaced");
                } else {
                    assertEquals(Set.of(name(rig, 0, 2), name(rig, 1)), after.keySet());
                    assertSame(first, after.get(name(rig, 0, 2)), "pair 0's thread was replaced");
                }
                assertTrue(first.isAlive());
            } finally {
                List<QueueState> states = datapath.stop();
                assertEquals(6, states.size());
                assertEquals(64 + FRAMES, states.get(1).position().usedIdx(), "tx0");
                assertEquals(FRAMES, states.get(3).position().usedIdx(), "tx1");
                assertEquals(FRAMES, states.get(5).position().usedIdx(), "tx2");
            }
            assertTrue(datapathThreads(rig).isEmpty(), "every datapath thread ended with the stop");
        }
    }

    private static int[] lengths(Random random, long first, int count) {
        int[] l = new int[count];
        for (int i = 0; i < count; i++) {
            l[i] = DatapathRig.frameSize(random, first + i);
        }
        return l;
    }

    /**
     * A joining pair whose receive queue's avail.idx is more than the ring size ahead of its
     * state is refused, naming the queue; nothing is added, no descriptor stays open for it,
     * pair 0 runs on, and a good pair joins afterwards.
     */
    @Test
    void aPairWhoseQueueStateDoesNotHoldUpIsNotAddedAndTheOthersRunOn() throws Exception {
        try (DatapathRig rig = new DatapathRig(2, true)) {
            List<QueuePairConfig> all = rig.configs();
            UserspaceDatapath datapath = UserspaceDatapath.start(rig.memory, all.subList(0, 1), rig.device, null, 1);
            try {
                int before = OpenDescriptors.count();
                int size = rig.layout.queueSize(2);
                long availIdx = rig.layout.driverAreaAddress(2) + 2; // struct vring_avail: le16 flags, le16 idx
                short was = rig.memory.slice(availIdx, 2).get(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, 0);
                rig.memory.slice(availIdx, 2).set(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, 0,
                        (short) (was + size + 1));
                VirtqueueException e = assertThrows(VirtqueueException.class, () -> datapath.addPairs(all.subList(1, 2)));
                assertEquals(2, e.queueIndex(), e.getMessage());
                assertTrue(e.getMessage().contains("avail.idx"), e.getMessage());
                assertEquals(List.of(0), datapath.pairNumbers());
                assertEquals(before, OpenDescriptors.count(), "descriptors of the refused pair");
                rig.transmitAndCheck(new int[] {0}, 0, 500, lengths(new Random(22), 0, 500), 100);

                rig.memory.slice(availIdx, 2).set(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, 0, was);
                assertTrue(datapath.addPairs(all.subList(1, 2)));
                rig.transmitAndCheck(new int[] {0, 1}, 500, 500, lengths(new Random(23), 500, 500), 100);
                assertThrows(IllegalArgumentException.class, () -> datapath.addPairs(all.subList(1, 2)),
                        "a pair served already");
            } finally {
                assertEquals(4, datapath.stop().size());
            }
        }
    }

    /**
     * Pair 0 stops on bad guest input and its worker, serving nothing more, leaves; pair 1 added
     * afterwards gets a worker (thread) of its own and carries its stream.
     */
    @Test
    void aPairAddedAfterItsWorkerLeftGetsAWorkerOfItsOwn() throws Exception {
        try (DatapathRig rig = new DatapathRig(2, true)) {
            List<QueuePairConfig> all = rig.configs();
            UserspaceDatapath datapath = UserspaceDatapath.start(rig.memory, all.subList(0, 1), rig.device, null, 1);
            try {
                Thread first = datapathThreads(rig).get(name(rig, 0));
                long inHole = rig.layout.hole().address() + rig.layout.hole().size() / 2;
                assertTrue(rig.guest.tx(0).add(new long[] {inHole}, new int[] {100}, 1, 0) >= 0);
                rig.transport.kick(1);
                rig.awaitNeedsReset();
                first.join(DatapathRig.TIMEOUT_MILLIS);
                assertFalse(first.isAlive(), "the worker with no pair left did not leave");
                assertEquals(Set.of(0), datapath.stoppedPairs().keySet());

                assertTrue(datapath.addPairs(all.subList(1, 2)));
                assertEquals(Set.of(name(rig, 1)), datapathThreads(rig).keySet());
                assertEquals(2, datapath.workerThreads());
                rig.transmitAndCheck(new int[] {1}, 0, 500, lengths(new Random(24), 0, 500), 100);
                assertTrue(datapath.isRunning());
            } finally {
                assertEquals(4, datapath.stop().size());
            }
            assertTrue(datapathThreads(rig).isEmpty());
        }
    }

    /**
     * A pair joins while the worker cannot take it in yet (held inside the listener, reporting
     * its other pair's bad input): as the call returns, its thread is already named for the
     * joining pair, so nothing judging the thread by its name takes it for a worker of the
     * stopped pair alone, which would end with it (the hostile-guest fuzz target did so once,
     * the worker starved of processor time between the stop and taking the pair in). Released,
     * the worker takes the pair in and carries its stream.
     */
    @Test
    void aJoiningPairNamesItsWorkerBeforeTheWorkerTakesItIn() throws Exception {
        try (DatapathRig rig = new DatapathRig(2, true)) {
            List<QueuePairConfig> all = rig.configs();
            CountDownLatch reporting = new CountDownLatch(1);
            CountDownLatch release = new CountDownLatch(1);
            BackendListener held = (queue, reason) -> {
                reporting.countDown();
                try {
                    release.await(DatapathRig.TIMEOUT_MILLIS, TimeUnit.MILLISECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            };
            UserspaceDatapath datapath = UserspaceDatapath.start(rig.memory, all.subList(0, 1),
                    new UserspaceDatapath.Settings(rig.device::rxFilter, held, null, UserspaceDatapath.DEVICE_QUEUES,
                            1500, true, 1));
            try {
                long inHole = rig.layout.hole().address() + rig.layout.hole().size() / 2;
                assertTrue(rig.guest.tx(0).add(new long[] {inHole}, new int[] {100}, 1, 0) >= 0);
                rig.transport.kick(1);
                assertTrue(reporting.await(DatapathRig.TIMEOUT_MILLIS, TimeUnit.MILLISECONDS), "pair 0 not reported");
                Thread worker = datapathThreads(rig).get(name(rig, 0));

                assertTrue(datapath.addPairs(all.subList(1, 2)));
                assertEquals(Set.of(name(rig, 0, 1)), datapathThreads(rig).keySet(),
                        "the worker's name, as the pair joins");
                assertSame(worker, datapathThreads(rig).get(name(rig, 0, 1)));

                release.countDown();
                rig.transmitAndCheck(new int[] {1}, 0, 500, lengths(new Random(25), 0, 500), 100);
                assertTrue(worker.isAlive(), "the worker serving pair 1 left with pair 0");
                assertEquals(1, datapath.workerThreads());
            } finally {
                release.countDown();
                assertEquals(4, datapath.stop().size());
            }
        }
    }

    /** Stopped (or stopping), a datapath adds nothing: false, and no thread starts. */
    @Test
    void aStoppedDatapathAddsNothing() throws Exception {
        try (DatapathRig rig = new DatapathRig(2, true)) {
            List<QueuePairConfig> all = rig.configs();
            UserspaceDatapath datapath = UserspaceDatapath.start(rig.memory, all.subList(0, 1), rig.device, null, 1);
            List<QueueState> states = datapath.stop();
            assertFalse(datapath.addPairs(all.subList(1, 2)));
            assertEquals(List.of(0), datapath.pairNumbers());
            assertEquals(states, datapath.stop());
            assertTrue(datapathThreads(rig).isEmpty());
        }
    }
}

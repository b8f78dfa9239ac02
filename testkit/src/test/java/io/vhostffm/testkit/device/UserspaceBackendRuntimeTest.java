package io.vhostffm.testkit.device;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.testkit.OpenDescriptors;
import io.vhostffm.testkit.ResourceLedger;
import io.vhostffm.testkit.RxFrame;
import io.vhostffm.vhost.device.BackendStart;
import io.vhostffm.vhost.device.DatapathState;
import io.vhostffm.vhost.device.DirtyLog;
import io.vhostffm.vhost.device.NetDeviceRuntime;
import io.vhostffm.vhost.device.QueueBinding;
import io.vhostffm.vhost.device.userspace.UserspaceNetBackend;
import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.TapDevice;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vhost.virtio.net.VirtioNetCtrl;
import io.vhostffm.vring.GuestRegion;
import io.vhostffm.vring.QueueGeometry;
import io.vhostffm.vring.QueuePosition;
import io.vhostffm.vring.VirtqueueException;
import java.lang.foreign.ValueLayout;
import io.vhostffm.vring.QueueState;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The userspace datapath as the device's backend ({@link NetDeviceRuntime} with
 * {@link UserspaceNetBackend}) on the host: the suite the kernel backend passes in the VM
 * ({@link VhostNetBackendKernelTest}, {@link DeviceTraffic}), plus a live switch between two
 * userspace backends on the same TAP in the middle of both streams.
 */
class UserspaceBackendRuntimeTest {
    private static final int FRAMES = 10_000;

    static RuntimeRig userspace(int pairs) throws Exception {
        return RuntimeRig.on(pairs, UserspaceNetBackend::open);
    }

    /** On a backend whose datapaths run {@code workers} worker threads. */
    static RuntimeRig userspace(int pairs, int workers) throws Exception {
        return RuntimeRig.on(pairs, tap -> UserspaceNetBackend.open(tap, workers));
    }

    @ParameterizedTest(name = "{0} worker threads")
    @ValueSource(ints = {1, 2})
    void transmitsTenThousandFramesByteForByteInOrderPerQueue(int workers) throws Exception {
        try (RuntimeRig rig = userspace(2, workers)) {
            rig.setQueuePairs(2);
            assertEquals(FRAMES, DeviceTraffic.transmitAndCheck(rig, 0, FRAMES));
            assertFalse(rig.guest.needsReset());
        }
    }

    @Test
    void receivesTenThousandFramesInMergeableBuffers() throws Exception {
        try (RuntimeRig rig = userspace(2)) {
            rig.setQueuePairs(2);
            rig.guest.postRxBuffers();
            int[] perPair = DeviceTraffic.receiveAndCheck(rig, 0, FRAMES, null);
            assertTrue(perPair[0] > 0 && perPair[1] > 0, Arrays.toString(perPair));
            assertFalse(rig.guest.needsReset());
        }
    }

    @Test
    void dirtyLogShowsExactlyThePagesWritten() throws Exception {
        try (RuntimeRig rig = userspace(1); DirtyLog log = DirtyLog.covering(rig.memory)) {
            rig.guest.postRxBuffers();
            // Settle before logging, on events: one frame received means rx took its buffers; a
            // control command answered means the control queue went idle after it.
            DeviceTraffic.receiveAndCheck(rig, 0, 1, null);
            assertEquals(VirtioNetCtrl.OK, rig.guest.setPromiscuous(true));
            rig.device.startDirtyLog(log);
            log.clear();
            List<RxFrame> received = new ArrayList<>();
            DeviceTraffic.receiveAndCheck(rig, 1, 40, received);
            assertEquals(40, DeviceTraffic.transmitAndCheck(rig, 0, 40));
            assertEquals(VirtioNetCtrl.OK, rig.guest.setPromiscuous(true));

            TreeSet<Long> expected = VhostNetBackendKernelTest.expectedPages(rig, received);
            TreeSet<Long> dirty = new TreeSet<>();
            for (long p : log.fetchAndClear()) {
                dirty.add(p);
            }
            assertEquals(VhostNetBackendKernelTest.hex(expected), VhostNetBackendKernelTest.hex(dirty));
            rig.device.stopDirtyLog();
            // what the datapath logged between the fetch above and the stop (avail_event updates
            // on a used ring page) was still logging time; from here on nothing may be logged
            log.fetchAndClear();
            DeviceTraffic.receiveAndCheck(rig, 41, 8, null);
            assertEquals(0, log.fetchAndClear().length, "nothing is logged after stopDirtyLog");
        }
    }

    @Test
    void stopAndStartContinueTheStream() throws Exception {
        try (RuntimeRig rig = userspace(2)) {
            NetDeviceRuntime device = rig.device;
            rig.setQueuePairs(2);
            assertEquals(200, DeviceTraffic.transmitAndCheck(rig, 0, 200));
            DatapathState stopped = device.stopDatapath();
            assertFalse(device.isDatapathRunning());
            for (int q = 0; q < 4; q++) {
                QueueState s = stopped.dataQueues().get(q);
                int expected = q % 2 == 1 ? 100 : 0;
                assertEquals(expected, s.position().lastAvailIdx(), "virtqueue " + q + " last_avail_idx");
                assertEquals(expected, s.position().usedIdx(), "virtqueue " + q + " used idx");
                assertEquals(0, s.position().inuse());
            }
            device.prestartDatapath(stopped.dataQueues());
            assertFalse(device.isDatapathRunning());
            device.quickstartDatapath(stopped);
            assertTrue(device.isDatapathRunning());
            assertEquals(200, DeviceTraffic.transmitAndCheck(rig, 200, 200));
            rig.guest.postRxBuffers();
            DeviceTraffic.receiveAndCheck(rig, 0, 64, null);
            // Stopped while holding receive chains (gathered, not used): they are given back.
            DatapathState again = device.stopDatapath();
            QueueState rx0 = again.dataQueues().get(0);
            assertEquals(0, rx0.position().inuse(), "held receive chains are given back");
            assertEquals(rx0.position().usedIdx(), rx0.position().lastAvailIdx());
            device.startDatapath(again);
            DeviceTraffic.receiveAndCheck(rig, 64, 64, null);
            assertFalse(rig.guest.needsReset());
        }
    }

    /**
     * A migration source's stop: quiesced, not joined ({@link NetDeviceRuntime#quiesceDatapath}).
     * It comes while a round of frames is in flight both ways, and the queues are kicked again
     * right after it, so the workers it claimed wake on the stop and on those kicks: they take
     * and complete nothing more, for the datapath restarted from the quiesced states sends and
     * delivers every frame exactly once, in order. Once {@link
     * NetDeviceRuntime#awaitDatapathStopped awaited}, no thread or descriptor of the stopped
     * datapath is left (the ledger of a classic stop). Both pairs on one shared worker, and each
     * on its own.
     */
    @ParameterizedTest(name = "{0} worker threads")
    @ValueSource(ints = {1, 2})
    void quiescedStopTakesNothingAfterItAndLeavesNothingOnceAwaited(int workers) throws Exception {
        try (RuntimeRig rig = userspace(2, workers)) {
            NetDeviceRuntime device = rig.device;
            rig.setQueuePairs(2);
            rig.guest.postRxBuffers();
            assertEquals(100, DeviceTraffic.transmitAndCheck(rig, 0, 100));
            DatapathState classic = device.stopDatapath();
            RuntimeRig.awaitThreadsEnd("(parked)");
            ResourceLedger.Snapshot stopped = ResourceLedger.take();
            device.startDatapath(classic);
            DeviceTraffic.MidStream quiesceAndRestart = () -> {
                DatapathState quiesced = device.quiesceDatapath();
                assertFalse(device.isDatapathRunning());
                for (int q = 0; q < 4; q++) {
                    device.notifyQueue(q); // a kick a claimed worker must leave alone
                }
                device.awaitDatapathStopped();
                ResourceLedger.requireFlat("quiesced, then awaited", stopped, ResourceLedger.take());
                device.startDatapath(quiesced);
            };
            for (int round = 0; round < 10; round++) {
                assertEquals(100, DeviceTraffic.transmitAndCheck(rig, 100 + 100 * round, 100, quiesceAndRestart));
                DeviceTraffic.receiveAndCheck(rig, 64 * round, 64, null, quiesceAndRestart);
            }
            assertFalse(rig.guest.needsReset());
        }
    }

    /**
     * A quiesce stops the control queue's service without waking its thread (woken there, the
     * thread would contend for the model's lock the migration source holds, inside the
     * downtime): the thread stays asleep, a kick on the control queue wakes it and it ends, and
     * {@link NetDeviceRuntime#awaitDatapathStopped} then returns with the datapath stopped.
     */
    @Test
    void quiesceLeavesTheControlQueueThreadAsleepUntilAKickOrTheAwait() throws Exception {
        try (RuntimeRig rig = userspace(1)) {
            NetDeviceRuntime device = rig.device;
            int controlQueue = 2; // one pair: receive 0, transmit 1, control 2
            Thread control = Thread.getAllStackTraces().keySet().stream()
                    .filter(t -> t.getName().equals("virtio-net-ctrl-vq-" + controlQueue))
                    .findFirst().orElseThrow();
            // A command answered: the thread has run its loop (a thread not yet at its first look
            // at the stop flag when the quiesce comes ends there, woken or not), and after the
            // answer it can only go to sleep, the stop flag set or not.
            assertEquals(VirtioNetCtrl.OK, rig.guest.setPromiscuous(true));
            device.quiesceDatapath();
            // Woken, it would end within microseconds; not ending within 200 ms stands for "not woken".
            control.join(200);
            assertTrue(control.isAlive(), "the quiesce woke the control queue's thread");
            device.notifyQueue(controlQueue); // a kick: it wakes, sees the stop, ends
            control.join(RuntimeRig.EVENT_TIMEOUT_MILLIS);
            assertFalse(control.isAlive(), "a kick after the quiesce did not end the control queue's thread");
            device.awaitDatapathStopped();
            assertFalse(device.isDatapathRunning());
        }
    }

    /**
     * A migration destination's order: prestarted on states whose indices have moved on since
     * (the datapath built then), quickstarted with the final ones. The prepared datapath serves
     * from the final positions, and logs its writes where they land.
     */
    @Test
    void prestartedOnStaleStatesQuickstartsAtTheFinalPositionsAndLogsWhereItWrites() throws Exception {
        try (RuntimeRig rig = userspace(2); DirtyLog log = DirtyLog.covering(rig.memory)) {
            NetDeviceRuntime device = rig.device;
            rig.setQueuePairs(2);
            rig.guest.postRxBuffers();
            DeviceTraffic.receiveAndCheck(rig, 0, 1, null);
            DatapathState early = device.stopDatapath();
            device.startDatapath(early);
            assertEquals(300, DeviceTraffic.transmitAndCheck(rig, 0, 300));
            DeviceTraffic.receiveAndCheck(rig, 1, 150, null);
            DatapathState last = device.stopDatapath();

            device.prestartDatapath(early.dataQueues());
            assertFalse(device.isDatapathRunning());
            device.startDirtyLog(log);
            log.clear();
            device.quickstartDatapath(last);
            assertTrue(device.isDatapathRunning());
            List<RxFrame> received = new ArrayList<>();
            DeviceTraffic.receiveAndCheck(rig, 151, 60, received);
            assertEquals(60, DeviceTraffic.transmitAndCheck(rig, 300, 60));
            assertEquals(VirtioNetCtrl.OK, rig.guest.setPromiscuous(true));
            TreeSet<Long> expected = VhostNetBackendKernelTest.expectedPages(rig, received);
            expected.add(VhostNetBackendKernelTest.page(rig.layout.deviceAreaAddress(2))); // rx1 used ring
            expected.add(VhostNetBackendKernelTest.page(rig.layout.deviceAreaAddress(3))); // tx1 used ring
            expected.add(VhostNetBackendKernelTest.page(rig.layout.deviceAreaAddress(4))); // control used ring
            TreeSet<Long> dirty = new TreeSet<>();
            for (long page : log.fetchAndClear()) {
                dirty.add(page);
            }
            assertEquals(VhostNetBackendKernelTest.hex(expected), VhostNetBackendKernelTest.hex(dirty));
            DatapathState end = device.stopDatapath();
            for (int q = 0; q < 4; q++) {
                QueueState s = end.dataQueues().get(q);
                assertEquals(0, s.position().inuse(), "virtqueue " + q);
            }
            assertEquals(360, end.dataQueues().get(1).position().usedIdx() + end.dataQueues().get(3).position().usedIdx(),
                    "every frame sent went through the transmit queues, counted from the final positions");
            assertFalse(rig.guest.needsReset());
        }
    }

    /**
     * A prestart the switchover never follows (a migration abandoned before its end): the stop
     * lets go of everything the prestart made, the prepared datapath's eventfd and the parked
     * threads included; a later start runs as usual.
     */
    @Test
    void prestartThenStopWithoutQuickstartLeaksNothing() throws Exception {
        try (RuntimeRig rig = userspace(2)) {
            NetDeviceRuntime device = rig.device;
            rig.setQueuePairs(2);
            assertEquals(20, DeviceTraffic.transmitAndCheck(rig, 0, 20));
            DatapathState stopped = device.stopDatapath();
            for (int i = 0; i < 3; i++) {
                device.prestartDatapath(stopped.dataQueues());
                device.stopDatapath();
            }
            RuntimeRig.awaitThreadsEnd("(parked)");
            ResourceLedger.Snapshot before = ResourceLedger.take();
            for (int i = 0; i < 20; i++) {
                device.prestartDatapath(stopped.dataQueues());
                assertFalse(device.isDatapathRunning());
                DatapathState again = device.stopDatapath();
                assertEquals(positions(stopped), positions(again), "a prestart moves no index");
            }
            RuntimeRig.awaitThreadsEnd("(parked)");
            ResourceLedger.requireFlat("prestart then stop (20 times)", before, ResourceLedger.take());
            device.startDatapath(stopped);
            assertEquals(20, DeviceTraffic.transmitAndCheck(rig, 20, 20));
            assertFalse(rig.guest.needsReset());
        }
    }

    /**
     * The control queue prepared at prestart (its wake-up eventfd, poller and parked thread):
     * prestarts left without quickstart close all of it at the stop, classic starts between them
     * make and end their own, and the prestart whose quickstart follows serves the control queue from it, at the
     * final position: promiscuous mode and the number of queue pairs are answered, traffic runs
     * on both pairs after them, and the device's resources are where they were once it stops.
     */
    @Test
    void controlQueuePreparedAtPrestartIsReleasedWithoutQuickstartAndServesAfterIt() throws Exception {
        try (RuntimeRig rig = userspace(2)) {
            NetDeviceRuntime device = rig.device;
            rig.setQueuePairs(2);
            assertEquals(20, DeviceTraffic.transmitAndCheck(rig, 0, 20));
            DatapathState stopped = device.stopDatapath();
            device.prestartDatapath(stopped.dataQueues());
            device.stopDatapath();
            RuntimeRig.awaitThreadsEnd("(parked)");
            ResourceLedger.Snapshot before = ResourceLedger.take();
            for (int i = 0; i < 10; i++) {
                device.prestartDatapath(stopped.dataQueues());
                device.stopDatapath();
                device.startDatapath(stopped); // a classic start makes its own control queue parts
                stopped = device.stopDatapath();
            }
            RuntimeRig.awaitThreadsEnd("(parked)");
            ResourceLedger.requireFlat("prestart then stop, classic start then stop (10 times each)", before,
                    ResourceLedger.take());

            device.prestartDatapath(stopped.dataQueues());
            device.quickstartDatapath(stopped);
            assertTrue(device.isDatapathRunning());
            assertEquals(VirtioNetCtrl.OK, rig.guest.setPromiscuous(true), () -> "RX_PROMISC: " + device.model().lastError());
            rig.setQueuePairs(1);
            rig.setQueuePairs(2);
            assertEquals(20, DeviceTraffic.transmitAndCheck(rig, 20, 20));
            DatapathState end = device.stopDatapath();
            QueueState control = end.controlQueue();
            assertEquals(stopped.controlQueue().position().usedIdx() + 3, control.position().usedIdx(),
                    "three commands answered from the final position");
            RuntimeRig.awaitThreadsEnd("(parked)");
            ResourceLedger.requireFlat("after a quickstart from the prepared control queue, stopped", before,
                    ResourceLedger.take());
            assertFalse(rig.guest.needsReset());
        }
    }

    /**
     * The quickstart's rehearsal (a migration destination during precopy, the guest running on
     * the source and sharing the rings): many rehearsals with stale and final positions, and one
     * with a refused position, write not a byte of guest memory and start nothing; the
     * quickstart after them continues both streams exactly.
     */
    @Test
    void rehearsalWritesNothingToGuestMemoryAndTheQuickstartAfterItContinuesTheStream() throws Exception {
        try (RuntimeRig rig = userspace(2)) {
            NetDeviceRuntime device = rig.device;
            rig.setQueuePairs(2);
            rig.guest.postRxBuffers();
            DeviceTraffic.receiveAndCheck(rig, 0, 1, null);
            DatapathState early = device.stopDatapath();
            device.startDatapath(early);
            assertEquals(200, DeviceTraffic.transmitAndCheck(rig, 0, 200));
            DeviceTraffic.receiveAndCheck(rig, 1, 50, null);
            DatapathState last = device.stopDatapath();
            assertThrows(IllegalStateException.class, () -> device.rehearseQuickstart(last), "not prestarted");

            device.prestartDatapath(early.dataQueues());
            List<byte[]> memoryBefore = guestMemory(rig);
            Map<Integer, String> descriptorsBefore = OpenDescriptors.snapshot();
            for (int i = 0; i < 50; i++) {
                device.rehearseQuickstart(i % 2 == 0 ? early : last);
            }
            // The notifications' rehearsal signals an eventfd of its own, closed after each.
            assertEquals(descriptorsBefore, OpenDescriptors.snapshot(), "descriptors left by the rehearsals");
            List<QueueState> refused = new ArrayList<>(last.dataQueues());
            QueueState rx1 = refused.get(2);
            refused.set(2, rx1.withPosition(QueuePosition.split(0, 0, rx1.geometry().size() + 1)));
            assertThrows(VirtqueueException.class,
                    () -> device.rehearseQuickstart(new DatapathState(refused, last.controlQueue(), last.controlQueueIndex())));
            assertFalse(device.isDatapathRunning());
            List<byte[]> memoryAfter = guestMemory(rig);
            for (int r = 0; r < memoryBefore.size(); r++) {
                assertTrue(Arrays.equals(memoryBefore.get(r), memoryAfter.get(r)),
                        "guest memory region " + r + " changed by the rehearsals");
            }

            device.quickstartDatapath(last);
            assertTrue(device.isDatapathRunning());
            assertEquals(100, DeviceTraffic.transmitAndCheck(rig, 200, 100));
            DeviceTraffic.receiveAndCheck(rig, 51, 50, null);
            DatapathState end = device.stopDatapath();
            assertEquals(300, end.dataQueues().get(1).position().usedIdx() + end.dataQueues().get(3).position().usedIdx());
            assertFalse(rig.guest.needsReset());
        }
    }

    /** A copy of every guest memory region's bytes. */
    private static List<byte[]> guestMemory(RuntimeRig rig) {
        List<byte[]> copy = new ArrayList<>();
        for (GuestRegion region : rig.memory.regions()) {
            copy.add(region.segment().toArray(ValueLayout.JAVA_BYTE));
        }
        return copy;
    }

    private static List<String> positions(DatapathState state) {
        return state.dataQueues().stream().map(q -> q.position().toString()).toList();
    }

    @Test
    void queuePairsSetTurnsPairsOnAndOff() throws Exception {
        try (RuntimeRig rig = userspace(2)) {
            VhostNetBackendKernelTest.queuePairsSetTurnsPairsOnAndOff(rig);
        }
    }

    /**
     * VQ_PAIRS_SET 2 after DRIVER_OK (a Linux guest's boot) adds pair 1 to the running datapath:
     * the one worker thread serving pair 0 is the same thread afterwards, now serving both, and
     * both pairs carry their streams; VQ_PAIRS_SET 1 (a pair leaves) restarts the datapath.
     */
    @Test
    void queuePairsSetThatAddsAPairKeepsTheRunningWorkerThread() throws Exception {
        try (RuntimeRig rig = userspace(2, 1)) {
            rig.guest.postRxBuffers();
            int[] onePair = DeviceTraffic.receiveAndCheck(rig, 0, 96, null);
            assertEquals(96, onePair[0], "before VQ_PAIRS_SET only pair 0 runs: " + Arrays.toString(onePair));
            Map<String, Thread> before = datapathThreads(rig);
            String tap = rig.tap.name();
            String pair0 = "vhost-ffm userspace datapath pair 0 (tap " + tap + " queue 0)";
            assertEquals(java.util.Set.of(pair0), before.keySet());
            rig.setQueuePairs(2);
            Map<String, Thread> after = datapathThreads(rig);
            String both = pair0 + ", pair 1 (tap " + tap + " queue 1)";
            assertEquals(java.util.Set.of(both), after.keySet());
            assertTrue(before.get(pair0) == after.get(both), "pair 0's worker thread was replaced");
            assertEquals(300, DeviceTraffic.transmitAndCheck(rig, 0, 300));
            int[] twoPairs = DeviceTraffic.receiveAndCheck(rig, 96, 96, null);
            assertTrue(twoPairs[0] > 0 && twoPairs[1] > 0, Arrays.toString(twoPairs));
            rig.setQueuePairs(1);
            assertFalse(datapathThreads(rig).containsValue(after.get(both)), "a pair left: a restart");
            int[] backToOne = DeviceTraffic.receiveAndCheck(rig, 192, 96, null);
            assertEquals(96, backToOne[0], Arrays.toString(backToOne));
        }
    }

    /**
     * A VQ_PAIRS_SET whose new pair's queue does not hold up (receive virtqueue 2's avail.idx
     * moved more than the ring size ahead) is answered ERR naming the queue, and pair 0 runs on:
     * every frame received lands on it, pair 1's TAP queue left detached.
     */
    @Test
    void aRefusedQueuePairsSetLeavesPairZeroRunning() throws Exception {
        try (RuntimeRig rig = userspace(2, 1)) {
            long availIdx = rig.layout.driverAreaAddress(2) + 2; // struct vring_avail: le16 flags, le16 idx
            var idx = rig.memory.slice(availIdx, 2);
            short was = idx.get(ValueLayout.JAVA_SHORT_UNALIGNED, 0);
            idx.set(ValueLayout.JAVA_SHORT_UNALIGNED, 0, (short) (was + rig.layout.queueSize(2) + 1));
            assertEquals(VirtioNetCtrl.ERR, rig.guest.setQueuePairs(2));
            String error = rig.device.model().lastError().orElseThrow();
            assertTrue(error.contains("virtqueue 2") && error.contains("avail.idx"), error);
            assertEquals(1, rig.device.model().netState().queuePairs(), "the refused change was kept");
            assertFalse(rig.guest.needsReset());
            assertTrue(rig.device.isDatapathRunning());
            rig.guest.postRxBuffers();
            int[] received = DeviceTraffic.receiveAndCheck(rig, 0, 96, null);
            assertEquals(96, received[0], Arrays.toString(received));
            assertFalse(rig.tap.setQueueAttached(1, false), "pair 1's TAP queue was left attached");

            // Posting receive buffers above wrote the driver's own avail.idx over the bad one
            // (on every receive queue): the same command now succeeds, pair 1 joins, both receive.
            assertTrue(((idx.get(ValueLayout.JAVA_SHORT_UNALIGNED, 0) - was) & 0xffff) <= rig.layout.queueSize(2));
            rig.setQueuePairs(2);
            int[] both = DeviceTraffic.receiveAndCheck(rig, 96, 96, null);
            assertTrue(both[0] > 0 && both[1] > 0, Arrays.toString(both));
        }
    }

    /** {@code rig}'s datapath threads (by the TAP their names carry), by name. */
    private static Map<String, Thread> datapathThreads(RuntimeRig rig) {
        String tap = "(tap " + rig.tap.name() + " ";
        Map<String, Thread> threads = new java.util.HashMap<>();
        for (Thread t : Thread.getAllStackTraces().keySet()) {
            if (t.getName().startsWith("vhost-ffm userspace datapath ") && t.getName().contains(tap)) {
                threads.put(t.getName(), t);
            }
        }
        return threads;
    }

    @Test
    void badGuestInputStopsOnlyThatDevice() throws Exception {
        try (RuntimeRig bad = userspace(1); RuntimeRig good = userspace(1)) {
            long inHole = bad.layout.hole().address() + bad.layout.hole().size() / 2;
            String error = VhostNetBackendKernelTest.sendIntoTheHole(bad);
            assertTrue(error.contains("virtqueue 1") && error.contains("buffer not inside guest memory")
                    && error.contains("0x" + Long.toHexString(inHole)), error);
            // the datapath stops itself from its own thread: wait for that thread's end
            bad.awaitDatapathThreadsEnd();
            assertFalse(bad.device.isDatapathRunning());
            assertEquals(30, DeviceTraffic.transmitAndCheck(good, 0, 30));
            assertFalse(good.guest.needsReset());
        }
    }

    @Test
    void offersWhatItCarriesAndRefusesRingStatesThatDisagreeWithTheAckedFormat() throws Exception {
        try (TapDevice tap = TapDevice.create("vffup%d"); UserspaceNetBackend backend = UserspaceNetBackend.open(tap)) {
            long features = backend.capabilities().supportedFeatures();
            for (VirtioFeature f : List.of(VirtioFeature.VERSION_1, VirtioFeature.MRG_RXBUF,
                    VirtioFeature.EVENT_IDX, VirtioFeature.INDIRECT_DESC, VirtioFeature.GUEST_CSUM,
                    VirtioFeature.CSUM)) {
                assertTrue(f.in(features), f + " in " + VirtioFeature.describe(features));
            }
            assertFalse(VirtioFeature.RSS.in(features), "no steering in the userspace datapath");
            assertTrue(backend.capabilities().packedRings(), "packed rings run here (UserspacePackedRuntimeTest)");
            try (var memory = MemfdGuestMemory.create("p", List.of(new MemfdGuestMemory.RegionSpec(0, 0x10000)));
                 var kick = EventFd.create(); var call = EventFd.create()) {
                QueueState packed = QueueState.fresh(QueueGeometry.packed(64, 0, 0x1000, 0x2000, true));
                var start = new BackendStart(memory, VirtioFeature.VERSION_1.mask(),
                        List.of(new QueueBinding(0, packed, kick, call), new QueueBinding(1, packed, kick, call)), 1, 0,
                        null, (q, reason) -> {});
                // packed ring states while RING_PACKED is not acked
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> backend.prestart(start));
                assertTrue(e.getMessage().contains("virtqueue 0") && e.getMessage().contains("packed")
                        && e.getMessage().contains("VIRTIO_F_RING_PACKED(34) is not acked"), e.getMessage());
                assertFalse(backend.isRunning());
            }
        }
    }

    @Test
    void liveSwitchBetweenTwoUserspaceBackendsMidStreamLosesAndRepeatsNothing() throws Exception {
        try (RuntimeRig rig = userspace(2); UserspaceNetBackend other = UserspaceNetBackend.open(rig.tap)) {
            rig.setQueuePairs(2);
            BackendSwitching.Result r = BackendSwitching.streamWhileSwitching(rig, other, FRAMES, 20, 3);
            assertTrue(r.switches() >= 6, "switches: " + r.switches());
        }
    }
}

package io.vhostffm.testkit.device;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.testkit.RxFrame;
import io.vhostffm.vhost.device.BackendCapabilities;
import io.vhostffm.vhost.device.DatapathState;
import io.vhostffm.vhost.device.DirtyLog;
import io.vhostffm.vhost.device.NetDeviceRuntime;
import io.vhostffm.vhost.device.userspace.UserspaceNetBackend;
import io.vhostffm.vhost.os.TapDevice;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vhost.virtio.net.FeatureNegotiationException;
import io.vhostffm.vhost.virtio.net.NetDeviceListener;
import io.vhostffm.vhost.virtio.net.VirtioNetCtrl;
import io.vhostffm.vhost.virtio.net.VirtioNetDevice;
import io.vhostffm.vhost.virtio.net.VirtioNetOptions;
import io.vhostffm.vring.PackedDriverQueue;
import io.vhostffm.vring.PackedRing;
import io.vhostffm.vring.QueueState;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Packed virtqueues (VIRTIO_F_RING_PACKED) on the userspace backend under {@link NetDeviceRuntime},
 * on the host with a real TAP: the split suite's TX and RX checks ({@link DeviceTraffic}) with the
 * testkit's guest on {@link PackedDriverQueue}s, two queue pairs, event idx on and off, the
 * control queue packed too, and a live switch between two userspace backends in the middle of both
 * streams. The kernel backend refuses packed rings at negotiation.
 */
class UserspacePackedRuntimeTest {
    private static final int FRAMES = 10_000;
    private static final VarHandle SHORT = ValueLayout.JAVA_SHORT.varHandle();

    static RuntimeRig packedGuest(int pairs, boolean eventIdx) throws Exception {
        RuntimeRig rig = RuntimeRig.on(pairs, UserspaceNetBackend::open,
                eventIdx ? 0 : VirtioFeature.EVENT_IDX.mask(), VirtioFeature.RING_PACKED);
        try {
            assertTrue(rig.guest.packed(), "RING_PACKED negotiated");
            assertEquals(eventIdx, VirtioFeature.EVENT_IDX.in(rig.device.model().driverFeatures()));
            for (int q = 0; q < rig.layout.queueCount(); q++) {
                assertTrue(rig.guest.queue(q) instanceof PackedDriverQueue, "driver queue " + q + " is packed");
            }
            return rig;
        } catch (Throwable t) {
            rig.close();
            throw t;
        }
    }

    @ParameterizedTest(name = "event idx {0}")
    @ValueSource(booleans = {true, false})
    void transmitsTenThousandFramesOnPackedRings(boolean eventIdx) throws Exception {
        try (RuntimeRig rig = packedGuest(2, eventIdx)) {
            rig.setQueuePairs(2); // a packed control queue answers
            assertEquals(FRAMES, DeviceTraffic.transmitAndCheck(rig, 0, FRAMES));
            assertFalse(rig.guest.needsReset(), () -> "NEEDS_RESET: " + rig.device.model().lastError());
            for (QueueState s : rig.device.stopDatapath().dataQueues()) {
                assertTrue(s.geometry().packed());
                assertEquals(0, s.position().inuse());
            }
        }
    }

    @ParameterizedTest(name = "event idx {0}")
    @ValueSource(booleans = {true, false})
    void receivesTenThousandFramesInMergeableBuffersOnPackedRings(boolean eventIdx) throws Exception {
        try (RuntimeRig rig = packedGuest(2, eventIdx)) {
            rig.setQueuePairs(2);
            rig.guest.postRxBuffers();
            int[] perPair = DeviceTraffic.receiveAndCheck(rig, 0, FRAMES, null);
            assertTrue(perPair[0] > 0 && perPair[1] > 0, Arrays.toString(perPair));
            assertFalse(rig.guest.needsReset(), () -> "NEEDS_RESET: " + rig.device.model().lastError());
        }
    }

    @Test
    void controlQueueOnAPackedRingAnswersValidAndMalformedCommands() throws Exception {
        try (RuntimeRig rig = packedGuest(2, true)) {
            assertEquals(VirtioNetCtrl.OK, rig.guest.setPromiscuous(true));
            assertEquals(VirtioNetCtrl.ERR, rig.guest.setQueuePairs(9), "more pairs than the device has");
            rig.setQueuePairs(2);
            rig.setQueuePairs(1);
            assertFalse(rig.guest.needsReset());
        }
    }

    @Test
    void stopAndStartKeepPackedPositionsAndWrapCounters() throws Exception {
        try (RuntimeRig rig = packedGuest(1, true)) {
            NetDeviceRuntime device = rig.device;
            // 300 frames of 1 to 4 descriptors, or 1 slot through an indirect table: several hundred
            // ring slots, so the tx ring went round its 256 entries and the wrap counters flipped.
            assertEquals(300, DeviceTraffic.transmitAndCheck(rig, 0, 300));
            DatapathState stopped = device.stopDatapath();
            QueueState tx = stopped.dataQueues().get(1);
            PackedDriverQueue driver = (PackedDriverQueue) rig.guest.tx(0);
            assertTrue(tx.geometry().packed());
            assertEquals(driver.nextAvail(), tx.position().lastAvailIdx(), "tx last avail index = the driver's next avail slot");
            assertEquals(driver.availWrapCounter(), tx.position().lastAvailWrapCounter(), "tx avail wrap counter");
            assertEquals(driver.nextUsed(), tx.position().usedIdx(), "tx used index = the driver's next used slot");
            assertEquals(driver.usedWrapCounter(), tx.position().usedWrapCounter(), "tx used wrap counter");
            assertEquals(tx.position().lastAvailIdx(), tx.position().usedIdx());
            assertEquals(tx.position().lastAvailWrapCounter(), tx.position().usedWrapCounter());
            device.prestartDatapath(stopped.dataQueues());
            device.quickstartDatapath(stopped);
            assertEquals(300, DeviceTraffic.transmitAndCheck(rig, 300, 300));
            rig.guest.postRxBuffers();
            DeviceTraffic.receiveAndCheck(rig, 0, 64, null);
            // stopped while holding receive chains: they are given back (position steps back by their slots)
            DatapathState again = device.stopDatapath();
            QueueState rx = again.dataQueues().get(0);
            assertEquals(0, rx.position().inuse(), "held receive chains are given back");
            assertEquals(rx.position().usedIdx(), rx.position().lastAvailIdx());
            assertEquals(rx.position().usedWrapCounter(), rx.position().lastAvailWrapCounter());
            device.startDatapath(again);
            DeviceTraffic.receiveAndCheck(rig, 64, 64, null);
            assertFalse(rig.guest.needsReset());
        }
    }

    @Test
    void dirtyLogShowsExactlyThePagesWrittenOnPackedRings() throws Exception {
        try (RuntimeRig rig = packedGuest(1, true); DirtyLog log = DirtyLog.covering(rig.memory)) {
            rig.guest.postRxBuffers();
            // Settle rx before logging, on an event rather than a sleep: one frame received means
            // rx took its buffers (disabling its notifications) and, the ring being kept full,
            // will not touch its event structure again.
            DeviceTraffic.receiveAndCheck(rig, 0, 1, null);
            rig.device.startDirtyLog(log);
            log.clear();
            List<RxFrame> received = new ArrayList<>();
            DeviceTraffic.receiveAndCheck(rig, 1, 40, received);
            assertEquals(40, DeviceTraffic.transmitAndCheck(rig, 0, 40));
            assertEquals(VirtioNetCtrl.OK, rig.guest.setPromiscuous(true));
            // Tx's device event suppression structure is written only when the worker turns tx
            // notifications off (as it wakes) or on (as it goes to sleep); busy-polling, it writes
            // neither. Seeing DESC before the clear would not make that write fall inside the log:
            // a kick the worker has not consumed (e.g. postRxBuffers' rx kick, made before its
            // first round) wakes it right after it wrote DESC, so it turns tx notifications off
            // before the log starts, and it may busy-poll through all of the traffic above. So
            // wait for DESC now: the worker turns tx notifications off before it takes a chain,
            // so they were off when it handed back the last one, and DESC seen after the guest got
            // that chain back is a later write (the worker going to sleep), made while logging.
            awaitDeviceEventFlags(rig, 1, PackedRing.RING_EVENT_FLAGS_DESC);
            // The control thread logs its event structure after publishing the ack and before
            // re-enabling (DESC, a release store); its notifications were off when it published
            // the ack, so DESC seen now means that mark is in.
            awaitDeviceEventFlags(rig, 2, PackedRing.RING_EVENT_FLAGS_DESC);
            // The datapath marks a write after making it, so the worker's mark of its DESC may
            // still be on its way; stopping the log restarts the datapath, after which every mark
            // made while logging is in the log.
            rig.device.stopDirtyLog();

            TreeSet<Long> expected = new TreeSet<>();
            for (int q = 0; q < 3; q++) {
                // a packed ring's used descriptors go into the descriptor ring (256 * 16 bytes: one page)
                expected.add(VhostNetBackendKernelTest.page(rig.layout.descAddress(q)));
            }
            // Notification toggling writes the device event suppression structure: tx and control
            // went to sleep after the traffic (awaited above); rx never ran dry (the guest reposts
            // every buffer it collects), so its structure was not written after the clear.
            expected.add(VhostNetBackendKernelTest.page(rig.layout.deviceAreaAddress(1)));
            expected.add(VhostNetBackendKernelTest.page(rig.layout.deviceAreaAddress(2)));
            expected.add(VhostNetBackendKernelTest.page(rig.guest.controlAckAddress()));
            VhostNetBackendKernelTest.addBufferPages(expected, received);
            TreeSet<Long> dirty = new TreeSet<>();
            for (long p : log.fetchAndClear()) {
                dirty.add(p);
            }
            assertEquals(VhostNetBackendKernelTest.hex(expected), VhostNetBackendKernelTest.hex(dirty),
                    "the driver event areas, avail data and tx buffers are never written");
        }
    }

    /**
     * Waits until virtqueue {@code q}'s device event suppression structure says {@code flags}
     * (read with acquire, so what the device did before that release store is visible). The device
     * writes it without telling anyone, so this polls the guest memory, yielding between reads,
     * up to a deadline.
     */
    private static void awaitDeviceEventFlags(RuntimeRig rig, int q, int flags) {
        MemorySegment event = rig.memory.slice(rig.layout.deviceAreaAddress(q), 4);
        long deadline = System.nanoTime() + RuntimeRig.EVENT_TIMEOUT_MILLIS * 1_000_000L;
        int now;
        while ((now = Short.toUnsignedInt((short) SHORT.getAcquire(event, 2L))) != flags) {
            assertTrue(System.nanoTime() < deadline, "virtqueue " + q + " device event flags " + now + ", not " + flags
                    + " within " + RuntimeRig.EVENT_TIMEOUT_MILLIS + " ms");
            Thread.onSpinWait();
            Thread.yield();
        }
    }

    @Test
    void liveSwitchBetweenTwoUserspaceBackendsOnPackedRingsLosesAndRepeatsNothing() throws Exception {
        try (RuntimeRig rig = packedGuest(2, true); UserspaceNetBackend other = UserspaceNetBackend.open(rig.tap)) {
            rig.setQueuePairs(2);
            BackendSwitching.Result r = BackendSwitching.streamWhileSwitching(rig, other, FRAMES, 20, 3);
            assertTrue(r.switches() >= 6, "switches: " + r.switches());
        }
    }

    @Test
    void userspaceOffersPackedRingsAndTheKernelBackendRefusesThemAtNegotiation() throws Exception {
        try (TapDevice tap = TapDevice.create("vffpk%d"); UserspaceNetBackend userspace = UserspaceNetBackend.open(tap)) {
            assertTrue(userspace.capabilities().packedRings());
            assertTrue(VirtioFeature.RING_PACKED.in(userspace.capabilities().supportedFeatures()));
        }
        // Kernel vhost-net's capabilities as VhostNetBackend builds them: VHOST_GET_FEATURES as the
        // bench's kernel answered (0x33d008000, no bit 34) without LOG_ALL and bit 27.
        long vhostFeatures = 0x33d008000L & ~(1L << 26) & ~(1L << 27) & VirtioFeature.knownMask();
        BackendCapabilities kernel = BackendCapabilities.of("kernel vhost-net", vhostFeatures);
        assertFalse(kernel.packedRings());
        VirtioNetOptions options = VirtioNetOptions.builder(FakeGuest.MAC)
                .features(VirtioFeature.RING_PACKED, VirtioFeature.MRG_RXBUF).build();
        FeatureNegotiationException e = assertThrows(FeatureNegotiationException.class,
                () -> new VirtioNetDevice(options, kernel, new NetDeviceListener() {}));
        assertTrue(e.getMessage().contains("VIRTIO_F_RING_PACKED(34)") && e.getMessage().contains("kernel vhost-net")
                && e.getMessage().contains("userspace"), e.getMessage());
    }
}

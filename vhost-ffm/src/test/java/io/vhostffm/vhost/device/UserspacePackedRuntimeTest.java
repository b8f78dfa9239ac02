package io.vhostffm.vhost.device;

import io.vhostffm.vhost.device.kernel.VhostNetBackend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.vhost.device.userspace.UserspaceNetBackend;
import io.vhostffm.vhost.device.BackendCapabilities;
import io.vhostffm.vhost.virtio.net.FeatureNegotiationException;
import io.vhostffm.vhost.virtio.net.NetDeviceListener;
import io.vhostffm.vhost.virtio.net.VirtioNetCtrl;
import io.vhostffm.vhost.virtio.net.VirtioNetDevice;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vhost.virtio.net.VirtioNetOptions;
import io.vhostffm.vring.PackedDriverQueue;
import io.vhostffm.vring.PackedRing;
import io.vhostffm.vring.QueueState;
import java.lang.foreign.Arena;
import java.util.Arrays;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

/**
 * Packed virtqueues (VIRTIO_F_RING_PACKED) on the userspace backend under {@link NetDeviceRuntime},
 * on the host with a real TAP: the split suite's TX and RX checks ({@link VhostNetBackendKernelTest}
 * helpers over vring's {@code DriverQueue}) with {@link PackedDriverQueue} as the guest, two queue
 * pairs, event idx on and off, the control queue packed too, and a live switch between two
 * userspace backends in the middle of both streams. The kernel backend refuses packed rings at
 * negotiation.
 */
class UserspacePackedRuntimeTest {
    private static final int FRAMES = 10_000;

    static GuestNet packedGuest(int pairs, boolean eventIdx) throws Exception {
        GuestNet guest = GuestNet.on(pairs, UserspaceNetBackend::open,
                eventIdx ? 0 : VirtioFeature.EVENT_IDX.mask(), VirtioFeature.RING_PACKED);
        try {
            assertTrue(guest.packed, "RING_PACKED negotiated");
            assertEquals(eventIdx, guest.eventIdx);
            for (int q = 0; q < guest.queues.length; q++) {
                assertTrue(guest.queues[q] instanceof PackedDriverQueue, "driver queue " + q + " is packed");
            }
            return guest;
        } catch (Throwable t) {
            guest.close();
            throw t;
        }
    }

    @ParameterizedTest(name = "event idx {0}")
    @ValueSource(booleans = {true, false})
    void transmitsTenThousandFramesOnPackedRings(boolean eventIdx) throws Exception {
        try (GuestNet guest = packedGuest(2, eventIdx); Arena arena = Arena.ofConfined()) {
            guest.setQueuePairs(2); // a packed control queue answers
            long start = System.nanoTime();
            assertEquals(FRAMES, VhostNetBackendKernelTest.transmitAndCheck(guest, 0, FRAMES, arena.allocate(4096)));
            long nanos = System.nanoTime() - start;
            System.out.printf("userspace backend TX, packed rings (2 pairs, event idx %s): %.0f frames/s%n",
                    eventIdx, FRAMES / (nanos / 1e9));
            assertFalse(guest.needsReset(), () -> "NEEDS_RESET: " + guest.device.model().lastError());
            for (QueueState s : guest.device.stopDatapath().dataQueues()) {
                assertTrue(s.geometry().packed());
                assertEquals(0, s.position().inuse());
            }
        }
    }

    @ParameterizedTest(name = "event idx {0}")
    @ValueSource(booleans = {true, false})
    void receivesTenThousandFramesInMergeableBuffersOnPackedRings(boolean eventIdx) throws Exception {
        try (GuestNet guest = packedGuest(2, eventIdx); Arena arena = Arena.ofConfined()) {
            guest.setQueuePairs(2);
            guest.postAllRxBuffers();
            long start = System.nanoTime();
            int[] perPair = VhostNetBackendKernelTest.receiveAndCheck(guest, 0, FRAMES, arena, null);
            long nanos = System.nanoTime() - start;
            System.out.printf("userspace backend RX, packed rings (256-byte mergeable buffers, event idx %s, pairs %s):"
                    + " %.0f frames/s%n", eventIdx, Arrays.toString(perPair), FRAMES / (nanos / 1e9));
            assertTrue(perPair[0] > 0 && perPair[1] > 0, Arrays.toString(perPair));
            assertFalse(guest.needsReset(), () -> "NEEDS_RESET: " + guest.device.model().lastError());
        }
    }

    @Test
    void controlQueueOnAPackedRingAnswersValidAndMalformedCommands() throws Exception {
        try (GuestNet guest = packedGuest(2, true)) {
            assertEquals(VirtioNetCtrl.OK, guest.control(VirtioNetCtrl.CLASS_RX, VirtioNetCtrl.RX_PROMISC, new byte[] {1}));
            assertEquals(VirtioNetCtrl.ERR, guest.control(VirtioNetCtrl.CLASS_MQ, VirtioNetCtrl.MQ_VQ_PAIRS_SET,
                    new byte[] {9, 0}), "more pairs than the device has");
            guest.setQueuePairs(2);
            guest.setQueuePairs(1);
            assertFalse(guest.needsReset());
        }
    }

    @Test
    void stopAndStartKeepPackedPositionsAndWrapCounters() throws Exception {
        try (GuestNet guest = packedGuest(1, true); Arena arena = Arena.ofConfined()) {
            // 300 frames of 1, 2-4 and 1 (indirect) descriptors: about 600 ring slots, so the tx
            // ring went round its 256 entries twice and both wrap counters flipped on the way.
            assertEquals(300, VhostNetBackendKernelTest.transmitAndCheck(guest, 0, 300, arena.allocate(4096)));
            DatapathState stopped = guest.device.stopDatapath();
            QueueState tx = stopped.dataQueues().get(1);
            PackedDriverQueue driver = (PackedDriverQueue) guest.tx(0);
            assertTrue(tx.geometry().packed());
            assertEquals(driver.nextAvail(), tx.position().lastAvailIdx(), "tx last avail index = the driver's next avail slot");
            assertEquals(driver.availWrapCounter(), tx.position().lastAvailWrapCounter(), "tx avail wrap counter");
            assertEquals(driver.nextUsed(), tx.position().usedIdx(), "tx used index = the driver's next used slot");
            assertEquals(driver.usedWrapCounter(), tx.position().usedWrapCounter(), "tx used wrap counter");
            assertEquals(tx.position().lastAvailIdx(), tx.position().usedIdx());
            assertEquals(tx.position().lastAvailWrapCounter(), tx.position().usedWrapCounter());
            guest.device.prestartDatapath(stopped.dataQueues());
            guest.device.quickstartDatapath(stopped);
            assertEquals(300, VhostNetBackendKernelTest.transmitAndCheck(guest, 300, 300, arena.allocate(4096)));
            guest.postAllRxBuffers();
            VhostNetBackendKernelTest.receiveAndCheck(guest, 0, 64, arena, null);
            // stopped while holding receive chains: they are given back (position steps back by their slots)
            DatapathState again = guest.device.stopDatapath();
            QueueState rx = again.dataQueues().get(0);
            assertEquals(0, rx.position().inuse(), "held receive chains are given back");
            assertEquals(rx.position().usedIdx(), rx.position().lastAvailIdx());
            assertEquals(rx.position().usedWrapCounter(), rx.position().lastAvailWrapCounter());
            guest.device.startDatapath(again);
            VhostNetBackendKernelTest.receiveAndCheck(guest, 64, 64, arena, null);
            assertFalse(guest.needsReset());
        }
    }

    @Test
    void dirtyLogShowsExactlyThePagesWrittenOnPackedRings() throws Exception {
        try (GuestNet guest = packedGuest(1, true); Arena arena = Arena.ofConfined();
             DirtyLog log = DirtyLog.covering(guest.memory)) {
            guest.postAllRxBuffers();
            // Settle before logging, on events rather than a sleep: one frame received means rx
            // took its buffers (disabling its notifications) and, the ring being full, will not
            // touch its event structure again; tx and control found their rings empty and
            // re-enabled notifications (DESC) before sleeping.
            VhostNetBackendKernelTest.receiveAndCheck(guest, 0, 1, arena, null);
            awaitDeviceEventFlags(guest, 1, PackedRing.RING_EVENT_FLAGS_DESC);
            awaitDeviceEventFlags(guest, 2, PackedRing.RING_EVENT_FLAGS_DESC);
            guest.device.startDirtyLog(log);
            log.clear();
            java.util.List<GuestNet.Received> received = new java.util.ArrayList<>();
            VhostNetBackendKernelTest.receiveAndCheck(guest, 1, 40, arena, received);
            // tx disables (and logs) its event structure when the kick wakes it, before any frame goes out
            assertEquals(40, VhostNetBackendKernelTest.transmitAndCheck(guest, 0, 40, arena.allocate(4096)));
            assertEquals(VirtioNetCtrl.OK, guest.control(VirtioNetCtrl.CLASS_RX, VirtioNetCtrl.RX_PROMISC, new byte[] {1}));
            // The control thread logs its event structure after publishing the ack and before
            // re-enabling (DESC, a release store): seeing DESC again means that mark is in.
            awaitDeviceEventFlags(guest, 2, PackedRing.RING_EVENT_FLAGS_DESC);

            java.util.TreeSet<String> expected = new java.util.TreeSet<>();
            for (int q = 0; q < 3; q++) {
                // a packed ring's used descriptors go into the descriptor ring (256 * 16 bytes: one page)
                expected.add(Long.toHexString(page(GuestNet.descAddress(q))));
            }
            // Notification toggling writes the device event suppression structure: tx and control
            // ran dry and re-enabled notifications before sleeping; rx never ran dry (the guest
            // reposts every buffer it collects), so its structure was not written after the clear.
            expected.add(Long.toHexString(page(GuestNet.usedAddress(1))));
            expected.add(Long.toHexString(page(GuestNet.usedAddress(2))));
            expected.add(Long.toHexString(page(guest.controlAckAddress())));
            for (GuestNet.Received r : received) {
                for (long[] b : r.buffers()) {
                    for (long p = page(b[0]); p <= page(b[0] + b[1] - 1); p += DirtyLog.PAGE_SIZE) {
                        expected.add(Long.toHexString(p));
                    }
                }
            }
            java.util.TreeSet<String> dirty = new java.util.TreeSet<>();
            for (long p : log.fetchAndClear()) {
                dirty.add(Long.toHexString(p));
            }
            assertEquals(expected, dirty, "the driver event areas, avail data and tx buffers are never written");
            guest.device.stopDirtyLog();
        }
    }

    private static long page(long address) {
        return address & -DirtyLog.PAGE_SIZE;
    }

    private static final java.lang.invoke.VarHandle SHORT = java.lang.foreign.ValueLayout.JAVA_SHORT.varHandle();

    /**
     * Waits until virtqueue {@code q}'s device event suppression structure says {@code flags}
     * (read with acquire, so what the device did before that release store is visible).
     */
    private static void awaitDeviceEventFlags(GuestNet guest, int q, int flags) throws InterruptedException {
        java.lang.foreign.MemorySegment event = guest.memory.slice(GuestNet.usedAddress(q), 4);
        long deadline = System.nanoTime() + 20_000_000_000L;
        int now;
        while ((now = Short.toUnsignedInt((short) SHORT.getAcquire(event, 2L))) != flags) {
            assertTrue(System.nanoTime() < deadline, "virtqueue " + q + " device event flags " + now + ", not " + flags
                    + " within 20 s");
            Thread.sleep(1);
        }
    }

    @Test
    void liveSwitchBetweenTwoUserspaceBackendsOnPackedRingsLosesAndRepeatsNothing() throws Exception {
        try (GuestNet guest = packedGuest(2, true); UserspaceNetBackend other = UserspaceNetBackend.open(guest.tap)) {
            guest.setQueuePairs(2);
            BackendSwitching.Result r = BackendSwitching.streamWhileSwitching(guest, other, FRAMES, 20, 3);
            System.out.printf("userspace <-> userspace, packed rings: %d live switches during %d frames each way"
                    + " (TX %.0f, RX %.0f frames/s), every frame exactly once%n", r.switches(), FRAMES,
                    r.txFramesPerSecond(), r.rxFramesPerSecond());
        }
    }

    @Test
    void userspaceOffersPackedRingsAndTheKernelBackendRefusesThemAtNegotiation() throws Exception {
        try (io.vhostffm.vhost.os.TapDevice tap = io.vhostffm.vhost.os.TapDevice.create("vffpk%d");
             UserspaceNetBackend userspace = UserspaceNetBackend.open(tap)) {
            assertTrue(userspace.capabilities().packedRings());
            assertTrue(VirtioFeature.RING_PACKED.in(userspace.capabilities().supportedFeatures()));
        }
        // Kernel vhost-net's capabilities as VhostNetBackend builds them: VHOST_GET_FEATURES as the
        // bench's kernel answered (0x33d008000, no bit 34) without LOG_ALL and bit 27.
        long vhostFeatures = 0x33d008000L & ~(1L << 26) & ~(1L << 27) & VirtioFeature.knownMask();
        BackendCapabilities kernel = BackendCapabilities.of("kernel vhost-net", vhostFeatures);
        assertFalse(kernel.packedRings());
        VirtioNetOptions options = VirtioNetOptions.builder(GuestNet.MAC)
                .features(VirtioFeature.RING_PACKED, VirtioFeature.MRG_RXBUF).build();
        FeatureNegotiationException e = assertThrows(FeatureNegotiationException.class,
                () -> new VirtioNetDevice(options, kernel, new NetDeviceListener() {}));
        assertTrue(e.getMessage().contains("VIRTIO_F_RING_PACKED(34)") && e.getMessage().contains("kernel vhost-net")
                && e.getMessage().contains("userspace"), e.getMessage());
    }
}

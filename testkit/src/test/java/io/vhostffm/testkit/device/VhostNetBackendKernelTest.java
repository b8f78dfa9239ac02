package io.vhostffm.testkit.device;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.testkit.GuestArea;
import io.vhostffm.testkit.IoctlRecorder;
import io.vhostffm.testkit.RxFrame;
import io.vhostffm.vhost.device.BackendTransfer;
import io.vhostffm.vhost.device.DatapathState;
import io.vhostffm.vhost.device.DirtyLog;
import io.vhostffm.vhost.device.NetBackend;
import io.vhostffm.vhost.device.NetBackendFactory;
import io.vhostffm.vhost.device.NetDeviceRuntime;
import io.vhostffm.vhost.device.kernel.VhostNetBackend;
import io.vhostffm.vhost.os.IoctlRequest;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.TapDevice;
import io.vhostffm.vhost.os.UnixSocket;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vhost.virtio.net.FeatureNegotiationException;
import io.vhostffm.vhost.virtio.net.VirtioNetCtrl;
import io.vhostffm.vhost.virtio.net.VirtioNetOptions;
import io.vhostffm.vring.QueueState;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The device on the real kernel vhost-net (in the VM of bin/kernel-bench, or wherever
 * /dev/vhost-net opens; elsewhere every test FAILS), driven by the testkit's {@link FakeGuest};
 * the network side is an AF_PACKET socket on the TAP.
 */
@Tag("kernel")
class VhostNetBackendKernelTest {
    private static final int FRAMES = 10_000;

    /** TX: 10,000 frames of 60..1514 bytes over two pairs, every chain shape (direct and indirect). */
    @Test
    void transmitsTenThousandFramesByteForByteInOrderPerQueue() throws Exception {
        try (RuntimeRig rig = RuntimeRig.kernel(2)) {
            rig.setQueuePairs(2);
            assertEquals(FRAMES, DeviceTraffic.transmitAndCheck(rig, 0, FRAMES));
            assertFalse(rig.guest.needsReset());
        }
    }

    /** RX: 10,000 frames sent into the TAP arrive in two rx queues with a correct header and mergeable buffers. */
    @Test
    void receivesTenThousandFramesInMergeableBuffers() throws Exception {
        try (RuntimeRig rig = RuntimeRig.kernel(2)) {
            rig.setQueuePairs(2);
            rig.guest.postRxBuffers();
            int[] perPair = DeviceTraffic.receiveAndCheck(rig, 0, FRAMES, null);
            assertTrue(perPair[0] > 0 && perPair[1] > 0, "the TAP spread the 16 flows over both queues: "
                    + Arrays.toString(perPair));
            assertFalse(rig.guest.needsReset());
        }
    }

    /**
     * The dirty log after RX, TX and a control command shows exactly the used ring pages, the
     * written rx buffer pages and the control ack page; no tx buffer, descriptor or avail page.
     */
    @Test
    void dirtyLogShowsExactlyThePagesWritten() throws Exception {
        try (RuntimeRig rig = RuntimeRig.kernel(1); DirtyLog log = DirtyLog.covering(rig.memory)) {
            rig.guest.postRxBuffers();
            rig.device.startDirtyLog(log);
            // Before any traffic only avail_event writes can be logged: vhost may still be answering
            // the rx kick above (rx used ring), and the Java control queue re-enables notifications
            // under EVENT_IDX whenever it goes idle (control used ring).
            TreeSet<Long> dirty = new TreeSet<>();
            for (long p : log.fetchAndClear()) {
                dirty.add(p);
            }
            assertTrue(Set.of(page(rig.layout.deviceAreaAddress(0)), page(rig.layout.deviceAreaAddress(2)))
                    .containsAll(dirty), "before any traffic: " + hex(dirty));
            List<RxFrame> received = new ArrayList<>();
            DeviceTraffic.receiveAndCheck(rig, 0, 40, received);
            assertEquals(40, DeviceTraffic.transmitAndCheck(rig, 0, 40));
            assertEquals(VirtioNetCtrl.OK, rig.guest.setPromiscuous(true));

            TreeSet<Long> expected = expectedPages(rig, received);
            for (long p : log.fetchAndClear()) {
                dirty.add(p);
            }
            assertEquals(hex(expected), hex(dirty));
            rig.device.stopDirtyLog();
            // what vhost logged between the fetch above and the stop (its avail_event updates on a
            // used ring page) was still logging time; from here on nothing may be logged
            log.fetchAndClear();
            DeviceTraffic.receiveAndCheck(rig, 40, 8, null);
            assertEquals(0, log.fetchAndClear().length, "nothing is logged after stopDirtyLog");
        }
    }

    /** The used ring pages of rx, tx and control, the control ack page and every receive buffer page written. */
    static TreeSet<Long> expectedPages(RuntimeRig rig, List<RxFrame> received) {
        TreeSet<Long> expected = new TreeSet<>();
        expected.add(page(rig.layout.deviceAreaAddress(0)));  // rx used ring
        expected.add(page(rig.layout.deviceAreaAddress(1)));  // tx used ring
        expected.add(page(rig.layout.deviceAreaAddress(2)));  // control used ring
        expected.add(page(rig.guest.controlAckAddress()));
        addBufferPages(expected, received);
        return expected;
    }

    static void addBufferPages(TreeSet<Long> pages, List<RxFrame> received) {
        for (RxFrame r : received) {
            for (GuestArea b : r.buffers()) {
                for (long p = page(b.address()); p <= page(b.end() - 1); p += DirtyLog.PAGE_SIZE) {
                    pages.add(p);
                }
            }
        }
    }

    static long page(long address) {
        return address & -DirtyLog.PAGE_SIZE;
    }

    static List<String> hex(TreeSet<Long> pages) {
        return pages.stream().map(Long::toHexString).toList();
    }

    /**
     * Stop (NET_SET_BACKEND(-1), GET_VRING_BASE), then an early-migration style prestart and a
     * quickstart that issues only SET_VRING_BASE and NET_SET_BACKEND; traffic goes on with
     * nothing lost or doubled.
     */
    @Test
    void stopPrestartQuickstartContinuesTheStream() throws Exception {
        try (RuntimeRig rig = RuntimeRig.kernel(2)) {
            rig.setQueuePairs(2);
            assertEquals(200, DeviceTraffic.transmitAndCheck(rig, 0, 200));

            DatapathState stopped = rig.device.stopDatapath();
            assertFalse(rig.device.isDatapathRunning());
            assertEquals(4, stopped.dataQueues().size());
            for (int q = 0; q < 4; q++) {
                QueueState s = stopped.dataQueues().get(q);
                int expected = q % 2 == 1 ? 100 : 0; // 100 frames per tx queue, nothing received
                assertEquals(expected, s.position().lastAvailIdx(), "virtqueue " + q + " last_avail_idx");
                assertEquals(expected, s.position().usedIdx(), "virtqueue " + q + " used idx from the ring");
                assertEquals(0, s.position().inuse());
            }
            assertEquals(4, stopped.controlQueueIndex());
            assertEquals(1, stopped.controlQueue().position().lastAvailIdx(), "one control command so far");

            VhostNetBackend kernel = (VhostNetBackend) rig.backend;
            IoctlRecorder recorder = new IoctlRecorder();
            recorder.attach(kernel, 2);
            rig.device.prestartDatapath(stopped.dataQueues());
            List<IoctlRequest> perQueue = List.of(IoctlRequest.VHOST_SET_VRING_NUM, IoctlRequest.VHOST_SET_VRING_BASE,
                    IoctlRequest.VHOST_SET_VRING_ADDR, IoctlRequest.VHOST_SET_VRING_KICK, IoctlRequest.VHOST_SET_VRING_CALL,
                    IoctlRequest.VHOST_SET_VRING_ERR);
            List<IoctlRequest> onePair = new ArrayList<>(List.of(IoctlRequest.VHOST_SET_FEATURES,
                    IoctlRequest.VHOST_SET_MEM_TABLE));
            onePair.addAll(perQueue);
            onePair.addAll(perQueue);
            List<IoctlRequest> prestart = new ArrayList<>(onePair);
            prestart.addAll(onePair);
            assertEquals(prestart, requests(recorder.take()), "prestart: QEMU's order, no backend bound");
            assertFalse(rig.device.isDatapathRunning());

            rig.device.quickstartDatapath(stopped);
            assertEquals(List.of(IoctlRequest.VHOST_SET_VRING_BASE, IoctlRequest.VHOST_SET_VRING_BASE,
                    IoctlRequest.VHOST_SET_VRING_BASE, IoctlRequest.VHOST_SET_VRING_BASE,
                    IoctlRequest.VHOST_NET_SET_BACKEND, IoctlRequest.VHOST_NET_SET_BACKEND,
                    IoctlRequest.VHOST_NET_SET_BACKEND, IoctlRequest.VHOST_NET_SET_BACKEND), requests(recorder.take()),
                    "quickstart: only SET_VRING_BASE and NET_SET_BACKEND");
            kernel.setIoctlObserver(null);
            assertTrue(rig.device.isDatapathRunning());

            assertEquals(200, DeviceTraffic.transmitAndCheck(rig, 200, 200));
            rig.guest.postRxBuffers();
            DeviceTraffic.receiveAndCheck(rig, 0, 64, null);
            // the control queue resumed where it stood
            assertEquals(VirtioNetCtrl.OK, rig.guest.setPromiscuous(true));
            assertFalse(rig.guest.needsReset());
        }
    }

    private static List<IoctlRequest> requests(List<IoctlRecorder.Call> calls) {
        return calls.stream().map(IoctlRecorder.Call::request).toList();
    }

    /**
     * The formal backend hand-over: the TAP's queue fds go through SCM_RIGHTS, a second kernel
     * backend is rebuilt from the received copies ({@link VhostNetBackend#fromTransfer}), and the
     * device switches to it and back in the middle of TX and RX streams: every frame exactly once.
     */
    @Test
    void switchesToABackendRebuiltFromTransferredFdsMidStream() throws Exception {
        try (RuntimeRig rig = RuntimeRig.kernel(2); Arena arena = Arena.ofConfined();
             UnixSocket.Pair channel = UnixSocket.pair()) {
            rig.setQueuePairs(2);
            rig.guest.postRxBuffers();
            assertEquals(100, DeviceTraffic.transmitAndCheck(rig, 0, 100));
            DeviceTraffic.receiveAndCheck(rig, 0, 100, null);

            BackendTransfer sent = rig.backend.transfer();
            assertEquals(BackendTransfer.KIND_TAP, sent.kind());
            assertEquals(rig.tap.name(), sent.name());
            assertEquals(2, sent.fds().size());
            channel.first().send(sent.name().getBytes(StandardCharsets.US_ASCII), sent.fds());
            var received = channel.second().receive(arena.allocate(64), 8);
            assertEquals(2, received.fds().size());
            NetBackendFactory factory = VhostNetBackend::fromTransfer;
            try (NetBackend rebuilt = factory.rebuild(sent.withReceivedFds(received.fds()))) {
                assertFalse(rebuilt.isRunning());
                NetBackend[] previous = new NetBackend[1];
                // switch while a TX round is in flight
                assertEquals(200, DeviceTraffic.transmitAndCheck(rig, 100, 200,
                        () -> previous[0] = rig.device.switchBackend(rebuilt)));
                assertTrue(previous[0] == rig.backend && !rig.backend.isRunning() && rebuilt.isRunning());
                assertTrue(rig.device.backend() == rebuilt);
                // and back while an RX round is in flight
                DeviceTraffic.receiveAndCheck(rig, 100, 200, null, () -> rig.device.switchBackend(rig.backend));
                assertTrue(rig.device.backend() == rig.backend && rig.backend.isRunning() && !rebuilt.isRunning());
                assertEquals(64, DeviceTraffic.transmitAndCheck(rig, 300, 64));
                DeviceTraffic.receiveAndCheck(rig, 300, 64, null);
            }
            assertFalse(rig.guest.needsReset());
            assertEquals(VirtioNetCtrl.OK, rig.guest.setPromiscuous(true));
        }
    }

    /** VQ_PAIRS_SET 1 unbinds pair 1 and detaches its TAP queue: every received frame lands in pair 0. */
    @Test
    void queuePairsSetTurnsPairsOnAndOff() throws Exception {
        try (RuntimeRig rig = RuntimeRig.kernel(2)) {
            queuePairsSetTurnsPairsOnAndOff(rig);
        }
    }

    /** Receives on one pair (after DRIVER_OK), on two (after VQ_PAIRS_SET 2), then on one again. */
    static void queuePairsSetTurnsPairsOnAndOff(RuntimeRig rig) throws Exception {
        rig.guest.postRxBuffers();
        int[] onePair = DeviceTraffic.receiveAndCheck(rig, 0, 96, null);
        assertEquals(96, onePair[0], "after DRIVER_OK one pair is active (no VQ_PAIRS_SET yet)");
        rig.setQueuePairs(2);
        int[] twoPairs = DeviceTraffic.receiveAndCheck(rig, 96, 96, null);
        assertTrue(twoPairs[0] > 0 && twoPairs[1] > 0, Arrays.toString(twoPairs));
        rig.setQueuePairs(1);
        int[] backToOne = DeviceTraffic.receiveAndCheck(rig, 192, 96, null);
        assertEquals(96, backToOne[0], Arrays.toString(backToOne));
    }

    /**
     * A transmit descriptor in the hole of guest memory: vhost signals the ring error eventfd, the
     * device goes to NEEDS_RESET with its datapath stopped; another device carries on.
     */
    @Test
    void badGuestInputStopsOnlyThatDevice() throws Exception {
        try (RuntimeRig bad = RuntimeRig.kernel(1); RuntimeRig good = RuntimeRig.kernel(1)) {
            String error = sendIntoTheHole(bad);
            assertTrue(error.contains("virtqueue 1") && error.contains("VHOST_SET_VRING_ERR"), error);
            // the kernel backend stops on the thread that reported, before the config interrupt
            assertFalse(bad.device.isDatapathRunning());
            assertEquals(30, DeviceTraffic.transmitAndCheck(good, 0, 30));
            assertFalse(good.guest.needsReset());
        }
    }

    /**
     * Makes a transmit chain whose buffer lies in the hole between the guest's memory regions
     * available, kicks, and waits for NEEDS_RESET.
     *
     * @return the device's last error
     */
    static String sendIntoTheHole(RuntimeRig rig) throws Exception {
        long inHole = rig.layout.hole().address() + rig.layout.hole().size() / 2;
        int head = rig.guest.tx(0).add(new long[] {inHole}, new int[] {100}, 1, 0);
        assertTrue(head >= 0);
        rig.guest.transport().kick(1);
        rig.awaitNeedsReset();
        return rig.device.model().lastError().orElseThrow();
    }

    /** A control chain without a writable ack byte is bad guest input: NEEDS_RESET, nothing else breaks. */
    @Test
    void aControlChainWithoutAckByteNeedsReset() throws Exception {
        try (RuntimeRig rig = RuntimeRig.kernel(1)) {
            long header = rig.layout.controlBuffers();
            rig.memory.slice(header, 3).copyFrom(MemorySegment.ofArray(new byte[] {0, 0, 1}));
            rig.guest.controlQueue().add(new long[] {header}, new int[] {3}, 1, 0);
            rig.guest.transport().kick(rig.controlQueue());
            rig.awaitNeedsReset();
            assertTrue(rig.device.model().lastError().orElseThrow().contains("no device-writable byte"));
            assertFalse(rig.device.isDatapathRunning());
        }
    }

    /**
     * GUEST_OFFLOADS_SET reaches the TAP (TUNSETOFFLOAD: the command is OK only if the ioctl
     * succeeded), an offload that was not negotiated is refused, and reception goes on.
     */
    @Test
    void guestOffloadsSetReachesTheTap() throws Exception {
        try (RuntimeRig rig = RuntimeRig.kernel(1, VirtioFeature.CTRL_GUEST_OFFLOADS, VirtioFeature.GUEST_CSUM,
                VirtioFeature.GUEST_TSO4)) {
            long csumTso4 = VirtioFeature.maskOf(VirtioFeature.GUEST_CSUM, VirtioFeature.GUEST_TSO4);
            assertEquals(csumTso4, rig.device.model().netState().guestOffloads(), "negotiated offloads at FEATURES_OK");
            assertEquals(VirtioNetCtrl.OK, rig.guest.setGuestOffloads(0),
                    () -> "offloads off: " + rig.device.model().lastError());
            assertEquals(0, rig.device.model().netState().guestOffloads());
            assertEquals(VirtioNetCtrl.OK, rig.guest.setGuestOffloads(csumTso4),
                    () -> "offloads on: " + rig.device.model().lastError());
            long tso6 = VirtioFeature.GUEST_TSO6.mask();
            assertEquals(VirtioNetCtrl.ERR, rig.guest.setGuestOffloads(csumTso4 | tso6), "GUEST_TSO6 was not negotiated");
            assertEquals(csumTso4, rig.device.model().netState().guestOffloads());
            rig.guest.postRxBuffers();
            DeviceTraffic.receiveAndCheck(rig, 0, 64, null);
        }
    }

    /** Packed rings are refused before any ioctl; the kernel backend never offers them. */
    @Test
    void packedRingsAreRefused() throws Exception {
        try (TapDevice tap = TapDevice.create("vffpk%d"); VhostNetBackend kernel = VhostNetBackend.open(tap)) {
            assertFalse(kernel.capabilities().packedRings());
            assertFalse(VirtioFeature.RING_PACKED.in(kernel.capabilities().supportedFeatures()));
            var options = VirtioNetOptions.builder(FakeGuest.MAC).features(VirtioFeature.RING_PACKED).build();
            try (var memory = MemfdGuestMemory.create("p", List.of(new MemfdGuestMemory.RegionSpec(0, 0x10000)))) {
                var e = assertThrows(FeatureNegotiationException.class, () -> new NetDeviceRuntime(options, memory, kernel));
                assertTrue(e.getMessage().contains("RING_PACKED"), e.getMessage());
            }
        }
    }
}

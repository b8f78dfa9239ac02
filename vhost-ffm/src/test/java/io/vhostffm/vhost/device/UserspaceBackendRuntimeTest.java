package io.vhostffm.vhost.device;


import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.vhost.device.userspace.UserspaceNetBackend;
import io.vhostffm.vhost.virtio.net.VirtioNetCtrl;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vring.QueueGeometry;
import io.vhostffm.vring.QueueState;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;

/**
 * The userspace datapath as the device's backend ({@link NetDeviceRuntime} with
 * {@link UserspaceNetBackend}) on the host: the same suite the kernel backend passes in the VM
 * (devkernel's {@link VhostNetBackendKernelTest} helpers), plus a live switch between two
 * userspace backends on the same TAP in the middle of both streams.
 */
class UserspaceBackendRuntimeTest {
    private static final int FRAMES = 10_000;

    static GuestNet userspace(int pairs) throws Exception {
        return GuestNet.on(pairs, UserspaceNetBackend::open);
    }

    @Test
    void transmitsTenThousandFramesByteForByteInOrderPerQueue() throws Exception {
        try (GuestNet guest = userspace(2); Arena arena = Arena.ofConfined()) {
            guest.setQueuePairs(2);
            long start = System.nanoTime();
            assertEquals(FRAMES, VhostNetBackendKernelTest.transmitAndCheck(guest, 0, FRAMES, arena.allocate(4096)));
            long nanos = System.nanoTime() - start;
            System.out.printf("userspace backend TX (runtime, 2 pairs, rounds of 32): %.0f frames/s%n", FRAMES / (nanos / 1e9));
            assertFalse(guest.needsReset());
        }
    }

    @Test
    void receivesTenThousandFramesInMergeableBuffers() throws Exception {
        try (GuestNet guest = userspace(2); Arena arena = Arena.ofConfined()) {
            guest.setQueuePairs(2);
            guest.postAllRxBuffers();
            long start = System.nanoTime();
            int[] perPair = VhostNetBackendKernelTest.receiveAndCheck(guest, 0, FRAMES, arena, null);
            long nanos = System.nanoTime() - start;
            System.out.printf("userspace backend RX (runtime, 256-byte mergeable buffers, pairs %s): %.0f frames/s%n",
                    Arrays.toString(perPair), FRAMES / (nanos / 1e9));
            assertTrue(perPair[0] > 0 && perPair[1] > 0, Arrays.toString(perPair));
            assertFalse(guest.needsReset());
        }
    }

    @Test
    void dirtyLogShowsExactlyThePagesWritten() throws Exception {
        try (GuestNet guest = userspace(1); Arena arena = Arena.ofConfined();
             DirtyLog log = DirtyLog.covering(guest.memory)) {
            guest.postAllRxBuffers();
            guest.device.startDirtyLog(log);
            // The datapath may still update avail_event of the queues it found empty: settle, then clear.
            Thread.sleep(50);
            log.clear();
            List<GuestNet.Received> received = new ArrayList<>();
            VhostNetBackendKernelTest.receiveAndCheck(guest, 0, 40, arena, received);
            assertEquals(40, VhostNetBackendKernelTest.transmitAndCheck(guest, 0, 40, arena.allocate(4096)));
            assertEquals(VirtioNetCtrl.OK, guest.control(VirtioNetCtrl.CLASS_RX, VirtioNetCtrl.RX_PROMISC, new byte[] {1}));

            TreeSet<Long> expected = new TreeSet<>();
            expected.add(page(GuestNet.usedAddress(0)));  // rx used ring
            expected.add(page(GuestNet.usedAddress(1)));  // tx used ring
            expected.add(page(GuestNet.usedAddress(2)));  // control used ring
            expected.add(page(guest.controlAckAddress()));
            for (GuestNet.Received r : received) {
                for (long[] b : r.buffers()) {
                    for (long p = page(b[0]); p <= page(b[0] + b[1] - 1); p += DirtyLog.PAGE_SIZE) {
                        expected.add(p);
                    }
                }
            }
            TreeSet<Long> dirty = new TreeSet<>();
            for (long p : log.fetchAndClear()) {
                dirty.add(p);
            }
            assertEquals(hex(expected), hex(dirty));
            guest.device.stopDirtyLog();
            // what the datapath logged between the fetch above and the stop (avail_event updates
            // on a used ring page) was still logging time; from here on nothing may be logged
            log.fetchAndClear();
            VhostNetBackendKernelTest.receiveAndCheck(guest, 40, 8, arena, null);
            assertEquals(0, log.fetchAndClear().length, "nothing is logged after stopDirtyLog");
        }
    }

    @Test
    void stopAndStartContinueTheStream() throws Exception {
        try (GuestNet guest = userspace(2); Arena arena = Arena.ofConfined()) {
            guest.setQueuePairs(2);
            assertEquals(200, VhostNetBackendKernelTest.transmitAndCheck(guest, 0, 200, arena.allocate(4096)));
            DatapathState stopped = guest.device.stopDatapath();
            assertFalse(guest.device.isDatapathRunning());
            for (int q = 0; q < 4; q++) {
                QueueState s = stopped.dataQueues().get(q);
                int expected = q % 2 == 1 ? 100 : 0;
                assertEquals(expected, s.position().lastAvailIdx(), "virtqueue " + q + " last_avail_idx");
                assertEquals(expected, s.position().usedIdx(), "virtqueue " + q + " used idx");
                assertEquals(0, s.position().inuse());
            }
            guest.device.prestartDatapath(stopped.dataQueues());
            assertFalse(guest.device.isDatapathRunning());
            guest.device.quickstartDatapath(stopped);
            assertTrue(guest.device.isDatapathRunning());
            assertEquals(200, VhostNetBackendKernelTest.transmitAndCheck(guest, 200, 200, arena.allocate(4096)));
            guest.postAllRxBuffers();
            VhostNetBackendKernelTest.receiveAndCheck(guest, 0, 64, arena, null);
            // Stopped while holding receive chains (gathered, not used): they are given back.
            DatapathState again = guest.device.stopDatapath();
            QueueState rx0 = again.dataQueues().get(0);
            assertEquals(0, rx0.position().inuse(), "held receive chains are given back");
            assertEquals(rx0.position().usedIdx(), rx0.position().lastAvailIdx());
            guest.device.startDatapath(again);
            VhostNetBackendKernelTest.receiveAndCheck(guest, 64, 64, arena, null);
            assertFalse(guest.needsReset());
        }
    }

    @Test
    void queuePairsSetTurnsPairsOnAndOff() throws Exception {
        try (GuestNet guest = userspace(2); Arena arena = Arena.ofConfined()) {
            guest.postAllRxBuffers();
            int[] onePair = VhostNetBackendKernelTest.receiveAndCheck(guest, 0, 96, arena, null);
            assertEquals(96, onePair[0], "after DRIVER_OK one pair is active (no VQ_PAIRS_SET yet)");
            guest.setQueuePairs(2);
            int[] twoPairs = VhostNetBackendKernelTest.receiveAndCheck(guest, 96, 96, arena, null);
            assertTrue(twoPairs[0] > 0 && twoPairs[1] > 0, Arrays.toString(twoPairs));
            guest.setQueuePairs(1);
            int[] backToOne = VhostNetBackendKernelTest.receiveAndCheck(guest, 192, 96, arena, null);
            assertEquals(96, backToOne[0], Arrays.toString(backToOne));
        }
    }

    @Test
    void badGuestInputStopsOnlyThatDevice() throws Exception {
        try (GuestNet bad = userspace(1); GuestNet good = userspace(1); Arena arena = Arena.ofConfined()) {
            int head = bad.tx(0).add(new long[] {0x2000_0000L}, new int[] {100}, 1, 0); // in the hole
            assertTrue(head >= 0);
            bad.device.kick(1).signal();
            long deadline = System.nanoTime() + 20_000_000_000L;
            while (!bad.needsReset()) {
                assertTrue(System.nanoTime() < deadline, "no NEEDS_RESET within 20 s");
                Thread.sleep(10);
            }
            String error = bad.device.model().lastError().orElseThrow();
            assertTrue(error.contains("virtqueue 1") && error.contains("buffer not inside guest memory")
                    && error.contains("0x20000000"), error);
            deadline = System.nanoTime() + 5_000_000_000L;
            while (bad.device.isDatapathRunning()) {
                assertTrue(System.nanoTime() < deadline, "datapath still running");
                Thread.sleep(10);
            }
            assertTrue(bad.device.configInterrupt().poll(0), "the driver got a config interrupt");
            assertEquals(30, VhostNetBackendKernelTest.transmitAndCheck(good, 0, 30, arena.allocate(4096)));
            assertFalse(good.needsReset());
        }
    }

    @Test
    void offersWhatItCarriesAndRefusesRingStatesThatDisagreeWithTheAckedFormat() throws Exception {
        try (io.vhostffm.vhost.os.TapDevice tap = io.vhostffm.vhost.os.TapDevice.create("vffup%d");
             UserspaceNetBackend backend = UserspaceNetBackend.open(tap)) {
            long features = backend.capabilities().supportedFeatures();
            for (VirtioFeature f : List.of(VirtioFeature.VERSION_1, VirtioFeature.MRG_RXBUF,
                    VirtioFeature.EVENT_IDX, VirtioFeature.INDIRECT_DESC, VirtioFeature.GUEST_CSUM,
                    VirtioFeature.CSUM)) {
                assertTrue(f.in(features), f + " in " + VirtioFeature.describe(features));
            }
            assertFalse(VirtioFeature.RSS.in(features), "no steering in the userspace datapath");
            assertTrue(backend.capabilities().packedRings(), "packed rings run here (UserspacePackedRuntimeTest)");
            try (var memory = io.vhostffm.vhost.os.MemfdGuestMemory.create("p", List.of(
                    new io.vhostffm.vhost.os.MemfdGuestMemory.RegionSpec(0, 0x10000)));
                 var kick = io.vhostffm.vhost.os.EventFd.create(); var call = io.vhostffm.vhost.os.EventFd.create()) {
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
        try (GuestNet guest = userspace(2); UserspaceNetBackend other = UserspaceNetBackend.open(guest.tap)) {
            guest.setQueuePairs(2);
            BackendSwitching.Result r = BackendSwitching.streamWhileSwitching(guest, other, FRAMES, 20, 3);
            System.out.printf("userspace <-> userspace: %d live switches during %d frames each way (TX %.0f, RX %.0f"
                    + " frames/s), every frame exactly once%n", r.switches(), FRAMES, r.txFramesPerSecond(),
                    r.rxFramesPerSecond());
        }
    }

    private static long page(long address) {
        return address & -DirtyLog.PAGE_SIZE;
    }

    private static List<String> hex(TreeSet<Long> pages) {
        return pages.stream().map(Long::toHexString).toList();
    }
}

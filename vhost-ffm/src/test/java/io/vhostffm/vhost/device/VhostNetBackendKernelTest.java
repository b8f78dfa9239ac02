package io.vhostffm.vhost.device;

import io.vhostffm.vhost.device.kernel.VhostNetBackend;


import io.vhostffm.vhost.virtio.VirtioFeature;

import static io.vhostffm.vhost.device.GuestNet.HEADER;
import static io.vhostffm.vhost.device.GuestNet.TX_SLOTS;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.vhost.os.IoctlObserver;
import io.vhostffm.vhost.os.IoctlRequest;
import io.vhostffm.vhost.virtio.net.VirtioNetCtrl;
import io.vhostffm.vring.QueueState;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The device on the real kernel vhost-net (in the VM of bin/kernel-bench, or wherever
 * /dev/vhost-net opens; elsewhere every test FAILS). The guest is vring's driver side over memfd
 * memory; the network side is an AF_PACKET socket on the TAP. Frames per second are printed as
 * seen (under the bench's TCG emulation they are about a hundred times below hardware).
 */
@Tag("kernel")
class VhostNetBackendKernelTest {
    private static final int FRAMES = 10_000;
    private static final int BATCH = 32;
    private static final long ROUND_TIMEOUT_NANOS = 20_000_000_000L;

    /** TX: 10,000 frames of 60..1514 bytes over two pairs, single, multi-descriptor and indirect chains. */
    @Test
    void transmitsTenThousandFramesByteForByteInOrderPerQueue() throws Exception {
        try (GuestNet guest = GuestNet.kernel(2); Arena arena = Arena.ofConfined()) {
            guest.setQueuePairs(2);
            MemorySegment buffer = arena.allocate(4096);
            long start = System.nanoTime();
            int sent = transmitAndCheck(guest, 0, FRAMES, buffer);
            long nanos = System.nanoTime() - start;
            assertEquals(FRAMES, sent);
            System.out.printf("kernel vhost-net TX: %d frames (60..1514 bytes, 2 queue pairs) in %.3f s: %.0f frames/s%n",
                    FRAMES, nanos / 1e9, FRAMES / (nanos / 1e9));
            assertFalse(guest.needsReset());
        }
    }

    /**
     * Sends frames {@code first .. first+count-1} alternately on pair 0 and 1 in rounds of
     * {@value #BATCH}; checks each arrives on the network side byte for byte, exactly once, in
     * order per pair, and that the guest gets every chain back.
     */
    static int transmitAndCheck(GuestNet guest, int first, int count, MemorySegment buffer) throws Exception {
        return transmitAndCheck(guest, first, count, buffer, null);
    }

    /** A step run once, after the first round is made available and before it is checked. */
    interface MidStream {
        void run() throws Exception;
    }

    static int transmitAndCheck(GuestNet guest, int first, int count, MemorySegment buffer, MidStream midStream)
            throws Exception {
        int pairs = guest.pairs;
        int[] lastSeqPerPair = new int[pairs];
        Arrays.fill(lastSeqPerPair, -1);
        boolean[] seen = new boolean[first + count];
        int[] ids = new int[GuestNet.QUEUE_SIZE];
        int[] lens = new int[GuestNet.QUEUE_SIZE];
        int received = 0;
        for (int roundStart = first; roundStart < first + count; roundStart += BATCH) {
            int roundEnd = Math.min(first + count, roundStart + BATCH);
            int[] slotPerPair = new int[pairs];
            for (int seq = roundStart; seq < roundEnd; seq++) {
                int pair = seq % pairs;
                int slot = slotPerPair[pair]++ % TX_SLOTS;
                int head = guest.transmit(pair, slot, GuestNet.txFrame(seq, pair, GuestNet.frameLength(seq)), seq % 3);
                assertTrue(head >= 0, "tx ring has room");
            }
            for (int p = 0; p < pairs; p++) {
                guest.kickIfNeeded(guest.tx(p), 2 * p + 1);
            }
            if (midStream != null && roundStart == first) {
                midStream.run();
            }
            for (int k = roundStart; k < roundEnd; k++) {
                byte[] frame = guest.receiveFromNetwork(buffer, 20_000);
                if (frame == null) {
                    throw new AssertionError("frame missing on the network side in round " + roundStart + "; status "
                            + guest.status() + ", last error " + guest.device.model().lastError());
                }
                int seq = (frame[14] & 0xff) << 24 | (frame[15] & 0xff) << 16 | (frame[16] & 0xff) << 8 | (frame[17] & 0xff);
                int pair = frame[11];
                if (pair < 0 || pair >= pairs) {
                    throw new AssertionError("a frame of our ethertype that is not one of ours (pair byte " + pair
                            + ", " + frame.length + " bytes) in round " + roundStart + ": "
                            + java.util.HexFormat.ofDelimiter(" ").formatHex(frame, 0, Math.min(64, frame.length)));
                }
                assertTrue(seq >= roundStart && seq < roundEnd, "frame " + seq + " outside round " + roundStart);
                assertFalse(seen[seq], "frame " + seq + " arrived twice");
                seen[seq] = true;
                assertTrue(seq > lastSeqPerPair[pair], "pair " + pair + ": frame " + seq + " after " + lastSeqPerPair[pair]);
                lastSeqPerPair[pair] = seq;
                assertArrayEquals(GuestNet.txFrame(seq, pair, GuestNet.frameLength(seq)), frame, "frame " + seq);
                received++;
            }
            // every chain comes back used (tx used length is 0 in vhost-net)
            int outstanding = roundEnd - roundStart;
            long deadline = System.nanoTime() + ROUND_TIMEOUT_NANOS;
            while (outstanding > 0) {
                for (int p = 0; p < pairs; p++) {
                    outstanding -= guest.tx(p).collectUsed(ids, lens, GuestNet.QUEUE_SIZE);
                }
                if (outstanding > 0) {
                    assertTrue(System.nanoTime() < deadline, outstanding + " tx chains not returned");
                    guest.waitForCall(20, guest.txQueueIndices());
                }
            }
            assertEquals(0, outstanding);
        }
        return received;
    }

    /** RX: 10,000 frames sent into the TAP arrive in two rx queues with a correct header and mergeable buffers. */
    @Test
    void receivesTenThousandFramesInMergeableBuffers() throws Exception {
        try (GuestNet guest = GuestNet.kernel(2); Arena arena = Arena.ofConfined()) {
            guest.setQueuePairs(2);
            guest.postAllRxBuffers();
            long start = System.nanoTime();
            int[] perPair = receiveAndCheck(guest, 0, FRAMES, arena, null);
            long nanos = System.nanoTime() - start;
            System.out.printf("kernel vhost-net RX: %d frames (60..1514 bytes, mergeable 256-byte buffers, pairs %s) in %.3f s: %.0f frames/s%n",
                    FRAMES, Arrays.toString(perPair), nanos / 1e9, FRAMES / (nanos / 1e9));
            assertTrue(perPair[0] > 0 && perPair[1] > 0, "the TAP spread the 16 flows over both queues: " + Arrays.toString(perPair));
            assertFalse(guest.needsReset());
        }
    }

    /**
     * Sends frames into the TAP in rounds; checks each arrives exactly once, byte for byte, in
     * order per flow, with a plain virtio_net_hdr_v1 and num_buffers = the buffers it spans.
     *
     * @return frames per pair
     */
    static int[] receiveAndCheck(GuestNet guest, int first, int count, Arena arena, List<GuestNet.Received> all)
            throws Exception {
        return receiveAndCheck(guest, first, count, arena, all, null);
    }

    static int[] receiveAndCheck(GuestNet guest, int first, int count, Arena arena, List<GuestNet.Received> all,
            MidStream midStream) throws Exception {
        int flows = 16;
        int[] lastSeqPerFlow = new int[flows];
        Arrays.fill(lastSeqPerFlow, -1);
        boolean[] seen = new boolean[first + count];
        int[] perPair = new int[guest.pairs];
        MemorySegment out = arena.allocate(2048);
        GuestNet.RxAssembler assembler = guest.new RxAssembler();
        List<GuestNet.Received> frames = new ArrayList<>();
        for (int roundStart = first; roundStart < first + count; roundStart += BATCH) {
            int roundEnd = Math.min(first + count, roundStart + BATCH);
            for (int seq = roundStart; seq < roundEnd; seq++) {
                byte[] f = GuestNet.rxFrame(seq, seq % flows, GuestNet.frameLength(seq));
                MemorySegment.copy(MemorySegment.ofArray(f), 0, out, 0, f.length);
                guest.network.send(out.asSlice(0, f.length));
            }
            if (midStream != null && roundStart == first) {
                midStream.run();
            }
            int ours = 0;
            long deadline = System.nanoTime() + ROUND_TIMEOUT_NANOS;
            while (ours < roundEnd - roundStart) {
                frames.clear();
                assembler.poll(frames);
                for (GuestNet.Received r : frames) {
                    if (all != null) {
                        all.add(r);
                    }
                    int seq = GuestNet.rxSequence(r.frame());
                    if (seq < 0) {
                        continue; // not ours (host chatter)
                    }
                    assertTrue(seq >= roundStart && seq < roundEnd, "frame " + seq + " outside round " + roundStart);
                    assertFalse(seen[seq], "frame " + seq + " arrived twice");
                    seen[seq] = true;
                    int flow = seq % flows;
                    assertTrue(seq > lastSeqPerFlow[flow], "flow " + flow + ": frame " + seq + " after " + lastSeqPerFlow[flow]);
                    lastSeqPerFlow[flow] = seq;
                    assertArrayEquals(GuestNet.rxFrame(seq, flow, GuestNet.frameLength(seq)), r.frame(), "frame " + seq);
                    checkHeader(r, seq);
                    perPair[r.pair()]++;
                    ours++;
                }
                if (ours < roundEnd - roundStart) {
                    if (System.nanoTime() > deadline) {
                        throw new AssertionError("rx round " + roundStart + ": " + (roundEnd - roundStart - ours)
                                + " frames missing; status " + guest.status() + ", last error " + guest.device.model().lastError());
                    }
                    guest.waitForCall(20, guest.rxQueueIndices());
                }
            }
        }
        return perPair;
    }

    /** virtio_net_hdr_v1: no offload asked, so no flags but DATA_VALID, GSO_NONE, num_buffers = buffers used. */
    static void checkHeader(GuestNet.Received r, int seq) {
        byte[] h = r.header();
        assertEquals(0, h[0] & ~2, "frame " + seq + ": flags " + h[0]);
        assertEquals(0, h[1], "frame " + seq + ": gso_type");
        for (int i = 2; i < 10; i++) {
            assertEquals(0, h[i], "frame " + seq + ": header byte " + i);
        }
        int numBuffers = (h[10] & 0xff) | (h[11] & 0xff) << 8;
        int expected = (HEADER + r.frame().length + GuestNet.RX_BUFFER - 1) / GuestNet.RX_BUFFER;
        assertEquals(expected, numBuffers, "frame " + seq + ": num_buffers");
        assertEquals(expected, r.buffers().size());
    }

    /**
     * The dirty log after RX, TX and a control command shows exactly the used ring pages, the
     * written rx buffer pages and the control ack page; no tx buffer, descriptor or avail page.
     */
    @Test
    void dirtyLogShowsExactlyThePagesWritten() throws Exception {
        try (GuestNet guest = GuestNet.kernel(1); Arena arena = Arena.ofConfined();
             DirtyLog log = DirtyLog.covering(guest.memory)) {
            guest.postAllRxBuffers();
            guest.device.startDirtyLog(log);
            // Before any traffic only avail_event writes can be logged: vhost may still be answering
            // the rx kick above (rx used ring), and the Java control queue re-enables notifications
            // under EVENT_IDX whenever it goes idle (control used ring).
            TreeSet<Long> dirty = new TreeSet<>();
            for (long p : log.fetchAndClear()) {
                dirty.add(p);
            }
            assertTrue(Set.of(page(GuestNet.usedAddress(0)), page(GuestNet.usedAddress(2))).containsAll(dirty),
                    "before any traffic: " + hex(dirty));
            List<GuestNet.Received> received = new ArrayList<>();
            receiveAndCheck(guest, 0, 40, arena, received);
            assertEquals(40, transmitAndCheck(guest, 0, 40, arena.allocate(4096)));
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
            for (long p : log.fetchAndClear()) {
                dirty.add(p);
            }
            assertEquals(hex(expected), hex(dirty));
            guest.device.stopDirtyLog();
            // what vhost logged between the fetch above and the stop (its avail_event updates on a
            // used ring page) was still logging time; from here on nothing may be logged
            log.fetchAndClear();
            receiveAndCheck(guest, 40, 8, arena, null);
            assertEquals(0, log.fetchAndClear().length, "nothing is logged after stopDirtyLog");
        }
    }

    private static long page(long address) {
        return address & -DirtyLog.PAGE_SIZE;
    }

    private static List<String> hex(TreeSet<Long> pages) {
        return pages.stream().map(Long::toHexString).toList();
    }

    /**
     * Stop (NET_SET_BACKEND(-1), GET_VRING_BASE), then an early-migration style prestart and a
     * quickstart that issues only SET_VRING_BASE and NET_SET_BACKEND; traffic goes on with
     * nothing lost or doubled.
     */
    @Test
    void stopPrestartQuickstartContinuesTheStream() throws Exception {
        try (GuestNet guest = GuestNet.kernel(2); Arena arena = Arena.ofConfined()) {
            guest.setQueuePairs(2);
            MemorySegment buffer = arena.allocate(4096);
            assertEquals(200, transmitAndCheck(guest, 0, 200, buffer));

            DatapathState stopped = guest.device.stopDatapath();
            assertFalse(guest.device.isDatapathRunning());
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

            VhostNetBackend kernel = (VhostNetBackend) guest.backend;
            List<IoctlRequest> calls = new ArrayList<>();
            IoctlObserver counter = (request, argument) -> calls.add(request);
            kernel.setIoctlObserver(counter);
            guest.device.prestartDatapath(stopped.dataQueues());
            List<IoctlRequest> perQueue = List.of(IoctlRequest.VHOST_SET_VRING_NUM, IoctlRequest.VHOST_SET_VRING_BASE,
                    IoctlRequest.VHOST_SET_VRING_ADDR, IoctlRequest.VHOST_SET_VRING_KICK, IoctlRequest.VHOST_SET_VRING_CALL,
                    IoctlRequest.VHOST_SET_VRING_ERR);
            List<IoctlRequest> onePair = new ArrayList<>(List.of(IoctlRequest.VHOST_SET_FEATURES, IoctlRequest.VHOST_SET_MEM_TABLE));
            onePair.addAll(perQueue);
            onePair.addAll(perQueue);
            List<IoctlRequest> prestart = new ArrayList<>(onePair);
            prestart.addAll(onePair);
            assertEquals(prestart, calls, "prestart: QEMU's order, no backend bound");
            assertFalse(guest.device.isDatapathRunning());

            calls.clear();
            guest.device.quickstartDatapath(stopped);
            assertEquals(List.of(IoctlRequest.VHOST_SET_VRING_BASE, IoctlRequest.VHOST_SET_VRING_BASE,
                    IoctlRequest.VHOST_SET_VRING_BASE, IoctlRequest.VHOST_SET_VRING_BASE,
                    IoctlRequest.VHOST_NET_SET_BACKEND, IoctlRequest.VHOST_NET_SET_BACKEND,
                    IoctlRequest.VHOST_NET_SET_BACKEND, IoctlRequest.VHOST_NET_SET_BACKEND), calls,
                    "quickstart: only SET_VRING_BASE and NET_SET_BACKEND");
            kernel.setIoctlObserver(null);
            assertTrue(guest.device.isDatapathRunning());

            assertEquals(200, transmitAndCheck(guest, 200, 200, buffer));
            guest.postAllRxBuffers();
            receiveAndCheck(guest, 0, 64, arena, null);
            // the control queue resumed where it stood
            assertEquals(VirtioNetCtrl.OK, guest.control(VirtioNetCtrl.CLASS_RX, VirtioNetCtrl.RX_PROMISC, new byte[] {1}));
            assertFalse(guest.needsReset());
        }
    }

    /**
     * The formal backend hand-over: the TAP's queue fds go through SCM_RIGHTS, a second kernel
     * backend is rebuilt from the received copies ({@link VhostNetBackend#fromTransfer}), and the
     * device switches to it and back in the middle of TX and RX streams: every frame exactly once.
     */
    @Test
    void switchesToABackendRebuiltFromTransferredFdsMidStream() throws Exception {
        try (GuestNet guest = GuestNet.kernel(2); Arena arena = Arena.ofConfined();
             io.vhostffm.vhost.os.UnixSocket.Pair channel = io.vhostffm.vhost.os.UnixSocket.pair()) {
            guest.setQueuePairs(2);
            guest.postAllRxBuffers();
            MemorySegment buffer = arena.allocate(4096);
            assertEquals(100, transmitAndCheck(guest, 0, 100, buffer));
            receiveAndCheck(guest, 0, 100, arena, null);

            BackendTransfer sent = guest.backend.transfer();
            assertEquals(BackendTransfer.KIND_TAP, sent.kind());
            assertEquals(guest.tap.name(), sent.name());
            assertEquals(2, sent.fds().size());
            channel.first().send(sent.name().getBytes(java.nio.charset.StandardCharsets.US_ASCII), sent.fds());
            var received = channel.second().receive(arena.allocate(64), 8);
            assertEquals(2, received.fds().size());
            NetBackendFactory factory = VhostNetBackend::fromTransfer;
            try (NetBackend rebuilt = factory.rebuild(sent.withReceivedFds(received.fds()))) {
                assertFalse(rebuilt.isRunning());
                NetBackend[] previous = new NetBackend[1];
                // switch while a TX round is in flight
                assertEquals(200, transmitAndCheck(guest, 100, 200, buffer,
                        () -> previous[0] = guest.device.switchBackend(rebuilt)));
                assertTrue(previous[0] == guest.backend && !guest.backend.isRunning() && rebuilt.isRunning());
                assertTrue(guest.device.backend() == rebuilt);
                // and back while an RX round is in flight
                receiveAndCheck(guest, 100, 200, arena, null, () -> guest.device.switchBackend(guest.backend));
                assertTrue(guest.device.backend() == guest.backend && guest.backend.isRunning() && !rebuilt.isRunning());
                assertEquals(64, transmitAndCheck(guest, 300, 64, buffer));
                receiveAndCheck(guest, 300, 64, arena, null);
            }
            assertFalse(guest.needsReset());
            assertEquals(VirtioNetCtrl.OK, guest.control(VirtioNetCtrl.CLASS_RX, VirtioNetCtrl.RX_PROMISC, new byte[] {1}));
        }
    }

    /** VQ_PAIRS_SET 1 unbinds pair 1 and detaches its TAP queue: every received frame lands in pair 0. */
    @Test
    void queuePairsSetTurnsPairsOnAndOff() throws Exception {
        try (GuestNet guest = GuestNet.kernel(2); Arena arena = Arena.ofConfined()) {
            guest.postAllRxBuffers();
            int[] onePair = receiveAndCheck(guest, 0, 96, arena, null);
            assertEquals(96, onePair[0], "after DRIVER_OK one pair is active (no VQ_PAIRS_SET yet)");
            guest.setQueuePairs(2);
            int[] twoPairs = receiveAndCheck(guest, 96, 96, arena, null);
            assertTrue(twoPairs[0] > 0 && twoPairs[1] > 0, Arrays.toString(twoPairs));
            guest.setQueuePairs(1);
            int[] backToOne = receiveAndCheck(guest, 192, 96, arena, null);
            assertEquals(96, backToOne[0], Arrays.toString(backToOne));
        }
    }

    /**
     * A transmit descriptor in the hole of guest memory: vhost signals the ring error eventfd, the
     * device goes to NEEDS_RESET with its datapath stopped; another device carries on.
     */
    @Test
    void badGuestInputStopsOnlyThatDevice() throws Exception {
        try (GuestNet bad = GuestNet.kernel(1); GuestNet good = GuestNet.kernel(1); Arena arena = Arena.ofConfined()) {
            int head = bad.tx(0).add(new long[] {0x2000_0000L}, new int[] {100}, 1, 0); // in the hole
            assertTrue(head >= 0);
            bad.device.kick(1).signal();
            long deadline = System.nanoTime() + 20_000_000_000L;
            while (!bad.needsReset()) {
                assertTrue(System.nanoTime() < deadline, "no NEEDS_RESET within 20 s");
                Thread.sleep(10);
            }
            String error = bad.device.model().lastError().orElseThrow();
            assertTrue(error.contains("virtqueue 1") && error.contains("VHOST_SET_VRING_ERR"), error);
            deadline = System.nanoTime() + 5_000_000_000L;
            while (bad.device.isDatapathRunning()) {
                assertTrue(System.nanoTime() < deadline, "datapath still running");
                Thread.sleep(10);
            }
            assertTrue(bad.device.configInterrupt().poll(0), "the driver got a config interrupt");
            assertEquals(30, transmitAndCheck(good, 0, 30, arena.allocate(4096)));
            assertFalse(good.needsReset());
        }
    }

    /** A control chain without a writable ack byte is bad guest input: NEEDS_RESET, nothing else breaks. */
    @Test
    void aControlChainWithoutAckByteNeedsReset() throws Exception {
        try (GuestNet guest = GuestNet.kernel(1)) {
            long header = GuestNet.CONTROL_BUFFERS;
            guest.memory.slice(header, 3).copyFrom(MemorySegment.ofArray(new byte[] {0, 0, 1}));
            guest.control().add(new long[] {header}, new int[] {3}, 1, 0);
            guest.device.kick(2).signal();
            long deadline = System.nanoTime() + 20_000_000_000L;
            while (!guest.needsReset()) {
                assertTrue(System.nanoTime() < deadline, "no NEEDS_RESET within 20 s");
                Thread.sleep(10);
            }
            assertTrue(guest.device.model().lastError().orElseThrow().contains("no device-writable byte"));
            assertFalse(guest.device.isDatapathRunning());
        }
    }

    /**
     * GUEST_OFFLOADS_SET reaches the TAP (TUNSETOFFLOAD: the command is OK only if the ioctl
     * succeeded), an offload that was not negotiated is refused, and reception goes on.
     */
    @Test
    void guestOffloadsSetReachesTheTap() throws Exception {
        try (GuestNet guest = GuestNet.kernel(1, io.vhostffm.vhost.virtio.VirtioFeature.CTRL_GUEST_OFFLOADS,
                io.vhostffm.vhost.virtio.VirtioFeature.GUEST_CSUM, io.vhostffm.vhost.virtio.VirtioFeature.GUEST_TSO4);
             Arena arena = Arena.ofConfined()) {
            long csumTso4 = io.vhostffm.vhost.virtio.VirtioFeature.maskOf(io.vhostffm.vhost.virtio.VirtioFeature.GUEST_CSUM,
                    io.vhostffm.vhost.virtio.VirtioFeature.GUEST_TSO4);
            assertEquals(csumTso4, guest.device.model().netState().guestOffloads(), "negotiated offloads at FEATURES_OK");
            assertEquals(VirtioNetCtrl.OK, guest.control(VirtioNetCtrl.CLASS_GUEST_OFFLOADS, VirtioNetCtrl.GUEST_OFFLOADS_SET,
                    le64(0)), () -> "offloads off: " + guest.device.model().lastError());
            assertEquals(0, guest.device.model().netState().guestOffloads());
            assertEquals(VirtioNetCtrl.OK, guest.control(VirtioNetCtrl.CLASS_GUEST_OFFLOADS, VirtioNetCtrl.GUEST_OFFLOADS_SET,
                    le64(csumTso4)), () -> "offloads on: " + guest.device.model().lastError());
            long tso6 = io.vhostffm.vhost.virtio.VirtioFeature.GUEST_TSO6.mask();
            assertEquals(VirtioNetCtrl.ERR, guest.control(VirtioNetCtrl.CLASS_GUEST_OFFLOADS, VirtioNetCtrl.GUEST_OFFLOADS_SET,
                    le64(csumTso4 | tso6)), "GUEST_TSO6 was not negotiated");
            assertEquals(csumTso4, guest.device.model().netState().guestOffloads());
            guest.postAllRxBuffers();
            receiveAndCheck(guest, 0, 64, arena, null);
        }
    }

    private static byte[] le64(long v) {
        byte[] b = new byte[8];
        for (int i = 0; i < 8; i++) {
            b[i] = (byte) (v >>> (8 * i));
        }
        return b;
    }

    /** Packed rings are refused before any ioctl; the kernel backend never offers them. */
    @Test
    void packedRingsAreRefused() throws Exception {
        try (io.vhostffm.vhost.os.TapDevice tap = io.vhostffm.vhost.os.TapDevice.create("vffpk%d");
             VhostNetBackend kernel = VhostNetBackend.open(tap)) {
            assertFalse(kernel.capabilities().packedRings());
            assertFalse(io.vhostffm.vhost.virtio.VirtioFeature.RING_PACKED.in(kernel.capabilities().supportedFeatures()));
            var options = io.vhostffm.vhost.virtio.net.VirtioNetOptions.builder(GuestNet.MAC)
                    .features(io.vhostffm.vhost.virtio.VirtioFeature.RING_PACKED).build();
            try (var memory = io.vhostffm.vhost.os.MemfdGuestMemory.create("p", List.of(
                    new io.vhostffm.vhost.os.MemfdGuestMemory.RegionSpec(0, 0x10000)))) {
                var e = assertThrows(io.vhostffm.vhost.virtio.net.FeatureNegotiationException.class,
                        () -> new NetDeviceRuntime(options, memory, kernel));
                assertTrue(e.getMessage().contains("RING_PACKED"), e.getMessage());
            }
        }
    }
}

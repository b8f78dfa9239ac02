package io.vhostffm.vhost.device;

import io.vhostffm.vhost.device.kernel.VhostNetBackend;

import static io.vhostffm.vhost.virtio.DeviceStatus.ACKNOWLEDGE;
import static io.vhostffm.vhost.virtio.DeviceStatus.DEVICE_NEEDS_RESET;
import static io.vhostffm.vhost.virtio.DeviceStatus.DRIVER;
import static io.vhostffm.vhost.virtio.DeviceStatus.DRIVER_OK;
import static io.vhostffm.vhost.virtio.DeviceStatus.FEATURES_OK;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.MemfdGuestMemory.RegionSpec;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.os.PacketSocket;
import io.vhostffm.vhost.os.TapDevice;
import io.vhostffm.vhost.virtio.net.VirtioNetCtrl;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vhost.virtio.net.VirtioNetOptions;
import io.vhostffm.vring.DriverQueue;
import io.vhostffm.vring.PackedDriverQueue;
import io.vhostffm.vring.SplitDriverQueue;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * A fake guest with a virtio-net device on a real TAP: vring's driver side over memfd guest memory
 * of two regions with a hole between them (rings and indirect tables in the low one, frame
 * buffers in the high one). It negotiates like a driver, sets up every queue, posts receive
 * buffers, transmits frames in the three chain shapes, and speaks to the control queue. The
 * network side is an AF_PACKET socket on the TAP.
 *
 * <p>Ring format and event idx follow what the driver acks: with {@link VirtioFeature#RING_PACKED}
 * among the extra features (and a backend offering it) every queue is a {@link PackedDriverQueue},
 * else a {@link SplitDriverQueue}; everything else drives them through vring's {@link DriverQueue}.
 * At each queue the packed ring's parts take the split ring's places: descriptor ring at
 * {@link #descAddress}, driver event suppression at {@link #availAddress}, device event
 * suppression at {@link #usedAddress}.
 */
final class GuestNet implements AutoCloseable {
    static final int QUEUE_SIZE = 256;
    static final int HEADER = 12;
    static final long RING_REGION = 0;
    static final long RING_REGION_SIZE = 0x10_0000;
    /** Between the regions: a hole of about a gigabyte. */
    static final long BUFFER_REGION = 0x4000_0000L;
    static final long BUFFER_REGION_SIZE = 0x80_0000;
    static final long TX_SLOT = 0x1000;
    static final int TX_SLOTS = 64;
    static final int RX_BUFFER = 256;
    static final byte[] MAC = {0x52, 0x54, 0, 0x12, 0x34, 0x56};
    static final short TEST_ETHERTYPE = (short) 0x88b5;

    final Arena arena = Arena.ofShared();
    final MemfdGuestMemory memory;
    final TapDevice tap;
    final boolean ownsTap;
    final NetBackend backend;
    final NetDeviceRuntime device;
    final PacketSocket network;
    final int pairs;
    final DriverQueue[] queues;
    /** The driver does not ack these feature bits even when the device offers them. */
    final long refusedFeatures;
    /** What the driver acked: packed rings, event idx. */
    boolean packed;
    boolean eventIdx;
    final int controlIndex;
    /** Per rx queue: buffer address by head. */
    final long[][] rxAddressByHead;

    private GuestNet(MemfdGuestMemory memory, TapDevice tap, boolean ownsTap, NetBackend backend, int pairs,
            long refusedFeatures, VirtioFeature... extra) throws Exception {
        this.memory = memory;
        this.refusedFeatures = refusedFeatures;
        this.tap = tap;
        this.ownsTap = ownsTap;
        this.backend = backend;
        this.pairs = pairs;
        VirtioFeature[] features = pairs > 1
                ? new VirtioFeature[] {VirtioFeature.MRG_RXBUF, VirtioFeature.EVENT_IDX, VirtioFeature.INDIRECT_DESC,
                        VirtioFeature.CTRL_VQ, VirtioFeature.CTRL_RX, VirtioFeature.MQ, VirtioFeature.MAC, VirtioFeature.STATUS}
                : new VirtioFeature[] {VirtioFeature.MRG_RXBUF, VirtioFeature.EVENT_IDX, VirtioFeature.INDIRECT_DESC,
                        VirtioFeature.CTRL_VQ, VirtioFeature.CTRL_RX, VirtioFeature.MAC, VirtioFeature.STATUS};
        VirtioFeature[] all = java.util.Arrays.copyOf(features, features.length + extra.length);
        System.arraycopy(extra, 0, all, features.length, extra.length);
        VirtioNetOptions options = VirtioNetOptions.builder(MAC).features(all).maxQueuePairs(pairs).build();
        this.device = new NetDeviceRuntime(options, memory, backend);
        this.controlIndex = pairs > 1 ? 2 * pairs : 2;
        this.queues = new DriverQueue[2 * pairs + 1];
        this.rxAddressByHead = new long[pairs][QUEUE_SIZE];
        this.network = PacketSocket.bind(tap.name());
        network.setReceiveBuffer(8 << 20);
        negotiate();
    }

    /** A guest on a new TAP with kernel vhost-net. */
    static GuestNet kernel(int pairs, VirtioFeature... extraFeatures) throws Exception {
        return on(pairs, VhostNetBackend::open, extraFeatures);
    }

    /** A guest on a new TAP with the backend {@code open} makes on it. */
    static GuestNet on(int pairs, ThrowingFunction<TapDevice, NetBackend> open, VirtioFeature... extraFeatures)
            throws Exception {
        return on(pairs, open, 0, extraFeatures);
    }

    /**
     * A guest on a new TAP with the backend {@code open} makes on it, whose driver does not ack
     * {@code refusedFeatures} (a mask; e.g. EVENT_IDX to run without event index).
     */
    static GuestNet on(int pairs, ThrowingFunction<TapDevice, NetBackend> open, long refusedFeatures,
            VirtioFeature... extraFeatures) throws Exception {
        MemfdGuestMemory memory = MemfdGuestMemory.create("guest", List.of(
                new RegionSpec(RING_REGION, RING_REGION_SIZE), new RegionSpec(BUFFER_REGION, BUFFER_REGION_SIZE)));
        TapDevice tap = null;
        NetBackend backend = null;
        try {
            tap = TapDevice.create("vffk%d", pairs, TapDevice.VHOST_FLAGS);
            disableIpv6(tap.name());
            tap.setLinkUp(true);
            backend = open.apply(tap);
            return new GuestNet(memory, tap, true, backend, pairs, refusedFeatures, extraFeatures);
        } catch (Exception | Error e) {
            if (backend != null) backend.close();
            if (tap != null) tap.close();
            memory.close();
            throw e;
        }
    }

    interface ThrowingFunction<A, B> {
        B apply(A a) throws Exception;
    }

    /** No host chatter (router solicitations, MLD) on the test link. */
    static void disableIpv6(String name) {
        try {
            Files.writeString(Path.of("/proc/sys/net/ipv6/conf", name, "disable_ipv6"), "1");
        } catch (Exception e) {
            // no IPv6 here: nothing chatters
        }
    }

    static long descAddress(int q) { return RING_REGION + q * 0x4000L; }
    static long availAddress(int q) { return descAddress(q) + 0x1000; }
    static long usedAddress(int q) { return descAddress(q) + 0x2000; }
    static long indirectTable(int pair, int slot) { return 0x80000 + pair * 0x10000L + slot * 0x100L; }
    static long txSlot(int pair, int slot) { return BUFFER_REGION + pair * 0x20_0000L + slot * TX_SLOT; }
    static long rxBufferBase(int pair) { return BUFFER_REGION + 0x40_0000 + pair * 0x10_0000L; }
    static final long CONTROL_BUFFERS = BUFFER_REGION + 0x60_0000;

    private void negotiate() {
        var model = device.model();
        model.writeStatus(ACKNOWLEDGE);
        model.writeStatus(ACKNOWLEDGE | DRIVER);
        long acked = model.deviceFeatures() & ~refusedFeatures;
        assertTrue(model.writeDriverFeatures(acked));
        packed = VirtioFeature.RING_PACKED.in(acked);
        eventIdx = VirtioFeature.EVENT_IDX.in(acked);
        int status = model.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK);
        assertEquals(ACKNOWLEDGE | DRIVER | FEATURES_OK, status, () -> "FEATURES_OK: " + model.lastError());
        for (int q = 0; q < queues.length; q++) {
            int index = q == 2 * pairs ? controlIndex : q;
            queues[q] = packed
                    ? new PackedDriverQueue(index, memory, QUEUE_SIZE, descAddress(index), availAddress(index),
                            usedAddress(index), eventIdx, 0, true)
                    : new SplitDriverQueue(index, memory, QUEUE_SIZE, descAddress(index), availAddress(index),
                            usedAddress(index), eventIdx, 0);
            device.configureQueue(index, QUEUE_SIZE, descAddress(index), availAddress(index), usedAddress(index));
        }
        status = model.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
        assertEquals(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK, status, () -> "DRIVER_OK: " + model.lastError());
        assertEquals(controlIndex, device.controlQueueIndex());
    }

    DriverQueue rx(int pair) { return queues[2 * pair]; }
    DriverQueue tx(int pair) { return queues[2 * pair + 1]; }
    DriverQueue control() { return queues[2 * pairs]; }

    int status() {
        return device.model().status();
    }

    boolean needsReset() {
        return (status() & DEVICE_NEEDS_RESET) != 0;
    }

    // ---------------------------------------------------------------- control queue

    /** Sends one control command and returns the ack byte the device wrote. */
    int control(int commandClass, int command, byte[] data) throws Exception {
        long header = CONTROL_BUFFERS;
        long payload = CONTROL_BUFFERS + 0x100;
        long ack = CONTROL_BUFFERS + 0x2ff;  // the last byte of a page-crossing-free area
        memory.slice(header, 2).copyFrom(MemorySegment.ofArray(new byte[] {(byte) commandClass, (byte) command}));
        memory.slice(payload, data.length).copyFrom(MemorySegment.ofArray(data));
        memory.slice(ack, 1).set(JAVA_BYTE, 0, (byte) 0x7f);
        int head = control().add(new long[] {header, payload, ack}, new int[] {2, data.length, 1}, 2, 1);
        assertTrue(head >= 0);
        if (control().needsKick()) {
            device.kick(controlIndex).signal();
        }
        int[] ids = new int[1];
        int[] lens = new int[1];
        long deadline = System.nanoTime() + 20_000_000_000L;
        while (control().collectUsed(ids, lens, 1) == 0) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("no answer on the control queue within 20 s; status " + status()
                        + ", last error " + device.model().lastError());
            }
            device.call(controlIndex).poll(50);
            device.call(controlIndex).consume();
        }
        assertEquals(head, ids[0]);
        assertEquals(1, lens[0], "the device writes exactly the ack byte");
        return memory.slice(ack, 1).get(JAVA_BYTE, 0);
    }

    long controlAckAddress() {
        return CONTROL_BUFFERS + 0x2ff;
    }

    void setQueuePairs(int n) throws Exception {
        int ack = control(VirtioNetCtrl.CLASS_MQ, VirtioNetCtrl.MQ_VQ_PAIRS_SET, new byte[] {(byte) n, (byte) (n >> 8)});
        assertEquals(VirtioNetCtrl.OK, ack, () -> "VQ_PAIRS_SET " + n + ": " + device.model().lastError());
    }

    // ---------------------------------------------------------------- receive side

    /** Fills every rx queue with {@code RX_BUFFER}-byte buffers (ring full) and kicks. */
    void postAllRxBuffers() throws Exception {
        for (int p = 0; p < pairs; p++) {
            for (int i = 0; i < QUEUE_SIZE; i++) {
                long address = rxBufferBase(p) + (long) i * RX_BUFFER;
                int head = rx(p).add(new long[] {address}, new int[] {RX_BUFFER}, 0, 1);
                assertTrue(head >= 0, "rx ring has room");
                rxAddressByHead[p][head] = address;
            }
            kickIfNeeded(rx(p), 2 * p);
        }
    }

    /** Gives a used rx buffer back to the device. */
    void repostRxAt(int pair, long address) {
        int again = rx(pair).add(new long[] {address}, new int[] {RX_BUFFER}, 0, 1);
        assertTrue(again >= 0);
        rxAddressByHead[pair][again] = address;
    }

    /** Waits up to {@code millis} for a call on any of {@code queueIndices}, consuming them. */
    void waitForCall(int millis, int... queueIndices) throws NativeCallException {
        List<io.vhostffm.vhost.os.FileDescriptor> fds = new ArrayList<>();
        for (int q : queueIndices) {
            fds.add(device.call(q).fd());
        }
        try (io.vhostffm.vhost.os.DescriptorPoller poller = new io.vhostffm.vhost.os.DescriptorPoller(fds)) {
            if (poller.poll(millis) > 0) {
                for (int q : queueIndices) {
                    device.call(q).consume();
                }
            }
        }
    }

    int[] rxQueueIndices() {
        int[] r = new int[pairs];
        for (int p = 0; p < pairs; p++) r[p] = 2 * p;
        return r;
    }

    int[] txQueueIndices() {
        int[] r = new int[pairs];
        for (int p = 0; p < pairs; p++) r[p] = 2 * p + 1;
        return r;
    }

    void kickIfNeeded(DriverQueue q, int index) throws NativeCallException {
        if (q.needsKick()) {
            device.kick(index).signal();
        }
    }

    // ---------------------------------------------------------------- transmit side

    /** Writes a transmit chain for {@code frame} in slot {@code slot} of {@code pair}, shaped by {@code shape}. */
    int transmit(int pair, int slot, byte[] frame, int shape) {
        long base = txSlot(pair, slot);
        long header = base + 0xe00;
        memory.slice(header, HEADER).fill((byte) 0);  // flags 0, GSO_NONE: a plain frame
        DriverQueue q = tx(pair);
        switch (shape) {
            case 0 -> {
                // one descriptor: header and frame together
                memory.slice(base, HEADER).fill((byte) 0);
                memory.slice(base + HEADER, frame.length).copyFrom(MemorySegment.ofArray(frame));
                return q.add(new long[] {base}, new int[] {HEADER + frame.length}, 1, 0);
            }
            case 1, 2 -> {
                // header apart, the frame in up to three pieces with gaps between them
                long[] addresses = new long[4];
                int[] lengths = new int[4];
                addresses[0] = header;
                lengths[0] = HEADER;
                int first = Math.min(frame.length, 14 + (slot * 7) % 40);
                int rest = frame.length - first;
                int second = rest / 2;
                int[] pieces = {first, second, rest - second};
                int count = 1;
                int offset = 0;
                long at = base;
                for (int piece : pieces) {
                    if (piece == 0) continue;
                    memory.slice(at, piece).copyFrom(MemorySegment.ofArray(frame).asSlice(offset, piece));
                    addresses[count] = at;
                    lengths[count] = piece;
                    count++;
                    offset += piece;
                    at += piece + 64;
                }
                long[] a = java.util.Arrays.copyOf(addresses, count);
                int[] l = java.util.Arrays.copyOf(lengths, count);
                return shape == 1 ? q.add(a, l, count, 0) : q.addIndirect(indirectTable(pair, slot), a, l, count, 0);
            }
            default -> throw new IllegalArgumentException("shape " + shape);
        }
    }

    /** A test frame: broadcast, our ethertype, sequence number at 14..17, a pattern after. */
    static byte[] txFrame(int seq, int pair, int length) {
        byte[] f = new byte[length];
        for (int i = 0; i < 6; i++) f[i] = (byte) 0xff;
        System.arraycopy(MAC, 0, f, 6, 6);
        f[11] = (byte) pair;
        f[12] = (byte) (TEST_ETHERTYPE >> 8);
        f[13] = (byte) TEST_ETHERTYPE;
        f[14] = (byte) (seq >>> 24); f[15] = (byte) (seq >>> 16); f[16] = (byte) (seq >>> 8); f[17] = (byte) seq;
        for (int i = 18; i < length; i++) f[i] = (byte) (seq * 13 + i);
        return f;
    }

    static int frameLength(int seq) {
        return 60 + (int) ((seq * 7919L) % 1455);  // 60..1514
    }

    /** The next frame of ours from the network side, or null on timeout. */
    byte[] receiveFromNetwork(MemorySegment buffer, int timeoutMillis) throws Exception {
        long deadline = System.nanoTime() + timeoutMillis * 1_000_000L;
        while (System.nanoTime() < deadline) {
            long n = network.receive(buffer, (int) Math.max(1, (deadline - System.nanoTime()) / 1_000_000));
            if (n < 0) {
                return null;
            }
            if (n >= 18 && n <= buffer.byteSize() && buffer.get(JAVA_BYTE, 12) == (byte) (TEST_ETHERTYPE >> 8)
                    && buffer.get(JAVA_BYTE, 13) == (byte) TEST_ETHERTYPE) {
                return buffer.asSlice(0, n).toArray(JAVA_BYTE);
            }
        }
        return null;
    }

    /**
     * A frame sent into the guest: to the guest's MAC, IPv4/UDP so the TAP hashes it to a queue by
     * flow ({@code flow} picks the source port), magic and sequence number in the payload.
     */
    static byte[] rxFrame(int seq, int flow, int length) {
        byte[] f = new byte[length];
        System.arraycopy(MAC, 0, f, 0, 6);
        f[6] = 0x02; f[11] = 0x01;
        f[12] = 0x08; f[13] = 0x00;
        int ip = 14;
        int ipLength = length - 14;
        f[ip] = 0x45;
        f[ip + 2] = (byte) (ipLength >> 8); f[ip + 3] = (byte) ipLength;
        f[ip + 8] = 64; f[ip + 9] = 17;
        f[ip + 12] = 10; f[ip + 15] = 1;
        f[ip + 16] = 10; f[ip + 19] = 2;
        int udp = ip + 20;
        int sport = 1000 + flow;
        f[udp] = (byte) (sport >> 8); f[udp + 1] = (byte) sport;
        f[udp + 3] = 9;
        int udpLength = length - udp;
        f[udp + 4] = (byte) (udpLength >> 8); f[udp + 5] = (byte) udpLength;
        int payload = udp + 8;
        f[payload] = 'V'; f[payload + 1] = 'F'; f[payload + 2] = 'F'; f[payload + 3] = 'M';
        f[payload + 4] = (byte) (seq >>> 24); f[payload + 5] = (byte) (seq >>> 16);
        f[payload + 6] = (byte) (seq >>> 8); f[payload + 7] = (byte) seq;
        for (int i = payload + 8; i < length; i++) f[i] = (byte) (seq * 31 + i);
        return f;
    }

    /** The sequence number of one of our rx frames, or -1 for anything else. */
    static int rxSequence(byte[] f) {
        if (f.length < 50 || f[12] != 0x08 || f[13] != 0 || f[42] != 'V' || f[43] != 'F' || f[44] != 'F' || f[45] != 'M') {
            return -1;
        }
        return (f[46] & 0xff) << 24 | (f[47] & 0xff) << 16 | (f[48] & 0xff) << 8 | (f[49] & 0xff);
    }

    /** One frame as the guest received it: the header and the bytes after it, and the buffers used. */
    record Received(int pair, byte[] header, byte[] frame, List<long[]> buffers) {}

    /** Reassembles mergeable rx buffers per rx queue: the first carries the header with num_buffers. */
    final class RxAssembler {
        private final int[] ids = new int[QUEUE_SIZE];
        private final int[] lens = new int[QUEUE_SIZE];
        private final long[] addresses = new long[QUEUE_SIZE];
        private final java.io.ByteArrayOutputStream[] partial = new java.io.ByteArrayOutputStream[pairs];
        private final byte[][] header = new byte[pairs][];
        private final int[] remaining = new int[pairs];
        @SuppressWarnings("unchecked")
        private final List<long[]>[] buffers = new List[pairs];

        /** Collects what is used on every rx queue; complete frames go to {@code out}; buffers are reposted. */
        int poll(List<Received> out) throws Exception {
            int frames = 0;
            for (int p = 0; p < pairs; p++) {
                int n = rx(p).collectUsed(ids, lens, QUEUE_SIZE);
                // Addresses first: reposting below reuses ids (split heads, packed buffer ids; both
                // free lists are LIFO) and rewrites rxAddressByHead for ids not read yet.
                for (int i = 0; i < n; i++) {
                    addresses[i] = rxAddressByHead[p][ids[i]];
                }
                for (int i = 0; i < n; i++) {
                    long address = addresses[i];
                    byte[] data = memory.slice(address, lens[i]).toArray(JAVA_BYTE);
                    if (remaining[p] == 0) {
                        if (lens[i] < HEADER) {
                            throw new AssertionError("rx queue " + 2 * p + ": first buffer of a frame holds " + lens[i]
                                    + " bytes, less than the 12-byte header");
                        }
                        header[p] = java.util.Arrays.copyOf(data, HEADER);
                        remaining[p] = (header[p][10] & 0xff) | (header[p][11] & 0xff) << 8;
                        if (remaining[p] < 1) {
                            throw new AssertionError("rx queue " + 2 * p + ": num_buffers " + remaining[p]);
                        }
                        partial[p] = new java.io.ByteArrayOutputStream();
                        partial[p].write(data, HEADER, data.length - HEADER);
                        buffers[p] = new ArrayList<>();
                    } else {
                        partial[p].write(data, 0, data.length);
                    }
                    buffers[p].add(new long[] {address, lens[i]});
                    repostRxAt(p, address);
                    if (--remaining[p] == 0) {
                        out.add(new Received(p, header[p], partial[p].toByteArray(), buffers[p]));
                        frames++;
                    }
                }
                if (n > 0) {
                    kickIfNeeded(rx(p), 2 * p);
                }
            }
            return frames;
        }
    }

    @Override
    public void close() {
        network.close();
        device.close();
        backend.close();
        if (ownsTap) {
            tap.close();
        }
        memory.close();
        arena.close();
    }
}

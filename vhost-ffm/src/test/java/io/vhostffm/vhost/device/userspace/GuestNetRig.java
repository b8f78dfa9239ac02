package io.vhostffm.vhost.device.userspace;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.os.PacketSocket;
import io.vhostffm.vhost.os.TapDevice;
import io.vhostffm.vhost.device.BackendCapabilities;
import io.vhostffm.vhost.virtio.DeviceStatus;
import io.vhostffm.vhost.virtio.net.NetDeviceListener;
import io.vhostffm.vhost.virtio.net.VirtioNetDevice;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vhost.virtio.net.VirtioNetOptions;
import io.vhostffm.vring.SplitDriverQueue;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A fake guest with a real TAP: memfd guest memory, vring's split driver queues for every queue
 * pair, eventfds, a multi-queue TAP with vnet headers, an AF_PACKET socket on the TAP as the
 * network side, and a virtio-net device model driven to DRIVER_OK.
 *
 * <p>Guest-physical layout: region 0 at 0 (1 MiB) holds the rings, pair p at {@code p * 0x20000}
 * (rx desc +0, avail +0x1000, used +0x2000; tx desc +0x10000, avail +0x11000, used +0x12000).
 * Region 1 at 0x100000 (16 MiB) holds the buffers, pair p's at {@code 0x100000 + p * 0x400000}:
 * 512 receive slots of 4 KiB, then 512 transmit slots of 4 KiB.
 */
final class GuestNetRig implements AutoCloseable {
    static final int SIZE = 256;
    static final int HEADER = 12;
    static final byte[] DEVICE_MAC = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
    static final long FEATURES = VirtioFeature.maskOf(VirtioFeature.VERSION_1, VirtioFeature.MAC,
            VirtioFeature.STATUS, VirtioFeature.CTRL_VQ, VirtioFeature.CTRL_RX, VirtioFeature.CTRL_RX_EXTRA,
            VirtioFeature.CTRL_VLAN, VirtioFeature.MQ, VirtioFeature.MRG_RXBUF, VirtioFeature.EVENT_IDX,
            VirtioFeature.INDIRECT_DESC);
    static final long RINGS = 0;
    static final long BUFFERS = 0x100000;
    static final long PAIR_BUFFERS = 0x400000;
    static final int SLOTS = 512;
    static final long SLOT = 4096;

    final MemfdGuestMemory memory;
    final TapDevice tap;
    final PacketSocket wire;
    final VirtioNetDevice device;
    final List<String> needsResetReasons = new CopyOnWriteArrayList<>();
    final List<GuestPair> pairs = new ArrayList<>();

    GuestNetRig(int queuePairs, boolean eventIdx) throws Exception {
        memory = MemfdGuestMemory.create("guest", List.of(
                new MemfdGuestMemory.RegionSpec(RINGS, 0x100000),
                new MemfdGuestMemory.RegionSpec(BUFFERS, 0x1000000)));
        tap = TapDevice.create("vffu%d", queuePairs, TapDevice.VHOST_FLAGS);
        tap.setVnetHeaderSize(HEADER);
        Path knob = Path.of("/proc/sys/net/ipv6/conf", tap.name(), "disable_ipv6");
        if (Files.exists(knob)) {
            Files.writeString(knob, "1"); // no router solicitations or MLD reports on the test TAP
        }
        tap.setLinkUp(true);
        wire = PacketSocket.bind(tap.name());
        VirtioNetOptions options = VirtioNetOptions.builder(DEVICE_MAC).featureBits(FEATURES)
                .maxQueuePairs(Math.max(1, queuePairs)).build();
        device = new VirtioNetDevice(options, BackendCapabilities.of("userspace", VirtioFeature.knownMask()),
                new NetDeviceListener() {
                    @Override
                    public void needsReset(String reason) {
                        needsResetReasons.add(reason);
                    }
                });
        device.writeStatus(DeviceStatus.ACKNOWLEDGE);
        device.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
        long acked = FEATURES & ~(eventIdx ? 0 : VirtioFeature.EVENT_IDX.mask());
        device.writeDriverFeatures(acked);
        int ok = DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK;
        assertEquals(ok, device.writeStatus(ok), () -> "FEATURES_OK refused: " + device.lastError());
        device.writeStatus(ok | DeviceStatus.DRIVER_OK);
        for (int p = 0; p < queuePairs; p++) {
            pairs.add(new GuestPair(p, eventIdx));
        }
    }

    List<QueuePairConfig> configs() {
        List<QueuePairConfig> out = new ArrayList<>();
        for (GuestPair p : pairs) {
            out.add(p.config());
        }
        return out;
    }

    @Override
    public void close() {
        for (GuestPair p : pairs) {
            p.close();
        }
        wire.close();
        tap.close();
        memory.close();
    }

    MemorySegment at(long guestAddress, long length) {
        int r = memory.findRegion(guestAddress, length);
        assertTrue(r >= 0, () -> "not in guest memory: 0x" + Long.toHexString(guestAddress));
        return memory.region(r).segment().asSlice(guestAddress - memory.region(r).guestAddress(), length);
    }

    /** One queue pair's driver side. */
    final class GuestPair implements AutoCloseable {
        final int index;
        final SplitDriverQueue rx;
        final SplitDriverQueue tx;
        final EventFd rxKick = EventFd.create("rx kick");
        final EventFd rxCall = EventFd.create("rx call");
        final EventFd txKick = EventFd.create("tx kick");
        final EventFd txCall = EventFd.create("tx call");
        final long rxSlots;
        final long txSlots;
        private final ArrayDeque<Integer> freeRxSlots = new ArrayDeque<>();
        /** Per rx head in flight: the slot, buffer addresses and lengths. */
        private final int[] rxSlotOfHead = new int[SIZE];
        private final long[][] rxAddrOfHead = new long[SIZE][];
        private final int[][] rxLenOfHead = new int[SIZE][];
        private final ArrayDeque<int[]> rxUsed = new ArrayDeque<>();
        private final int[] ids = new int[SIZE];
        private final int[] lens = new int[SIZE];
        int rxChainKind;
        int rxBufferBytes = 1024;
        /** Receive slots whose bytes the device wrote (delivered frames), for the dirty log test. */
        final List<long[]> rxWritten = new ArrayList<>();
        int txInFlight;
        /** Frames that arrived in more than one receive chain (num_buffers > 1). */
        int mergedFrames;

        GuestPair(int index, boolean eventIdx) throws NativeCallException {
            this.index = index;
            long rings = RINGS + index * 0x20000L;
            rx = new SplitDriverQueue(2 * index, memory, SIZE, rings, rings + 0x1000, rings + 0x2000, eventIdx, 0);
            tx = new SplitDriverQueue(2 * index + 1, memory, SIZE, rings + 0x10000, rings + 0x11000, rings + 0x12000,
                    eventIdx, 0);
            rxSlots = BUFFERS + index * PAIR_BUFFERS;
            txSlots = rxSlots + SLOTS * SLOT;
            for (int s = 0; s < SLOTS; s++) {
                freeRxSlots.add(s);
            }
        }

        QueuePairConfig config() {
            return new QueuePairConfig(index, rx.initialDeviceState(), tx.initialDeviceState(), rxKick, rxCall, txKick, txCall,
                    tap.queue(index));
        }

        // ---------------------------------------------------------------- receive

        /** Posts receive chains while slots and descriptors last; kicks when the device asks. */
        void postRxBuffers(int max) throws NativeCallException {
            int posted = 0;
            while (posted < max && !freeRxSlots.isEmpty() && rx.freeDescriptors() >= 2) {
                int slot = freeRxSlots.poll();
                long base = rxSlots + slot * SLOT;
                long[] addrs;
                int[] lengths;
                // Alternate: one buffer; the header split across two buffers (7 + rest).
                if ((rxChainKind++ & 1) == 0) {
                    addrs = new long[] {base};
                    lengths = new int[] {rxBufferBytes};
                } else {
                    addrs = new long[] {base, base + 64};
                    lengths = new int[] {7, rxBufferBytes - 7};
                }
                int head = rx.add(addrs, lengths, 0, addrs.length);
                assertTrue(head >= 0);
                rxSlotOfHead[head] = slot;
                rxAddrOfHead[head] = addrs;
                rxLenOfHead[head] = lengths;
                posted++;
            }
            if (posted > 0 && rx.needsKick()) {
                rxKick.signal();
            }
        }

        /**
         * The next received frame (without its header), or null when none is complete yet. Checks
         * the header: flags and GSO type 0 (no offloads), num_buffers = the used chains it spans.
         */
        byte[] nextRxFrame() throws NativeCallException {
            int n = rx.collectUsed(ids, lens, SIZE);
            for (int i = 0; i < n; i++) {
                rxUsed.add(new int[] {ids[i], lens[i]});
            }
            if (rxUsed.isEmpty()) {
                return null;
            }
            int[] first = rxUsed.peek();
            byte[] firstBytes = chainBytes(first[0], first[1]);
            assertTrue(firstBytes.length >= HEADER, "first buffer holds the header");
            int numBuffers = (firstBytes[10] & 0xff) | (firstBytes[11] & 0xff) << 8;
            assertTrue(numBuffers >= 1, "num_buffers " + numBuffers);
            if (rxUsed.size() < numBuffers) {
                fail("num_buffers " + numBuffers + " but only " + rxUsed.size() + " used chains were published with it");
            }
            assertEquals(0, firstBytes[0], "virtio_net_hdr.flags");
            assertEquals(0, firstBytes[1], "virtio_net_hdr.gso_type");
            if (numBuffers > 1) {
                mergedFrames++;
            }
            java.io.ByteArrayOutputStream frame = new java.io.ByteArrayOutputStream();
            for (int b = 0; b < numBuffers; b++) {
                int[] used = rxUsed.poll();
                byte[] bytes = b == 0 ? firstBytes : chainBytes(used[0], used[1]);
                if (b > 0) {
                    assertTrue(used[1] > 0, "a merged buffer with data");
                }
                frame.write(bytes, b == 0 ? HEADER : 0, bytes.length - (b == 0 ? HEADER : 0));
                freeRxSlots.add(rxSlotOfHead[used[0]]);
            }
            return frame.toByteArray();
        }

        private byte[] chainBytes(int head, int written) {
            long[] addrs = rxAddrOfHead[head];
            int[] lengths = rxLenOfHead[head];
            byte[] out = new byte[written];
            int at = 0;
            for (int i = 0; i < addrs.length && at < written; i++) {
                int w = Math.min(lengths[i], written - at);
                MemorySegment.copy(at(addrs[i], w), JAVA_BYTE, 0, out, at, w);
                rxWritten.add(new long[] {addrs[i], w});
                at += w;
            }
            assertEquals(written, at, "used len within the chain's buffers");
            return out;
        }

        /** Waits up to {@code millis} for a used-buffer notification on rx (after re-enabling them). */
        void awaitRx(int millis) throws NativeCallException {
            if (!rx.enableUsedNotifications()) {
                rxCall.poll(millis);
            }
            rxCall.consume();
        }

        // ---------------------------------------------------------------- transmit

        /**
         * Makes frame {@code seq} available on tx: header + frame in slot {@code seq % 512}, as one
         * buffer, header and frame apart, 3-4 random pieces, or an indirect table of 3 pieces.
         *
         * @return false when the ring has no descriptors free (collect and retry)
         */
        boolean addTx(int seq, byte[] frame, Random random) throws NativeCallException {
            long base = txSlots + (seq % SLOTS) * SLOT;
            MemorySegment slot = at(base, SLOT);
            slot.asSlice(0, HEADER).fill((byte) 0);
            MemorySegment.copy(frame, 0, slot, JAVA_BYTE, HEADER, frame.length);
            int total = HEADER + frame.length;
            int kind = seq % 4;
            int head;
            if (kind == 0) {
                head = tx.add(new long[] {base}, new int[] {total}, 1, 0);
            } else if (kind == 1) {
                head = tx.add(new long[] {base, base + HEADER}, new int[] {HEADER, frame.length}, 2, 0);
            } else {
                int pieces = kind == 3 ? 3 : 3 + random.nextInt(2);
                // Cut points anywhere, even inside the header: pieces - 1 distinct cuts in (0, total).
                int[] cuts = random.ints(1, total).distinct().limit(pieces - 1).sorted().toArray();
                long[] addrs = new long[pieces];
                int[] lengths = new int[pieces];
                int from = 0;
                for (int i = 0; i < pieces; i++) {
                    int to = i < pieces - 1 ? cuts[i] : total;
                    addrs[i] = base + from;
                    lengths[i] = to - from;
                    from = to;
                }
                head = kind == 3 ? tx.addIndirect(base + 3072, addrs, lengths, pieces, 0) : tx.add(addrs, lengths, pieces, 0);
            }
            if (head < 0) {
                return false;
            }
            txInFlight++;
            if (tx.needsKick()) {
                txKick.signal();
            }
            return true;
        }

        /** Collects used tx chains; checks each has used length 0. */
        int collectTx() {
            int n = tx.collectUsed(ids, lens, SIZE);
            for (int i = 0; i < n; i++) {
                assertEquals(0, lens[i], "tx used len");
            }
            txInFlight -= n;
            return n;
        }

        int txWaitTimeouts;

        void awaitTx(int millis) throws NativeCallException {
            if (!tx.enableUsedNotifications()) {
                if (!txCall.poll(millis)) {
                    txWaitTimeouts++;
                }
            }
            txCall.consume();
        }

        @Override
        public void close() {
            rxKick.close();
            rxCall.close();
            txKick.close();
            txCall.close();
        }
    }

    // ---------------------------------------------------------------- frames

    /** An Ethernet frame of {@code length} bytes (>= 18) to {@code destination}, EtherType 0x88b5, tagged. */
    static byte[] frame(byte[] destination, int length, int tag, int seq) {
        byte[] f = new byte[length];
        System.arraycopy(destination, 0, f, 0, 6);
        f[6] = 0x02;
        f[7] = (byte) 0xaa;
        f[8] = (byte) tag;
        f[12] = (byte) 0x88;
        f[13] = (byte) 0xb5;
        f[14] = (byte) (seq >>> 24);
        f[15] = (byte) (seq >>> 16);
        f[16] = (byte) (seq >>> 8);
        f[17] = (byte) seq;
        for (int i = 18; i < length; i++) {
            f[i] = (byte) (seq * 7 + i * 13 + tag);
        }
        return f;
    }

    static final byte[] BROADCAST = {-1, -1, -1, -1, -1, -1};

    /** Whether a frame is one of ours (EtherType 0x88b5); the kernel may send others on a TAP. */
    static boolean ours(byte[] frame) {
        return frame.length >= 18 && (frame[12] & 0xff) == 0x88 && (frame[13] & 0xff) == 0xb5;
    }

    static int seqOf(byte[] frame) {
        return (frame[14] & 0xff) << 24 | (frame[15] & 0xff) << 16 | (frame[16] & 0xff) << 8 | (frame[17] & 0xff);
    }

    static int tagOf(byte[] frame) {
        return frame[8] & 0xff;
    }

    /** Sends a frame on the network side (blocks while the socket buffer is full). */
    void inject(Arena arena, MemorySegment scratch, byte[] frame) throws Exception {
        MemorySegment.copy(frame, 0, scratch, JAVA_BYTE, 0, frame.length);
        wire.send(scratch.asSlice(0, frame.length));
    }
}

package io.vhostffm.jmh;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.os.PacketSocket;
import io.vhostffm.vhost.os.TapDevice;
import io.vhostffm.vhost.device.userspace.QueuePairConfig;
import io.vhostffm.vhost.device.BackendCapabilities;
import io.vhostffm.vhost.virtio.DeviceStatus;
import io.vhostffm.vhost.virtio.net.NetDeviceListener;
import io.vhostffm.vhost.virtio.net.VirtioNetDevice;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vhost.virtio.net.VirtioNetOptions;
import io.vhostffm.vring.SplitDriverQueue;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import io.vhostffm.vhost.virtio.net.VirtioNetHeader;

/**
 * A fake guest on a real TAP for the datapath benchmarks: memfd guest memory, vring's split
 * driver queues for each queue pair, their kick and call eventfds, a multi-queue TAP with 12-byte
 * vnet headers, an AF_PACKET socket bound to the TAP as the network side, and a virtio-net device
 * model negotiated to DRIVER_OK (MRG_RXBUF, EVENT_IDX). Needs root (TAP, raw socket).
 *
 * <p>Guest-physical layout: region 0 at 0 holds the rings, pair p at {@code p * 0x20000}
 * (rx desc +0, avail +0x1000, used +0x2000; tx +0x10000, +0x11000, +0x12000), 1 MiB for up to
 * 8 pairs and {@code pairs * 0x20000} beyond; region 1 at {@link #buffers()} (1 MiB, or the end of
 * the rings if later) holds pair p's buffers at {@code buffers() + p * PAIR_BUFFERS}:
 * {@value #SIZE} receive slots of {@value #SLOT} bytes, then {@value #SIZE} transmit slots.
 */
final class TapGuest implements AutoCloseable {
    static final int SIZE = 256;
    static final int HEADER = VirtioNetHeader.SIZE;
    static final long SLOT = 4096;
    /** Where the buffers start with up to 8 pairs (more pairs push them past their rings). */
    static final long BUFFERS = 0x100000;
    /** Guest bytes of one pair's rings in region 0. */
    static final long PAIR_RINGS = 0x20000;
    static final long PAIR_BUFFERS = 2 * SIZE * SLOT;
    static final byte[] DEVICE_MAC = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
    /** EtherType of the benchmark's frames (IEEE local experimental), so stray frames are told apart. */
    static final int ETHERTYPE = 0x88b5;
    static final long FEATURES = VirtioFeature.maskOf(VirtioFeature.VERSION_1, VirtioFeature.MAC,
            VirtioFeature.STATUS, VirtioFeature.CTRL_VQ, VirtioFeature.CTRL_RX, VirtioFeature.MQ,
            VirtioFeature.MRG_RXBUF, VirtioFeature.EVENT_IDX);

    final MemfdGuestMemory memory;
    final TapDevice tap;
    final PacketSocket wire;
    final VirtioNetDevice device;
    final List<Pair> pairs = new ArrayList<>();
    final List<String> needsReset = new ArrayList<>();

    private final long buffers;

    TapGuest(int queuePairs) throws NativeCallException, IOException {
        buffers = Math.max(BUFFERS, queuePairs * PAIR_RINGS);
        memory = MemfdGuestMemory.create("bench-guest", List.of(new MemfdGuestMemory.RegionSpec(0, buffers),
                new MemfdGuestMemory.RegionSpec(buffers, queuePairs * PAIR_BUFFERS)));
        TapDevice t = null;
        PacketSocket w = null;
        try {
            t = TapDevice.create("vffb%d", queuePairs, TapDevice.VHOST_FLAGS);
            t.setVnetHeaderSize(HEADER);
            Path knob = Path.of("/proc/sys/net/ipv6/conf", t.name(), "disable_ipv6");
            if (Files.exists(knob)) {
                Files.writeString(knob, "1"); // no router solicitations or MLD reports in the measurement
            }
            t.setLinkUp(true);
            w = PacketSocket.bind(t.name());
            w.setReceiveBuffer(8 << 20);
        } catch (IOException | RuntimeException e) {
            if (w != null) {
                w.close();
            }
            if (t != null) {
                t.close();
            }
            memory.close();
            throw e;
        }
        tap = t;
        wire = w;
        VirtioNetOptions options = VirtioNetOptions.builder(DEVICE_MAC).featureBits(FEATURES)
                .maxQueuePairs(queuePairs).build();
        device = new VirtioNetDevice(options, BackendCapabilities.of("userspace", VirtioFeature.knownMask()),
                new NetDeviceListener() {
                    @Override
                    public void needsReset(String reason) {
                        needsReset.add(reason);
                    }
                });
        device.writeStatus(DeviceStatus.ACKNOWLEDGE);
        device.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
        device.writeDriverFeatures(FEATURES);
        int ok = DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK;
        if (device.writeStatus(ok) != ok) {
            close();
            throw new IllegalStateException("FEATURES_OK refused: " + device.lastError());
        }
        device.writeStatus(ok | DeviceStatus.DRIVER_OK);
        for (int p = 0; p < queuePairs; p++) {
            pairs.add(new Pair(p));
        }
    }

    List<QueuePairConfig> configs() {
        List<QueuePairConfig> out = new ArrayList<>();
        for (Pair p : pairs) {
            out.add(new QueuePairConfig(p.index, p.rx.initialDeviceState(), p.tx.initialDeviceState(), p.rxKick,
                    p.rxCall, p.txKick, p.txCall, tap.queue(p.index)));
        }
        return out;
    }

    /** Guest address of the buffer region (pair 0's first receive slot). */
    long buffers() {
        return buffers;
    }

    /** The host view of guest memory at {@code guestAddress}. */
    MemorySegment at(long guestAddress, long length) {
        int r = memory.findRegion(guestAddress, length);
        if (r < 0) {
            throw new IllegalArgumentException("not in guest memory: 0x" + Long.toHexString(guestAddress));
        }
        return memory.region(r).segment().asSlice(guestAddress - memory.region(r).guestAddress(), length);
    }

    /** An Ethernet frame of {@code length} bytes to {@code destination}, EtherType {@link #ETHERTYPE}. */
    static byte[] frame(byte[] destination, int length) {
        byte[] f = new byte[length];
        System.arraycopy(destination, 0, f, 0, 6);
        f[6] = 0x02; // locally administered source
        f[11] = 1;
        f[12] = (byte) (ETHERTYPE >>> 8);
        f[13] = (byte) ETHERTYPE;
        for (int i = 14; i < length; i++) {
            f[i] = (byte) (i * 13);
        }
        return f;
    }

    /** Whether the frame at {@code frame} carries {@link #ETHERTYPE}. */
    static boolean ours(MemorySegment frame) {
        return (frame.get(JAVA_BYTE, 12) & 0xff) == ETHERTYPE >>> 8 && (frame.get(JAVA_BYTE, 13) & 0xff) == (ETHERTYPE & 0xff);
    }

    @Override
    public void close() {
        for (Pair p : pairs) {
            p.close();
        }
        wire.close();
        tap.close(); // removes the (non-persistent) TAP
        memory.close();
    }

    /** One queue pair's driver side. */
    final class Pair implements AutoCloseable {
        final int index;
        final SplitDriverQueue rx;
        final SplitDriverQueue tx;
        final EventFd rxKick;
        final EventFd rxCall;
        final EventFd txKick;
        final EventFd txCall;
        final long rxSlots;
        final long txSlots;

        Pair(int index) throws NativeCallException {
            this.index = index;
            long rings = index * PAIR_RINGS;
            rx = new SplitDriverQueue(2 * index, memory, SIZE, rings, rings + 0x1000, rings + 0x2000, true, 0);
            tx = new SplitDriverQueue(2 * index + 1, memory, SIZE, rings + 0x10000, rings + 0x11000,
                    rings + 0x12000, true, 0);
            rxKick = EventFd.create("rx kick " + index);
            rxCall = EventFd.create("rx call " + index);
            txKick = EventFd.create("tx kick " + index);
            txCall = EventFd.create("tx call " + index);
            rxSlots = buffers + index * PAIR_BUFFERS;
            txSlots = rxSlots + SIZE * SLOT;
        }

        @Override
        public void close() {
            rxKick.close();
            rxCall.close();
            txKick.close();
            txCall.close();
        }
    }
}

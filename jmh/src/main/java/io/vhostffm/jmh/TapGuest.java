package io.vhostffm.jmh;

import io.vhostffm.testkit.EventFdTransport;
import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.testkit.Frames;
import io.vhostffm.testkit.GuestLayout;
import io.vhostffm.testkit.NetworkSide;
import io.vhostffm.vhost.device.BackendCapabilities;
import io.vhostffm.vhost.device.userspace.QueuePairConfig;
import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.os.PacketSocket;
import io.vhostffm.vhost.os.TapDevice;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vhost.virtio.net.NetDeviceListener;
import io.vhostffm.vhost.virtio.net.VirtioNetDevice;
import io.vhostffm.vhost.virtio.net.VirtioNetOptions;
import io.vhostffm.vring.DriverQueue;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import io.vhostffm.vhost.virtio.net.VirtioNetHeader;

/**
 * The datapath benchmarks' fixture: the testkit's {@link FakeGuest} (its computed layout, memfd
 * memory, split driver queues, a kick and a call eventfd per queue) with a virtio-net device model
 * negotiated to DRIVER_OK (MRG_RXBUF, EVENT_IDX), on a real multi-queue TAP with 12-byte vnet
 * headers and an AF_PACKET socket on it as the network side. The benchmarks drive the driver
 * queues directly (no allocation in the measured loop), on the layout's slots. Needs root.
 */
final class TapGuest implements AutoCloseable {
    static final int SIZE = 256;
    static final int HEADER = FakeGuest.HEADER;
    /** Stride of the layout's receive and transmit slots (a receive buffer of 4032 bytes and its gap). */
    static final long SLOT = GuestLayout.TX_SLOT;
    static final byte[] DEVICE_MAC = FakeGuest.MAC;
    static final long FEATURES = VirtioFeature.maskOf(VirtioFeature.VERSION_1, VirtioFeature.MAC,
            VirtioFeature.STATUS, VirtioFeature.CTRL_VQ, VirtioFeature.CTRL_RX, VirtioFeature.MQ,
            VirtioFeature.MRG_RXBUF, VirtioFeature.EVENT_IDX);

    final GuestLayout layout;
    final MemfdGuestMemory memory;
    final TapDevice tap;
    final PacketSocket wire;
    final VirtioNetDevice device;
    final EventFdTransport transport;
    final FakeGuest driver;
    final List<Pair> pairs = new ArrayList<>();
    final List<String> needsReset = new ArrayList<>();

    TapGuest(int queuePairs) throws NativeCallException, IOException {
        layout = new GuestLayout(GuestLayout.Spec.of(queuePairs).withQueueSize(SIZE)
                .withRxBufferSize((int) SLOT - GuestLayout.RX_PIECE_GAP));
        memory = layout.createMemory("bench-guest");
        TapDevice t = null;
        PacketSocket w = null;
        EventFdTransport e = null;
        try {
            t = TapDevice.create("vffb%d", queuePairs, TapDevice.VHOST_FLAGS);
            t.setVnetHeaderSize(HEADER);
            NetworkSide.quiet(t.name()); // no router solicitations or MLD reports in the measurement
            t.setLinkUp(true);
            w = PacketSocket.bind(t.name());
            w.setReceiveBuffer(8 << 20);
            VirtioNetOptions options = VirtioNetOptions.builder(DEVICE_MAC).featureBits(FEATURES)
                    .maxQueuePairs(queuePairs).build();
            device = new VirtioNetDevice(options, BackendCapabilities.of("userspace", VirtioFeature.knownMask()),
                    new NetDeviceListener() {
                        @Override
                        public void needsReset(String reason) {
                            needsReset.add(reason);
                        }
                    });
            e = new EventFdTransport(device, layout.queueCount());
            driver = FakeGuest.boot(e, memory, layout, FEATURES);
        } catch (IOException | RuntimeException ex) {
            if (e != null) {
                e.close();
            }
            if (w != null) {
                w.close();
            }
            if (t != null) {
                t.close();
            }
            memory.close();
            throw ex;
        }
        tap = t;
        wire = w;
        transport = e;
        for (int p = 0; p < queuePairs; p++) {
            pairs.add(new Pair(p));
        }
    }

    List<QueuePairConfig> configs() {
        return transport.queuePairConfigs(driver, tap);
    }

    /** The host view of guest memory at {@code guestAddress}. */
    MemorySegment at(long guestAddress, long length) {
        return memory.slice(guestAddress, length);
    }

    /** An Ethernet frame of {@code length} bytes to {@code destination}: a numbered frame of stream 0. */
    static byte[] frame(byte[] destination, int length) {
        return Frames.frame(destination, Frames.NETWORK_MAC, 0, 0, length, -1);
    }

    /**
     * An Ethernet frame of {@code length} bytes to {@code destination}: a numbered IPv4/UDP frame
     * of stream 0 whose source port is set by {@code flow}, so that a multi-queue TAP hashes
     * frames of different flows to (possibly) different queues.
     */
    static byte[] flowFrame(byte[] destination, int length, int flow) {
        return Frames.frame(destination, Frames.NETWORK_MAC, 0, 0, length, flow);
    }

    /** Whether the frame at {@code frame} is a numbered one. */
    static boolean ours(MemorySegment frame) {
        return Frames.isNumbered(frame, Math.min(frame.byteSize(), Frames.MIN_LENGTH));
    }

    @Override
    public void close() {
        transport.close();
        wire.close();
        tap.close(); // removes the (non-persistent) TAP
        memory.close();
    }

    /** One queue pair's driver side: the fake guest's queues and eventfds, and where its slots start. */
    final class Pair {
        final int index;
        final DriverQueue rx;
        final DriverQueue tx;
        final EventFd rxKick;
        final EventFd rxCall;
        final EventFd txKick;
        final EventFd txCall;
        final long rxSlots;
        final long txSlots;

        Pair(int index) {
            this.index = index;
            rx = driver.rx(index);
            tx = driver.tx(index);
            rxKick = transport.kickFd(2 * index);
            rxCall = transport.call(2 * index);
            txKick = transport.kickFd(2 * index + 1);
            txCall = transport.call(2 * index + 1);
            rxSlots = layout.rxSlot(index, 0);
            txSlots = layout.txSlot(index, 0);
        }
    }
}

package io.vhostffm.testkit.device.userspace;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.vhostffm.testkit.EventFdTransport;
import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.testkit.Frames;
import io.vhostffm.testkit.GuestLayout;
import io.vhostffm.testkit.NetworkSide;
import io.vhostffm.testkit.RxChainShape;
import io.vhostffm.testkit.RxFrame;
import io.vhostffm.testkit.TxShape;
import io.vhostffm.vhost.device.BackendCapabilities;
import io.vhostffm.vhost.device.userspace.QueuePairConfig;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.TapDevice;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vhost.virtio.net.NetDeviceListener;
import io.vhostffm.vhost.virtio.net.VirtioNetDevice;
import io.vhostffm.vhost.virtio.net.VirtioNetOptions;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * The userspace datapath's surroundings without a runtime: a virtio-net device model at
 * DRIVER_OK, the testkit's {@link FakeGuest} over an {@link EventFdTransport} (1024-byte receive
 * buffers, chains alternately whole and with the header split 7 + rest), a multi-queue TAP with
 * vnet headers, and the TAP's far side as a {@link NetworkSide}.
 */
final class DatapathRig implements AutoCloseable {
    static final long FEATURES = VirtioFeature.maskOf(VirtioFeature.VERSION_1, VirtioFeature.MAC,
            VirtioFeature.STATUS, VirtioFeature.CTRL_VQ, VirtioFeature.CTRL_RX, VirtioFeature.CTRL_RX_EXTRA,
            VirtioFeature.CTRL_VLAN, VirtioFeature.MQ, VirtioFeature.MRG_RXBUF, VirtioFeature.EVENT_IDX,
            VirtioFeature.INDIRECT_DESC);
    static final int RX_BUFFER = 1024;
    static final int TIMEOUT_MILLIS = 60_000;

    final GuestLayout layout;
    final MemfdGuestMemory memory;
    final TapDevice tap;
    final NetworkSide network;
    final VirtioNetDevice device;
    final EventFdTransport transport;
    final FakeGuest guest;
    final List<String> needsResetReasons = new CopyOnWriteArrayList<>();
    private final CountDownLatch needsReset = new CountDownLatch(1);

    DatapathRig(int pairs, boolean eventIdx) throws Exception {
        layout = GuestLayout.of(pairs);
        memory = layout.createMemory("guest");
        TapDevice t = null;
        NetworkSide n = null;
        EventFdTransport e = null;
        try {
            t = TapDevice.create("vffu%d", pairs, TapDevice.VHOST_FLAGS);
            t.setVnetHeaderSize(FakeGuest.HEADER);
            NetworkSide.quiet(t.name()); // before the link is up: no IPv6 chatter counted as traffic
            t.setLinkUp(true);
            n = new NetworkSide(t.name(), pairs, 256);
            VirtioNetOptions options = VirtioNetOptions.builder(FakeGuest.MAC).featureBits(FEATURES)
                    .maxQueuePairs(pairs).build();
            device = new VirtioNetDevice(options, BackendCapabilities.of("userspace", VirtioFeature.knownMask()),
                    new NetDeviceListener() {
                        @Override
                        public void needsReset(String reason) {
                            needsResetReasons.add(reason);
                            needsReset.countDown();
                        }
                    });
            e = new EventFdTransport(device, layout.queueCount());
            guest = FakeGuest.boot(e, memory, layout, FEATURES & ~(eventIdx ? 0 : VirtioFeature.EVENT_IDX.mask()));
            guest.setRxBufferBytes(RX_BUFFER);
            guest.setRxChainShape(RxChainShape.ALTERNATING);
        } catch (Exception | Error x) {
            if (e != null) e.close();
            if (n != null) n.close();
            if (t != null) t.close();
            memory.close();
            throw x;
        }
        tap = t;
        network = n;
        transport = e;
    }

    /** Every pair's datapath configuration, from the state a fresh device starts in. */
    List<QueuePairConfig> configs() {
        return transport.queuePairConfigs(guest, tap);
    }

    /** Waits for the device's needsReset callback. */
    void awaitNeedsReset() throws InterruptedException {
        assertTrue(needsReset.await(TIMEOUT_MILLIS, TimeUnit.MILLISECONDS), "no NEEDS_RESET within " + TIMEOUT_MILLIS + " ms");
    }

    /** A frame size for {@code seq}: minimum, maximum, and random ones between. */
    static int frameSize(Random random, long seq) {
        return switch ((int) (seq % 10)) {
            case 0 -> Frames.MIN_LENGTH;
            case 1 -> 1514;
            default -> Frames.MIN_LENGTH + random.nextInt(1514 - Frames.MIN_LENGTH + 1);
        };
    }

    /**
     * Transmits {@code count} frames of lengths {@code lengths} on each of {@code pairs} (stream =
     * pair, numbered from {@code first}), every chain shape in turn, with at most {@code window}
     * frames between the guest and the network side; checks every frame arrives exactly once,
     * byte for byte, in order per stream, and every chain comes back.
     */
    void transmitAndCheck(int[] pairs, long first, int count, int[] lengths, int window) throws Exception {
        int total = pairs.length * count;
        long[] next = new long[pairs.length];
        long[] expected = new long[pairs.length];
        for (int i = 0; i < pairs.length; i++) {
            next[i] = first;
            expected[i] = first;
        }
        int sent = 0;
        int arrived = 0;
        long deadline = System.nanoTime() + TIMEOUT_MILLIS * 1_000_000L;
        while (arrived < total) {
            boolean progress = false;
            for (int i = 0; i < pairs.length; i++) {
                int p = pairs[i];
                while (next[i] < first + count && sent - arrived < window) {
                    long seq = next[i];
                    byte[] f = Frames.frame(Frames.BROADCAST, FakeGuest.MAC, p, seq, lengths[(int) (seq - first)], -1);
                    if (guest.transmit(p, f, TxShape.cycle(seq)) < 0) {
                        break;
                    }
                    next[i]++;
                    sent++;
                    progress = true;
                }
                guest.kickIfNeeded(2 * p + 1);
                guest.collectTx(p);
            }
            byte[] f;
            while ((f = network.nextFromGuest(0)) != null) {
                arrived += checkTransmitted(f, pairs, expected, first, lengths);
                progress = true;
            }
            if (!progress) {
                f = network.nextFromGuest(20);
                if (f != null) {
                    arrived += checkTransmitted(f, pairs, expected, first, lengths);
                }
            }
            if (System.nanoTime() > deadline) {
                fail("tx stalled: " + sent + " sent, " + arrived + " of " + total + " arrived");
            }
        }
        drainTx(pairs);
    }

    private static int checkTransmitted(byte[] f, int[] pairs, long[] expected, long first, int[] lengths) {
        int stream = Frames.stream(f);
        int i = indexOf(pairs, stream);
        if (i < 0) {
            return 0; // another test's stream on this TAP: none here
        }
        long seq = Frames.sequence(f);
        assertEquals(expected[i], seq, "stream " + stream + ": next frame in order, once");
        assertEquals(lengths[(int) (seq - first)], f.length, "stream " + stream + " frame " + seq + " length");
        assertEquals(null, Frames.damage(f));
        expected[i]++;
        return 1;
    }

    private static int indexOf(int[] values, int value) {
        for (int i = 0; i < values.length; i++) {
            if (values[i] == value) {
                return i;
            }
        }
        return -1;
    }

    /** Waits until every transmit chain of {@code pairs} came back used. */
    void drainTx(int... pairs) throws Exception {
        long deadline = System.nanoTime() + TIMEOUT_MILLIS * 1_000_000L;
        for (int p : pairs) {
            while (guest.txInFlight(p) > 0) {
                if (guest.collectTx(p) == 0) {
                    guest.awaitUsed(2 * p + 1, 20);
                }
                if (System.nanoTime() > deadline) {
                    fail(guest.txInFlight(p) + " tx chains of pair " + p + " never completed");
                }
            }
        }
    }

    /**
     * Sends {@code frames} from the network side, at most {@code window} ahead of what the guest
     * received, and collects the frames arriving in the guest until {@code expect} numbered ones
     * came, reposting buffers as it goes.
     *
     * @return the numbered frames received, in the order the guest collected them
     */
    List<RxFrame> receive(List<byte[]> frames, int window, int expect) throws Exception {
        List<RxFrame> got = new ArrayList<>();
        List<RxFrame> batch = new ArrayList<>();
        int injected = 0;
        int dropped = frames.size() - expect; // frames the device is to filter out
        long deadline = System.nanoTime() + TIMEOUT_MILLIS * 1_000_000L;
        while (got.size() < expect) {
            while (injected < frames.size() && injected - got.size() - dropped < window) {
                network.send(frames.get(injected++));
            }
            batch.clear();
            guest.receive(batch);
            for (RxFrame r : batch) {
                if (Frames.isNumbered(r.frame())) {
                    got.add(r);
                }
            }
            if (batch.isEmpty()) {
                guest.awaitCall(20, guest.rxQueues());
            }
            if (System.nanoTime() > deadline) {
                fail("rx stalled: " + got.size() + " of " + expect + " received, " + injected + " injected");
            }
        }
        return got;
    }

    @Override
    public void close() {
        transport.close();
        network.close();
        tap.close();
        memory.close();
    }
}

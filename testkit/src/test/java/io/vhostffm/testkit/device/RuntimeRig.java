package io.vhostffm.testkit.device;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.testkit.GuestLayout;
import io.vhostffm.testkit.GuestTransport;
import io.vhostffm.testkit.NetworkSide;
import io.vhostffm.testkit.ResourceLedger;
import io.vhostffm.vhost.device.NetBackend;
import io.vhostffm.vhost.device.NetDeviceRuntime;
import io.vhostffm.vhost.device.kernel.VhostNetBackend;
import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.TapDevice;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vhost.virtio.net.VirtioNetCtrl;
import io.vhostffm.vhost.virtio.net.VirtioNetOptions;
import java.util.Arrays;

/**
 * A device under test as a hypervisor runs it: a {@link NetDeviceRuntime} with a backend on a new
 * multi-queue TAP, over memfd guest memory laid out by a {@link GuestLayout}, driven by the
 * testkit's {@link FakeGuest} (booted to DRIVER_OK, 256-byte mergeable receive buffers) with the
 * TAP's far side as a {@link NetworkSide}.
 */
final class RuntimeRig implements AutoCloseable {
    /** Device-writable bytes of each receive chain: small, so most frames span several. */
    static final int RX_BUFFER = 256;
    /** How long a test waits for an event of the device (NEEDS_RESET, a thread's end). */
    static final int EVENT_TIMEOUT_MILLIS = 20_000;

    final GuestLayout layout;
    final MemfdGuestMemory memory;
    final TapDevice tap;
    final NetBackend backend;
    final NetDeviceRuntime device;
    final NetworkSide network;
    /** The features the driver asks for when it boots (it acks those the device offers). */
    final long wanted;
    FakeGuest guest; // replaced when the driver resets the device and boots again

    /** Opens a backend on a TAP. */
    interface BackendOpener {
        NetBackend open(TapDevice tap) throws Exception;
    }

    private RuntimeRig(int pairs, BackendOpener open, long refused, VirtioFeature... extra) throws Exception {
        layout = GuestLayout.of(pairs);
        memory = layout.createMemory("guest");
        TapDevice t = null;
        NetBackend b = null;
        NetDeviceRuntime d = null;
        NetworkSide n = null;
        try {
            t = TapDevice.create("vffk%d", pairs, TapDevice.VHOST_FLAGS);
            NetworkSide.quiet(t.name());
            t.setLinkUp(true);
            b = open.open(t);
            VirtioFeature[] base = {VirtioFeature.MRG_RXBUF, VirtioFeature.EVENT_IDX, VirtioFeature.INDIRECT_DESC,
                    VirtioFeature.CTRL_VQ, VirtioFeature.CTRL_RX, VirtioFeature.MAC, VirtioFeature.STATUS};
            VirtioFeature[] all = Arrays.copyOf(base, base.length + extra.length + 1);
            System.arraycopy(extra, 0, all, base.length, extra.length);
            all[all.length - 1] = pairs > 1 ? VirtioFeature.MQ : VirtioFeature.MAC;
            VirtioNetOptions options = VirtioNetOptions.builder(FakeGuest.MAC).features(all).maxQueuePairs(pairs).build();
            d = new NetDeviceRuntime(options, memory, b);
            n = new NetworkSide(t.name(), pairs, 256);
            wanted = (FakeGuest.FEATURES | VirtioFeature.maskOf(extra)) & ~refused;
            guest = FakeGuest.boot(GuestTransport.of(d), memory, layout, wanted);
            guest.setRxBufferBytes(RX_BUFFER);
        } catch (Exception | Error e) {
            if (n != null) n.close();
            if (d != null) d.close();
            if (b != null) b.close();
            if (t != null) t.close();
            memory.close();
            throw e;
        }
        tap = t;
        backend = b;
        device = d;
        network = n;
    }

    /** A guest on a new TAP with kernel vhost-net. */
    static RuntimeRig kernel(int pairs, VirtioFeature... extraFeatures) throws Exception {
        return new RuntimeRig(pairs, VhostNetBackend::open, 0, extraFeatures);
    }

    /** A guest on a new TAP with the backend {@code open} makes on it. */
    static RuntimeRig on(int pairs, BackendOpener open, VirtioFeature... extraFeatures) throws Exception {
        return new RuntimeRig(pairs, open, 0, extraFeatures);
    }

    /** As {@link #on(int, BackendOpener, VirtioFeature...)}, the driver not acking {@code refusedFeatures} (a mask). */
    static RuntimeRig on(int pairs, BackendOpener open, long refusedFeatures, VirtioFeature... extraFeatures)
            throws Exception {
        return new RuntimeRig(pairs, open, refusedFeatures, extraFeatures);
    }

    /** VQ_PAIRS_SET {@code n}; fails unless the device answers OK. */
    void setQueuePairs(int n) throws Exception {
        assertEquals(VirtioNetCtrl.OK, guest.setQueuePairs(n), () -> "VQ_PAIRS_SET " + n + ": "
                + device.model().lastError());
    }

    /**
     * The driver resets the device (status 0) and boots it again with the same features: fresh
     * rings, receive buffers posted.
     */
    void resetAndBoot() throws Exception {
        device.writeStatus(0);
        guest = FakeGuest.boot(GuestTransport.of(device), memory, layout, wanted);
        guest.setRxBufferBytes(RX_BUFFER);
        guest.postRxBuffers();
    }

    /** The control queue's index. */
    int controlQueue() {
        return layout.controlQueue();
    }

    /**
     * Waits for the device's config interrupt (it follows NEEDS_RESET) and checks the status says
     * NEEDS_RESET. The interrupt stays readable.
     */
    void awaitNeedsReset() throws Exception {
        EventFd config = device.configInterrupt();
        assertTrue(config.poll(EVENT_TIMEOUT_MILLIS), "no config interrupt within " + EVENT_TIMEOUT_MILLIS + " ms");
        assertTrue(guest.needsReset(), () -> "config interrupt without NEEDS_RESET: status " + guest.status());
    }

    /**
     * Waits until every thread of the userspace datapath on this rig's TAP has ended (after bad
     * guest input the datapath stops itself from one of its own threads).
     */
    void awaitDatapathThreadsEnd() throws InterruptedException {
        awaitThreadsEnd("(tap " + tap.name());
    }

    /**
     * Waits, with a deadline, for the end of a userspace datapath worker serving pair {@code pair}
     * of {@code rig}'s TAP alone (a pair stopped on bad guest input takes such a thread with it);
     * a worker that also serves other pairs goes on serving them, and must still run.
     */
    static void awaitPairLeftItsWorker(RuntimeRig rig, int pair) throws InterruptedException {
        String marker = "userspace datapath pair " + pair + " (tap " + rig.tap.name() + " ";
        String shared = "userspace datapath pair " + pair + " (tap " + rig.tap.name() + " queue " + pair + "), ";
        long deadline = System.nanoTime() + EVENT_TIMEOUT_MILLIS * 1_000_000L;
        for (Thread t : ResourceLedger.liveThreads()) {
            String name = t.getName();
            boolean sharedWorker = name.contains(", pair " + pair + " (tap " + rig.tap.name() + " ") || name.contains(shared);
            if (sharedWorker) {
                assertTrue(t.isAlive(), () -> name + " ended: it serves other pairs");
            } else if (name.contains(marker)) {
                long left = Math.max(1, (deadline - System.nanoTime()) / 1_000_000L);
                t.join(left);
                assertTrue(!t.isAlive(), () -> name + " still runs after " + EVENT_TIMEOUT_MILLIS + " ms");
            }
        }
    }

    /** Joins, with a deadline, every live thread whose name contains {@code marker}. */
    static void awaitThreadsEnd(String marker) throws InterruptedException {
        long deadline = System.nanoTime() + EVENT_TIMEOUT_MILLIS * 1_000_000L;
        for (Thread t : ResourceLedger.liveThreads()) {
            if (t.getName().contains(marker)) {
                long left = Math.max(1, (deadline - System.nanoTime()) / 1_000_000L);
                t.join(left);
                assertTrue(!t.isAlive(), () -> t.getName() + " still runs after " + EVENT_TIMEOUT_MILLIS + " ms");
            }
        }
    }

    @Override
    public void close() {
        network.close();
        device.close();
        backend.close();
        tap.close();
        memory.close();
    }
}

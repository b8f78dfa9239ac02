package com.example.firstdevice;

import static io.vhostffm.vhost.virtio.DeviceStatus.ACKNOWLEDGE;
import static io.vhostffm.vhost.virtio.DeviceStatus.DRIVER;
import static io.vhostffm.vhost.virtio.DeviceStatus.DRIVER_OK;
import static io.vhostffm.vhost.virtio.DeviceStatus.FEATURES_OK;

import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.testkit.GuestLayout;
import io.vhostffm.testkit.GuestTransport;
import io.vhostffm.testkit.NetworkSide;
import io.vhostffm.testkit.StreamCheck;
import io.vhostffm.testkit.Traffic;
import io.vhostffm.vhost.device.NetBackend;
import io.vhostffm.vhost.device.NetDeviceRuntime;
import io.vhostffm.vhost.device.userspace.UserspaceNetBackend;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.TapDevice;
import io.vhostffm.vhost.virtio.VirtioDevice;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vhost.virtio.net.VirtioNetOptions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A virtio-net device with two queue pairs on memfd guest memory and a multi-queue TAP, served by
 * the Java userspace datapath, driven the way a hypervisor's virtio-pci or virtio-mmio transport
 * drives it. A fake guest stands for the guest driver's rings. Frames go both ways, the device
 * switches to a fresh backend in the middle, and every frame must arrive exactly once, in order.
 * Exit status 0 when they did, 1 with the reason otherwise. Needs root (TAP).
 */
public final class FirstDevice {
    private static final byte[] MAC = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
    private static final int PAIRS = 2;
    private static final long FRAMES_PER_PAIR = 100;
    private static final Duration TIMEOUT = Duration.ofSeconds(30);

    private FirstDevice() {}

    public static void main(String[] args) throws Exception {
        List<String> problems = run();
        if (!problems.isEmpty()) {
            problems.forEach(p -> System.out.println("first-device: " + p));
            System.exit(1);
        }
        System.out.println("first-device: " + 2 * PAIRS * FRAMES_PER_PAIR + " frames each way across a backend"
                + " switch, every one exactly once and in order");
    }

    static List<String> run() throws Exception {
        GuestLayout layout = GuestLayout.of(PAIRS); // where the guest puts its rings and buffers
        try (MemfdGuestMemory memory = layout.createMemory("first-device guest");
                TapDevice tap = TapDevice.create("first%d", PAIRS, TapDevice.VHOST_FLAGS)) {
            NetworkSide.quiet(tap.name()); // no IPv6 neighbour discovery frames from the host
            tap.setLinkUp(true);
            try (NetworkSide network = new NetworkSide(tap.name(), PAIRS, layout.spec().queueSize())) {
                return exercise(layout, memory, tap, network);
            }
        }
    }

    private static List<String> exercise(GuestLayout layout, MemfdGuestMemory memory, TapDevice tap,
            NetworkSide network) throws Exception {
        VirtioNetOptions options = VirtioNetOptions.builder(MAC)
                .features(VirtioFeature.VERSION_1, VirtioFeature.MAC, VirtioFeature.STATUS, VirtioFeature.CTRL_VQ,
                        VirtioFeature.MQ, VirtioFeature.MRG_RXBUF, VirtioFeature.EVENT_IDX)
                .maxQueuePairs(PAIRS).build();
        NetBackend backend = UserspaceNetBackend.open(tap); // the TAP stays ours; the backend is ours to close
        try (NetDeviceRuntime runtime = new NetDeviceRuntime(options, memory, backend)) {
            VirtioDevice device = runtime; // what the transport calls
            FakeGuest guest = bringUp(device, memory, layout);

            guest.setQueuePairs(PAIRS); // VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET over the control queue
            guest.postRxBuffers();
            exchange(guest, network, 1);

            NetBackend next = UserspaceNetBackend.open(tap);
            runtime.switchBackend(next).close(); // live; the device no longer uses the old one
            backend = next;
            exchange(guest, network, 2);

            List<String> problems = new ArrayList<>();
            for (int p = 0; p < PAIRS; p++) {
                long total = 2 * FRAMES_PER_PAIR;
                // The TAP picks a receive queue per flow and learns it from the guest's transmit:
                // a stream may move between queues, so order holds per queue it arrived on.
                check(problems, StreamCheck.exactlyOnceInOrderPerQueue("network -> guest, stream " + p,
                        guest.received(p), guest.arrivedOn(p), total));
                check(problems, network.checkFromGuest("guest -> network, pair " + p, p, total));
            }
            runtime.lastError().ifPresent(e -> problems.add("device error: " + e));
            return problems;
        } finally {
            backend.close(); // after the runtime stopped using it
        }
    }

    /**
     * The guest driver's register accesses, as a transport forwards them: ACKNOWLEDGE, DRIVER,
     * the feature words, FEATURES_OK, each virtqueue's size, addresses and enable, DRIVER_OK.
     */
    private static FakeGuest bringUp(VirtioDevice device, MemfdGuestMemory memory, GuestLayout layout) {
        device.writeStatus(ACKNOWLEDGE | DRIVER);
        long offered = Integer.toUnsignedLong(device.deviceFeatures(0)) | (long) device.deviceFeatures(1) << 32;
        long acked = offered & VirtioFeature.maskOf(VirtioFeature.VERSION_1, VirtioFeature.MAC,
                VirtioFeature.CTRL_VQ, VirtioFeature.MQ, VirtioFeature.MRG_RXBUF, VirtioFeature.EVENT_IDX);
        device.writeDriverFeatures(0, (int) acked);
        device.writeDriverFeatures(1, (int) (acked >>> 32));
        int featuresOk = ACKNOWLEDGE | DRIVER | FEATURES_OK;
        if (device.writeStatus(featuresOk) != featuresOk) { // the device refuses what it cannot do
            throw new IllegalStateException("FEATURES_OK refused: " + device.lastError().orElse("?"));
        }
        // The driver lays out its rings before it tells the device where they are.
        FakeGuest guest = FakeGuest.attach(GuestTransport.of(device), memory, layout, acked);
        for (int q = 0; q < device.queueCount(); q++) { // rx0, tx0, rx1, tx1, control
            device.setQueueSize(q, layout.queueSize(q));
            device.setQueueDescTable(q, layout.descAddress(q));
            device.setQueueDriverArea(q, layout.driverAreaAddress(q));
            device.setQueueDeviceArea(q, layout.deviceAreaAddress(q));
            device.enableQueue(q); // read-only from here until a reset
        }
        if ((device.writeStatus(featuresOk | DRIVER_OK) & DRIVER_OK) == 0) {
            throw new IllegalStateException("DRIVER_OK refused: " + device.lastError().orElse("?"));
        }
        return guest;
    }

    /** Frames each way until every pair has moved {@code rounds * FRAMES_PER_PAIR} in each direction. */
    private static void exchange(FakeGuest guest, NetworkSide network, int rounds) throws Exception {
        long[] totals = new long[PAIRS];
        Arrays.fill(totals, rounds * FRAMES_PER_PAIR);
        Traffic.run(guest, network, totals, totals, TIMEOUT);
    }

    private static void check(List<String> problems, String problem) {
        if (problem != null) {
            problems.add(problem);
        }
    }
}

package io.vhostffm.testkit;

import io.vhostffm.vhost.device.BackendListener;
import io.vhostffm.vhost.device.BackendStart;
import io.vhostffm.vhost.device.kernel.QuickstartFloor;
import io.vhostffm.vhost.device.kernel.VhostNetBackend;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.TapDevice;
import io.vhostffm.vhost.virtio.net.NetDeviceListener;
import io.vhostffm.vhost.virtio.net.VirtioNetDevice;
import io.vhostffm.vhost.virtio.net.VirtioNetOptions;
import io.vhostffm.vring.QueuePosition;
import java.io.IOException;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * The same-run baseline of a kernel downtime measurement: the floor of a quickstart
 * ({@link QuickstartFloor}) timed on prestarted vhost-net devices of its own in this process,
 * shaped as the measured device is (its {@link GuestLayout}, its features). A fake guest booted
 * on a device model of its own, the memory a memfd, the TAP a real multi-queue TAP (link down:
 * no frame moves), a {@link VhostNetBackend} opened on it once. Each round prestarts the backend
 * (untimed), times the floor's ioctls alone with {@link System#nanoTime()}, then unbinds and
 * stops (untimed); the next round starts from the positions the stop read back.
 */
public final class QuickstartFloorTiming implements AutoCloseable {
    private final MemfdGuestMemory memory;
    private final TapDevice tap;
    private final EventFdTransport transport;
    private final VhostNetBackend backend;
    private final QuickstartFloor floor;
    private final List<String> badGuestInput = new CopyOnWriteArrayList<>();
    private BackendStart start;

    private QuickstartFloorTiming(MemfdGuestMemory memory, TapDevice tap, EventFdTransport transport,
            VhostNetBackend backend, FakeGuest guest, long ackedFeatures) {
        this.memory = memory;
        this.tap = tap;
        this.transport = transport;
        this.backend = backend;
        this.floor = new QuickstartFloor(backend, guest.pairs());
        BackendListener listener = (queue, reason) -> badGuestInput.add("virtqueue " + queue + ": " + reason);
        this.start = new BackendStart(memory, ackedFeatures, transport.queueBindings(guest), guest.pairs(), 0,
                null, listener);
    }

    /**
     * A device of {@code layout}'s shape, its guest acking {@code features} of what the kernel's
     * vhost-net offers, on a new TAP named {@code vffmqf<n>}. Needs root and {@code /dev/vhost-net}.
     */
    public static QuickstartFloorTiming open(GuestLayout layout, long features) throws IOException {
        int pairs = layout.pairs();
        MemfdGuestMemory memory = layout.createMemory("quickstart-floor");
        TapDevice tap = null;
        VhostNetBackend backend = null;
        EventFdTransport transport = null;
        try {
            tap = TapDevice.create("vffmqf%d", pairs, TapDevice.VHOST_FLAGS);
            backend = VhostNetBackend.open(tap);
            VirtioNetOptions options = VirtioNetOptions.builder(FakeGuest.MAC).featureBits(features)
                    .maxQueuePairs(pairs).build();
            VirtioNetDevice model = new VirtioNetDevice(options, backend.capabilities(), new NetDeviceListener() {});
            transport = new EventFdTransport(model, layout.queueCount());
            FakeGuest guest = FakeGuest.boot(transport, memory, layout, features);
            return new QuickstartFloorTiming(memory, tap, transport, backend, guest, model.driverFeatures());
        } catch (IOException | RuntimeException e) {
            if (backend != null) {
                backend.close();
            }
            if (transport != null) {
                transport.close();
            }
            if (tap != null) {
                tap.close();
            }
            memory.close();
            throw e;
        }
    }

    /** The pairs timed. */
    public int pairs() {
        return floor.pairs();
    }

    /**
     * {@code rounds} quickstart floors, each on a fresh prestart; returns each round's time in ns
     * (the floor's ioctls only).
     *
     * @throws IllegalStateException when the backend reported bad guest input (the fixture is broken)
     */
    public long[] time(int rounds) throws IOException {
        long[] nanos = new long[rounds];
        for (int r = 0; r < rounds; r++) {
            backend.prestart(start);
            List<QueuePosition> finals = start.positions();
            long t0 = System.nanoTime();
            try {
                floor.issue(finals);
                nanos[r] = System.nanoTime() - t0;
            } finally {
                floor.unbind();
                start = start.withPositions(backend.stop());
            }
        }
        if (!badGuestInput.isEmpty()) {
            throw new IllegalStateException("vhost-net reported bad guest input: " + badGuestInput);
        }
        return nanos;
    }

    /** Closes the backend, the eventfds, the TAP (removed) and the memory. */
    @Override
    public void close() {
        backend.close();
        transport.close();
        tap.close();
        memory.close();
    }
}

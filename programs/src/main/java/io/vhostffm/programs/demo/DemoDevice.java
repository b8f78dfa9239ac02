package io.vhostffm.programs.demo;

import io.vhostffm.migration.net.QueueLayout;
import io.vhostffm.migration.net.QueueLayouts;
import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.testkit.GuestLayout;
import io.vhostffm.vhost.device.BackendCapabilities;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vhost.virtio.net.VirtioNetOptions;
import java.util.ArrayList;
import java.util.List;

/** The device both ends of the demo build: same options, same guest memory layout. */
public final class DemoDevice {
    private DemoDevice() {}

    /**
     * The features the demo's guest acks by default (split rings, no indirect tables); the device
     * offers {@link #OFFERED}.
     */
    public static final long FEATURES = VirtioFeature.maskOf(VirtioFeature.VERSION_1, VirtioFeature.MAC,
            VirtioFeature.STATUS, VirtioFeature.CTRL_VQ, VirtioFeature.CTRL_RX, VirtioFeature.CTRL_VLAN,
            VirtioFeature.CTRL_MAC_ADDR, VirtioFeature.CTRL_GUEST_OFFLOADS, VirtioFeature.MQ,
            VirtioFeature.MRG_RXBUF, VirtioFeature.EVENT_IDX, VirtioFeature.CSUM, VirtioFeature.GUEST_CSUM);

    /**
     * What the device may offer: {@link #FEATURES} and packed rings, which a guest gets only when
     * it asks for them, and only where the backends carry them (not kernel vhost-net).
     */
    public static final long OFFERED = FEATURES | VirtioFeature.RING_PACKED.mask();

    /**
     * The virtio-net options for {@code pairs} queue pairs (both ends must agree): {@link #OFFERED}
     * less packed rings when {@code backends} have none.
     */
    public static VirtioNetOptions options(int pairs, BackendCapabilities backends) {
        long offer = backends.packedRings() ? OFFERED : OFFERED & ~VirtioFeature.RING_PACKED.mask();
        return VirtioNetOptions.builder(FakeGuest.MAC).featureBits(offer).maxQueuePairs(pairs).build();
    }

    /** The guest's layout for {@code pairs} pairs (both ends compute the same). */
    public static GuestLayout layout(int pairs) {
        return GuestLayout.of(pairs);
    }

    /** Guest memory for {@code layout}: rings low, buffers high, a hole between. */
    public static MemfdGuestMemory memory(GuestLayout layout) throws NativeCallException {
        return layout.createMemory("guest");
    }

    /** The transport's queue registers as the hypervisor knows them (the migration's queue layout section). */
    public static QueueLayouts queueLayouts(GuestLayout layout, boolean eventIdx) {
        return queueLayouts(layout, eventIdx, false);
    }

    /** As above, the rings packed or split as the driver acknowledged. */
    public static QueueLayouts queueLayouts(GuestLayout layout, boolean eventIdx, boolean packed) {
        List<QueueLayout> data = new ArrayList<>();
        for (int q = 0; q < 2 * layout.pairs(); q++) {
            data.add(queueLayout(layout, q, eventIdx, packed));
        }
        return new QueueLayouts(data, List.of(queueLayout(layout, layout.controlQueue(), eventIdx, packed)));
    }

    private static QueueLayout queueLayout(GuestLayout layout, int q, boolean eventIdx, boolean packed) {
        return new QueueLayout(q, layout.queueSize(q), layout.descAddress(q), layout.driverAreaAddress(q),
                layout.deviceAreaAddress(q), eventIdx, packed);
    }
}

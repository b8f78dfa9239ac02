package io.vhostffm.programs.demo;

import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.virtio.net.VirtioNetOptions;
import java.util.List;

/** The device both ends of the demo build: same options, same guest memory layout. */
public final class DemoDevice {
    private DemoDevice() {}

    /** The virtio-net options for {@code pairs} queue pairs (both ends must agree). */
    public static VirtioNetOptions options(int pairs) {
        return VirtioNetOptions.builder(FakeGuest.MAC).featureBits(FakeGuest.WANTED).maxQueuePairs(pairs).build();
    }

    /** Guest memory for a {@link FakeGuest}: rings low, buffers high, a hole between. */
    public static MemfdGuestMemory memory() throws NativeCallException {
        return MemfdGuestMemory.create("guest", List.of(
                new MemfdGuestMemory.RegionSpec(FakeGuest.RING_BASE, FakeGuest.RING_REGION_SIZE),
                new MemfdGuestMemory.RegionSpec(FakeGuest.BUFFER_BASE, FakeGuest.BUFFER_REGION_SIZE)));
    }
}

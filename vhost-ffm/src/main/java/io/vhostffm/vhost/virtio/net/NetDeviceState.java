package io.vhostffm.vhost.virtio.net;

import java.util.Objects;

/**
 * The whole state of a virtio-net device model, as {@link VirtioNetDevice#snapshot()} takes it and
 * {@link VirtioNetDevice#restore} checks and loads it: immutable, made of primitives, {@code
 * byte[]}/{@code long[]} arrays (compared by content) and nested records, so that a codec can walk
 * the record components generically.
 *
 * @param virtio status, features, config space
 * @param net the virtio-net specific state
 */
public record NetDeviceState(VirtioState virtio, VirtioNetState net) {
    public NetDeviceState {
        Objects.requireNonNull(virtio, "virtio");
        Objects.requireNonNull(net, "net");
    }
}

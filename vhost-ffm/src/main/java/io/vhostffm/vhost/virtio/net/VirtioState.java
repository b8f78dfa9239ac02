package io.vhostffm.vhost.virtio.net;

import io.vhostffm.vhost.virtio.DeviceStatus;

import io.vhostffm.vhost.virtio.VirtioFeature;

import java.util.Arrays;
import java.util.HexFormat;
import java.util.Objects;

/**
 * The generic virtio part of a device's state: status, features and config space. Queue state
 * belongs to vring and is carried next to this by migration.
 *
 * <p>A plain carrier for migration: the constructor checks only for null; {@link
 * VirtioNetDevice#restore} checks the values.
 *
 * @param status the device status byte ({@link DeviceStatus})
 * @param offeredFeatures the features the device offered
 * @param ackedFeatures the features the driver acknowledged (valid once FEATURES_OK is set)
 * @param config the config space bytes, {@link VirtioNetConfigSpace#SIZE} of them
 */
public record VirtioState(int status, long offeredFeatures, long ackedFeatures, byte[] config) implements ContentComparable {

    public VirtioState {
        config = Objects.requireNonNull(config, "config").clone();
    }

    @Override
    public byte[] config() {
        return config.clone();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof VirtioState v && status == v.status && offeredFeatures == v.offeredFeatures
                && ackedFeatures == v.ackedFeatures && Arrays.equals(config, v.config);
    }

    @Override
    public int hashCode() {
        return Objects.hash(status, offeredFeatures, ackedFeatures, Arrays.hashCode(config));
    }

    @Override
    public String toString() {
        return "VirtioState[status=" + DeviceStatus.describe(status) + ", offeredFeatures="
                + VirtioFeature.describe(offeredFeatures) + ", ackedFeatures="
                + VirtioFeature.describe(ackedFeatures) + ", config=" + HexFormat.of().formatHex(config) + "]";
    }
}

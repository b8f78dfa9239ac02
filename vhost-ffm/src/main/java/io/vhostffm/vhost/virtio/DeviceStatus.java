package io.vhostffm.vhost.virtio;

import io.vhostffm.vhost.virtio.net.VirtioNetDevice;

import java.util.ArrayList;
import java.util.List;

/**
 * The device status field's bits (virtio 1.3, section 2.1). The rules for moving between them live
 * in {@link VirtioNetDevice#writeStatus(int)}.
 */
public final class DeviceStatus {
    /** The guest OS has found the device. */
    public static final int ACKNOWLEDGE = 1;
    /** The guest OS knows how to drive the device. */
    public static final int DRIVER = 2;
    /** The driver is set up and ready to drive the device. */
    public static final int DRIVER_OK = 4;
    /** The driver has acknowledged the features it understands; negotiation is complete. */
    public static final int FEATURES_OK = 8;
    /** The device has hit an error it cannot recover from without a reset. Set by the device only. */
    public static final int DEVICE_NEEDS_RESET = 64;
    /** The driver has given up on the device. */
    public static final int FAILED = 128;

    /** Every bit the spec defines. */
    public static final int ALL_BITS = ACKNOWLEDGE | DRIVER | DRIVER_OK | FEATURES_OK | DEVICE_NEEDS_RESET | FAILED;

    private DeviceStatus() {}

    /** Names of the set bits, e.g. {@code ACKNOWLEDGE|DRIVER}; {@code 0 (reset)} for zero. */
    public static String describe(int status) {
        if (status == 0) {
            return "0 (reset)";
        }
        List<String> names = new ArrayList<>();
        if ((status & ACKNOWLEDGE) != 0) names.add("ACKNOWLEDGE");
        if ((status & DRIVER) != 0) names.add("DRIVER");
        if ((status & FEATURES_OK) != 0) names.add("FEATURES_OK");
        if ((status & DRIVER_OK) != 0) names.add("DRIVER_OK");
        if ((status & DEVICE_NEEDS_RESET) != 0) names.add("DEVICE_NEEDS_RESET");
        if ((status & FAILED) != 0) names.add("FAILED");
        int unknown = status & ~ALL_BITS;
        if (unknown != 0) names.add(String.format("unknown 0x%x", unknown));
        return String.join("|", names);
    }
}

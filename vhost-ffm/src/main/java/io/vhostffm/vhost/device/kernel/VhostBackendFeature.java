package io.vhostffm.vhost.device.kernel;

import io.vhostffm.vhost.internal.NamedBits;

import java.util.List;
import java.util.Set;

/**
 * vhost backend feature bits (VHOST_GET/SET_BACKEND_FEATURES), by bit number as {@code <linux/vhost_types.h>} defines them. The ABI test checks every value against {@link #cName()}'s in the headers.
 */
public enum VhostBackendFeature {
    IOTLB_MSG_V2(1, "VHOST_BACKEND_F_IOTLB_MSG_V2"),
    IOTLB_BATCH(2, "VHOST_BACKEND_F_IOTLB_BATCH"),
    IOTLB_ASID(3, "VHOST_BACKEND_F_IOTLB_ASID"),
    SUSPEND(4, "VHOST_BACKEND_F_SUSPEND");

    private final int bit;
    private final String cName;

    VhostBackendFeature(int bit, String cName) {
        this.bit = bit;
        this.cName = cName;
    }

    /** The bit number. */
    public int bit() {
        return bit;
    }

    /** The kernel header macro. */
    public String cName() {
        return cName;
    }

    /** The constants set in {@code value}. */
    public static Set<VhostBackendFeature> decode(long value) {
        return NamedBits.decode(VhostBackendFeature.class, VhostBackendFeature::mask, value);
    }

    /** Names of what is set in {@code value}, unknown bits as hex. */
    public static List<String> names(long value) {
        return NamedBits.names(VhostBackendFeature.class, VhostBackendFeature::mask, value);
    }

    /** The combined mask of a set. */
    public static long encode(Set<VhostBackendFeature> set) {
        return NamedBits.encode(set, VhostBackendFeature::mask);
    }

    /** The mask, {@code 1L << bit}. */
    public long mask() {
        return 1L << bit;
    }
}

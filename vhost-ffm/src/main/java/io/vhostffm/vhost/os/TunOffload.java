package io.vhostffm.vhost.os;

import io.vhostffm.vhost.internal.NamedBits;

import java.util.List;
import java.util.Set;

/**
 * TAP offloads for TUNSETOFFLOAD ({@code TUN_F_*} of {@code <linux/if_tun.h>}): what the TAP may
 * hand us unchecksummed or unsegmented. The one definition of these flags in the library; the ABI
 * test checks every value against {@link #cName()}'s in the headers. Which of them a guest's
 * virtio-net offloads call for is {@code io.vhostffm.vhost.virtio.net.TunOffloads}' job.
 */
public enum TunOffload {
    CSUM(0x1, "TUN_F_CSUM"),
    TSO4(0x2, "TUN_F_TSO4"),
    TSO6(0x4, "TUN_F_TSO6"),
    TSO_ECN(0x8, "TUN_F_TSO_ECN"),
    UFO(0x10, "TUN_F_UFO"),
    USO4(0x20, "TUN_F_USO4"),
    USO6(0x40, "TUN_F_USO6");

    private final int value;
    private final String cName;

    TunOffload(int value, String cName) {
        this.value = value;
        this.cName = cName;
    }

    /** The flag value. */
    public int value() {
        return value;
    }

    /** The kernel header macro. */
    public String cName() {
        return cName;
    }

    /** The constants set in {@code value}. */
    public static Set<TunOffload> decode(long value) {
        return NamedBits.decode(TunOffload.class, TunOffload::mask, value);
    }

    /** Names of what is set in {@code value}, unknown bits as hex. */
    public static List<String> names(long value) {
        return NamedBits.names(TunOffload.class, TunOffload::mask, value);
    }

    /** The combined mask of a set. */
    public static long encode(Set<TunOffload> set) {
        return NamedBits.encode(set, TunOffload::mask);
    }

    /** The flag as a mask. */
    public long mask() {
        return value & 0xffffffffL;
    }
}

package io.vhostffm.vhost.os;

import io.vhostffm.vhost.internal.NamedBits;

import java.util.List;
import java.util.Set;

/**
 * TUN/TAP interface flags of {@code <linux/if_tun.h>}: what TUNSETIFF asks for, TUNGETIFF reports and TUNGETFEATURES offers. (IFF_NOFILTER has the value of IFF_NO_PI and is left out.) The ABI test checks every value against {@link #cName()}'s in the headers.
 */
public enum TunFlag {
    TUN(0x1, "IFF_TUN"),
    TAP(0x2, "IFF_TAP"),
    NAPI(0x10, "IFF_NAPI"),
    NAPI_FRAGS(0x20, "IFF_NAPI_FRAGS"),
    NO_CARRIER(0x40, "IFF_NO_CARRIER"),
    MULTI_QUEUE(0x100, "IFF_MULTI_QUEUE"),
    ATTACH_QUEUE(0x200, "IFF_ATTACH_QUEUE"),
    DETACH_QUEUE(0x400, "IFF_DETACH_QUEUE"),
    PERSIST(0x800, "IFF_PERSIST"),
    NO_PI(0x1000, "IFF_NO_PI"),
    ONE_QUEUE(0x2000, "IFF_ONE_QUEUE"),
    VNET_HDR(0x4000, "IFF_VNET_HDR"),
    TUN_EXCL(0x8000, "IFF_TUN_EXCL");

    private final int value;
    private final String cName;

    TunFlag(int value, String cName) {
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
    public static Set<TunFlag> decode(long value) {
        return NamedBits.decode(TunFlag.class, TunFlag::mask, value);
    }

    /** Names of what is set in {@code value}, unknown bits as hex. */
    public static List<String> names(long value) {
        return NamedBits.names(TunFlag.class, TunFlag::mask, value);
    }

    /** The combined mask of a set. */
    public static long encode(Set<TunFlag> set) {
        return NamedBits.encode(set, TunFlag::mask);
    }

    /** The flag as a mask. */
    public long mask() {
        return value & 0xffffffffL;
    }
}

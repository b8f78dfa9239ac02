package io.vhostffm.vhost;

import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;

/**
 * TAP offloads for TUNSETOFFLOAD ({@code TUN_F_*} of {@code <linux/if_tun.h>}): what the TAP may hand us unchecksummed or unsegmented. The ABI test checks every value against {@link #cName()}'s in the headers.
 */
public enum TunOffload {
    CSUM(0x1, "TUN_F_CSUM"),
    TSO4(0x2, "TUN_F_TSO4"),
    TSO6(0x4, "TUN_F_TSO6"),
    TSO_ECN(0x8, "TUN_F_TSO_ECN"),
    UFO(0x10, "TUN_F_UFO");

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
        EnumSet<TunOffload> set = EnumSet.noneOf(TunOffload.class);
        for (TunOffload f : values()) {
            if ((value & f.mask()) != 0) {
                set.add(f);
            }
        }
        return set;
    }

    /** Names of what is set in {@code value}, unknown bits as hex. */
    public static List<String> names(long value) {
        List<String> names = new ArrayList<>();
        long known = 0;
        for (TunOffload f : values()) {
            if ((value & f.mask()) != 0) {
                names.add(f.name());
                known |= f.mask();
            }
        }
        if ((value & ~known) != 0) {
            names.add("0x" + Long.toHexString(value & ~known));
        }
        return names;
    }

    /** The combined mask of a set. */
    public static long encode(Set<TunOffload> set) {
        long mask = 0;
        for (TunOffload f : set) {
            mask |= f.mask();
        }
        return mask;
    }

    /** The flag as a mask. */
    public long mask() {
        return value & 0xffffffffL;
    }
}

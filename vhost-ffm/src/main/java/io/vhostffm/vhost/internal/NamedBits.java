package io.vhostffm.vhost.internal;

import io.vhostffm.vhost.device.kernel.VhostBackendFeature;

import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.function.ToLongFunction;

/**
 * The one implementation of turning a flag word into named constants and back, shared by the
 * enums that name kernel bits ({@link TunFlag}, {@link TunOffload}, {@link VhostBackendFeature}).
 */
public final class NamedBits {
    private NamedBits() {}

    /** The constants of {@code type} whose mask is set in {@code value}. */
    public static <E extends Enum<E>> Set<E> decode(Class<E> type, ToLongFunction<E> mask, long value) {
        EnumSet<E> set = EnumSet.noneOf(type);
        for (E e : type.getEnumConstants()) {
            if ((value & mask.applyAsLong(e)) != 0) {
                set.add(e);
            }
        }
        return set;
    }

    /** Names of the constants set in {@code value}; bits no constant names, as one hex word. */
    public static <E extends Enum<E>> List<String> names(Class<E> type, ToLongFunction<E> mask, long value) {
        List<String> names = new ArrayList<>();
        long known = 0;
        for (E e : type.getEnumConstants()) {
            long m = mask.applyAsLong(e);
            if ((value & m) != 0) {
                names.add(e.name());
                known |= m;
            }
        }
        if ((value & ~known) != 0) {
            names.add("0x" + Long.toHexString(value & ~known));
        }
        return names;
    }

    /** The combined mask of a set of constants. */
    public static <E extends Enum<E>> long encode(Set<E> set, ToLongFunction<E> mask) {
        long word = 0;
        for (E e : set) {
            word |= mask.applyAsLong(e);
        }
        return word;
    }
}

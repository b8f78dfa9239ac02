package io.vhostffm.vhost.virtio.net;

import java.util.Arrays;
import java.util.HexFormat;
import java.util.Objects;

/**
 * The MAC filter table set by VIRTIO_NET_CTRL_MAC_TABLE_SET (virtio 1.3, 5.1.6.5.2): unicast and
 * multicast addresses, 6 bytes each, back to back, at most {@value #MAX_ENTRIES} in all.
 *
 * <p>As in QEMU, a list that does not fit is not stored; its overflow flag is set instead and the
 * filter then accepts every address of that kind. The unicast list is placed first, so the
 * multicast list overflows when it does not fit in what unicast left.
 *
 * <p>A plain carrier for migration: the constructor checks only for null; {@link
 * VirtioNetDevice#restore} checks the values.
 *
 * @param unicast the unicast addresses, {@code 6 * n} bytes
 * @param multicast the multicast addresses, {@code 6 * m} bytes
 * @param unicastOverflow the driver's unicast list was longer than the table
 * @param multicastOverflow the driver's multicast list was longer than the space left
 */
public record MacTableState(byte[] unicast, byte[] multicast, boolean unicastOverflow, boolean multicastOverflow) implements ContentComparable {

    /** MAC_TABLE_ENTRIES, as QEMU sizes it. */
    public static final int MAX_ENTRIES = 64;

    /** The empty table of a reset device. */
    public static final MacTableState EMPTY = new MacTableState(new byte[0], new byte[0], false, false);

    public MacTableState {
        unicast = Objects.requireNonNull(unicast, "unicast").clone();
        multicast = Objects.requireNonNull(multicast, "multicast").clone();
    }

    @Override
    public byte[] unicast() {
        return unicast.clone();
    }

    @Override
    public byte[] multicast() {
        return multicast.clone();
    }

    /** Number of unicast entries (the length over 6). */
    public int unicastCount() {
        return unicast.length / 6;
    }

    /** Number of multicast entries (the length over 6). */
    public int multicastCount() {
        return multicast.length / 6;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof MacTableState m && Arrays.equals(unicast, m.unicast) && Arrays.equals(multicast, m.multicast)
                && unicastOverflow == m.unicastOverflow && multicastOverflow == m.multicastOverflow;
    }

    @Override
    public int hashCode() {
        return Objects.hash(Arrays.hashCode(unicast), Arrays.hashCode(multicast), unicastOverflow, multicastOverflow);
    }

    @Override
    public String toString() {
        HexFormat hex = HexFormat.of();
        return "MacTableState[unicast=" + hex.formatHex(unicast) + ", multicast=" + hex.formatHex(multicast)
                + ", unicastOverflow=" + unicastOverflow + ", multicastOverflow=" + multicastOverflow + "]";
    }
}

package io.vhostffm.vhost.virtio.net;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * The receive filter of the userspace datapath: whether a frame from the TAP goes to the guest,
 * decided from its destination MAC and VLAN tag as QEMU's {@code receive_filter} decides. An
 * immutable view of the filter part of a {@link VirtioNetState}; the device publishes a new one
 * on every change, so the datapath thread reads it without locks. Deciding allocates nothing.
 *
 * <p>Order: promiscuous accepts everything; a VLAN-tagged frame (TPID 0x8100) whose VLAN is not in
 * the table is dropped; broadcast is accepted unless NOBCAST; other multicast is dropped under
 * NOMULTI, accepted under ALLMULTI or multicast overflow, else accepted iff in the multicast
 * table; unicast is dropped under NOUNI, accepted under ALLUNI or unicast overflow, else accepted
 * iff it is the device's MAC or in the unicast table.
 */
public final class RxFilter {
    private static final ValueLayout.OfInt BE32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);
    private static final ValueLayout.OfShort BE16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);
    private static final long BROADCAST = 0xffff_ffff_ffffL;
    private static final int ETH_P_8021Q = 0x8100;
    private static final int ETH_HLEN = 14;

    private final long mac;
    private final RxModeState mode;
    private final boolean unicastOverflow;
    private final boolean multicastOverflow;
    private final long[] unicast;
    private final long[] multicast;
    private final long[] vlans;

    /**
     * The filter of a device state.
     *
     * @throws IllegalArgumentException when the state's MAC, MAC table or VLAN table has the wrong
     *     size (a state that {@link VirtioNetDevice#restore} would refuse)
     */
    public RxFilter(VirtioNetState state) {
        byte[] own = state.mac();
        MacTableState macTable = state.macTable();
        if (own.length != 6 || macTable.unicast().length % 6 != 0 || macTable.multicast().length % 6 != 0
                || state.vlanTable().length != VirtioNetState.VLAN_WORDS) {
            throw new IllegalArgumentException("not a valid filter state: " + state);
        }
        this.mac = macToLong(own, 0);
        this.mode = state.rxMode();
        MacTableState table = state.macTable();
        this.unicastOverflow = table.unicastOverflow();
        this.multicastOverflow = table.multicastOverflow();
        this.unicast = macsToLongs(table.unicast());
        this.multicast = macsToLongs(table.multicast());
        this.vlans = state.vlanTable();
    }

    /** A 6-byte MAC at {@code offset} as the low 48 bits of a long, first byte highest. */
    public static long macToLong(byte[] bytes, int offset) {
        long v = 0;
        for (int i = 0; i < 6; i++) {
            v = v << 8 | (bytes[offset + i] & 0xff);
        }
        return v;
    }

    private static long[] macsToLongs(byte[] macs) {
        long[] out = new long[macs.length / 6];
        for (int i = 0; i < out.length; i++) {
            out[i] = macToLong(macs, i * 6);
        }
        return out;
    }

    /** The rx mode this filter applies. */
    public RxModeState mode() {
        return mode;
    }

    /**
     * Whether the Ethernet frame at {@code [offset, offset + length)} of {@code buffer} (after any
     * virtio-net header) passes. A frame shorter than an Ethernet header is dropped.
     *
     * @throws IndexOutOfBoundsException when the range is not inside {@code buffer}
     */
    public boolean accepts(MemorySegment buffer, long offset, long length) {
        if (mode.promisc()) {
            return true;
        }
        if (length < ETH_HLEN) {
            return false;
        }
        long destination = Integer.toUnsignedLong(buffer.get(BE32, offset)) << 16
                | Short.toUnsignedLong(buffer.get(BE16, offset + 4));
        int vid = -1;
        if (Short.toUnsignedInt(buffer.get(BE16, offset + 12)) == ETH_P_8021Q && length >= ETH_HLEN + 2) {
            vid = buffer.get(BE16, offset + 14) & 0xfff;
        }
        return accepts(destination, vid);
    }

    /**
     * Whether a frame to {@code destination} (48 bits, as {@link #macToLong}) passes; {@code vid}
     * is its 802.1Q VLAN id, or -1 when untagged.
     */
    public boolean accepts(long destination, int vid) {
        if (mode.promisc()) {
            return true;
        }
        if (vid >= 0 && (vlans[vid >> 6] & (1L << vid)) == 0) {
            return false;
        }
        boolean multicastBit = (destination & (1L << 40)) != 0; // I/G bit of the first byte
        if (multicastBit) {
            if (destination == BROADCAST) {
                return !mode.noBroadcast();
            }
            if (mode.noMulti()) {
                return false;
            }
            if (mode.allMulti() || multicastOverflow) {
                return true;
            }
            return contains(multicast, destination);
        }
        if (mode.noUni()) {
            return false;
        }
        if (mode.allUni() || unicastOverflow || destination == mac) {
            return true;
        }
        return contains(unicast, destination);
    }

    private static boolean contains(long[] macs, long mac) {
        for (long m : macs) {
            if (m == mac) {
                return true;
            }
        }
        return false;
    }
}

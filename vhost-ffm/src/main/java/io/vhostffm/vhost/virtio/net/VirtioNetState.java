package io.vhostffm.vhost.virtio.net;

import io.vhostffm.vhost.virtio.VirtioFeature;

import java.util.Arrays;
import java.util.HexFormat;
import java.util.Objects;

/**
 * The virtio-net part of a device's state: everything the control queue and the host change.
 *
 * <p>A plain carrier for migration: the constructor checks only for null; {@link
 * VirtioNetDevice#restore} checks the values.
 *
 * @param mac the current MAC address (config {@code mac}), 6 bytes
 * @param macTable the MAC filter table with its overflow flags
 * @param netStatus the config {@code status}: {@link VirtioNetConfigSpace#S_LINK_UP}, {@link
 *     VirtioNetConfigSpace#S_ANNOUNCE}
 * @param rxMode the rx-filter flags
 * @param vlanTable the 4096-bit VLAN filter, 64 longs; VLAN id {@code v} is bit {@code v & 63} of
 *     word {@code v >> 6}
 * @param guestOffloads the current guest offloads (feature bits of {@link
 *     FeatureNegotiation#GUEST_OFFLOAD_FEATURES})
 * @param multiqueue whether MQ or RSS was negotiated, so queue pairs may change
 * @param queuePairs the number of active queue pairs
 * @param rss receive-side scaling and hash reporting
 */
public record VirtioNetState(byte[] mac, MacTableState macTable, int netStatus, RxModeState rxMode, long[] vlanTable,
        long guestOffloads, boolean multiqueue, int queuePairs, RssState rss) implements ContentComparable {

    /** VLAN ids: 0..4095 (MAX_VLAN). */
    public static final int MAX_VLAN = 4096;
    /** Longs in {@link #vlanTable()}. */
    public static final int VLAN_WORDS = MAX_VLAN / 64;

    public VirtioNetState {
        mac = Objects.requireNonNull(mac, "mac").clone();
        Objects.requireNonNull(macTable, "macTable");
        Objects.requireNonNull(rxMode, "rxMode");
        vlanTable = Objects.requireNonNull(vlanTable, "vlanTable").clone();
        Objects.requireNonNull(rss, "rss");
    }

    @Override
    public byte[] mac() {
        return mac.clone();
    }

    @Override
    public long[] vlanTable() {
        return vlanTable.clone();
    }

    /** Whether VLAN {@code vid} passes the filter. */
    public boolean vlanAllowed(int vid) {
        return vid >= 0 && vid < MAX_VLAN && vid >> 6 < vlanTable.length && (vlanTable[vid >> 6] & (1L << vid)) != 0;
    }

    VirtioNetState withMac(byte[] newMac) {
        return new VirtioNetState(newMac, macTable, netStatus, rxMode, vlanTable, guestOffloads, multiqueue,
                queuePairs, rss);
    }

    VirtioNetState withMacTable(MacTableState table) {
        return new VirtioNetState(mac, table, netStatus, rxMode, vlanTable, guestOffloads, multiqueue, queuePairs,
                rss);
    }

    VirtioNetState withNetStatus(int status) {
        return new VirtioNetState(mac, macTable, status, rxMode, vlanTable, guestOffloads, multiqueue, queuePairs,
                rss);
    }

    VirtioNetState withRxMode(RxModeState mode) {
        return new VirtioNetState(mac, macTable, netStatus, mode, vlanTable, guestOffloads, multiqueue, queuePairs,
                rss);
    }

    VirtioNetState withVlan(int vid, boolean allowed) {
        long[] table = vlanTable.clone();
        if (allowed) {
            table[vid >> 6] |= 1L << vid;
        } else {
            table[vid >> 6] &= ~(1L << vid);
        }
        return new VirtioNetState(mac, macTable, netStatus, rxMode, table, guestOffloads, multiqueue, queuePairs,
                rss);
    }

    VirtioNetState withVlanTable(long[] table) {
        return new VirtioNetState(mac, macTable, netStatus, rxMode, table, guestOffloads, multiqueue, queuePairs,
                rss);
    }

    VirtioNetState withGuestOffloads(long offloads) {
        return new VirtioNetState(mac, macTable, netStatus, rxMode, vlanTable, offloads, multiqueue, queuePairs,
                rss);
    }

    VirtioNetState withQueues(boolean mq, int pairs) {
        return new VirtioNetState(mac, macTable, netStatus, rxMode, vlanTable, guestOffloads, mq, pairs, rss);
    }

    VirtioNetState withRss(RssState newRss) {
        return new VirtioNetState(mac, macTable, netStatus, rxMode, vlanTable, guestOffloads, multiqueue, queuePairs,
                newRss);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof VirtioNetState n && Arrays.equals(mac, n.mac) && macTable.equals(n.macTable)
                && netStatus == n.netStatus && rxMode.equals(n.rxMode) && Arrays.equals(vlanTable, n.vlanTable)
                && guestOffloads == n.guestOffloads && multiqueue == n.multiqueue && queuePairs == n.queuePairs
                && rss.equals(n.rss);
    }

    @Override
    public int hashCode() {
        return Objects.hash(Arrays.hashCode(mac), macTable, netStatus, rxMode, Arrays.hashCode(vlanTable),
                guestOffloads, multiqueue, queuePairs, rss);
    }

    @Override
    public String toString() {
        int vlans = 0;
        for (long w : vlanTable) {
            vlans += Long.bitCount(w);
        }
        return "VirtioNetState[mac=" + HexFormat.ofDelimiter(":").formatHex(mac) + ", macTable=" + macTable
                + ", netStatus=" + netStatus + ", rxMode=" + rxMode + ", vlanTable=" + vlans + " of "
                + vlanTable.length * 64 + " allowed, guestOffloads=" + VirtioFeature.describe(guestOffloads)
                + ", multiqueue=" + multiqueue + ", queuePairs=" + queuePairs + ", rss=" + rss + "]";
    }
}

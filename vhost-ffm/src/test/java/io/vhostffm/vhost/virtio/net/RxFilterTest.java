package io.vhostffm.vhost.virtio.net;

import io.vhostffm.vhost.virtio.VirtioFeature;

import static io.vhostffm.vhost.virtio.net.NetTestSupport.*;
import static io.vhostffm.vhost.virtio.net.VirtioNetCtrl.*;
import static org.junit.jupiter.api.Assertions.*;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

class RxFilterTest {
    private static final byte[] OWN = DEVICE_MAC;
    private static final byte[] OTHER_UNI = {0x02, 0, 0, 0, 0, 0x09};
    private static final byte[] TABLE_UNI = {0x02, 0, 0, 0, 0, 0x01};
    private static final byte[] MULTI = {0x01, 0, 0x5e, 0, 0, 0x01};
    private static final byte[] TABLE_MULTI = {0x01, 0, 0x5e, 0, 0, 0x02};
    private static final byte[] BROADCAST = {-1, -1, -1, -1, -1, -1};

    private final RecordingListener listener = new RecordingListener();
    private final VirtioNetDevice device = running(listener);

    private void cmd(Cmd c) {
        ControlAck ack = device.handleControl(c.segments());
        assertTrue(ack.isOk(), ack.reason());
    }

    private void rx(int command, boolean on) {
        cmd(new Cmd(CLASS_RX, command).u8(on ? 1 : 0));
    }

    /** An Ethernet frame to {@code dst}, VLAN-tagged when {@code vid >= 0}, after a 12-byte virtio-net header. */
    private static MemorySegment frame(byte[] dst, int vid) {
        MemorySegment s = Arena.ofAuto().allocate(VirtioNetHeader.SIZE + 64);
        MemorySegment.copy(dst, 0, s, ValueLayout.JAVA_BYTE, VirtioNetHeader.SIZE, 6);
        if (vid >= 0) {
            s.set(ValueLayout.JAVA_BYTE, VirtioNetHeader.SIZE + 12, (byte) 0x81);
            s.set(ValueLayout.JAVA_BYTE, VirtioNetHeader.SIZE + 13, (byte) 0x00);
            s.set(ValueLayout.JAVA_BYTE, VirtioNetHeader.SIZE + 14, (byte) (0x20 | vid >> 8)); // PCP bits must be ignored
            s.set(ValueLayout.JAVA_BYTE, VirtioNetHeader.SIZE + 15, (byte) vid);
        } else {
            s.set(ValueLayout.JAVA_BYTE, VirtioNetHeader.SIZE + 12, (byte) 0x08);
        }
        return s;
    }

    private boolean accepts(byte[] dst) {
        return accepts(dst, -1);
    }

    private boolean accepts(byte[] dst, int vid) {
        return device.rxFilter().accepts(frame(dst, vid), VirtioNetHeader.SIZE, 64);
    }

    @Test
    void promiscuousAfterResetAcceptsAll() {
        assertTrue(accepts(OTHER_UNI));
        assertTrue(accepts(MULTI, 7), "even a VLAN not in the table");
    }

    @Test
    void unicast() {
        rx(RX_PROMISC, false);
        assertTrue(accepts(OWN));
        assertFalse(accepts(OTHER_UNI));
        assertFalse(accepts(TABLE_UNI));
        cmd(new Cmd(CLASS_MAC, MAC_TABLE_SET).le32(1).bytes(TABLE_UNI).le32(0));
        assertTrue(accepts(TABLE_UNI));
        assertFalse(accepts(OTHER_UNI));
        rx(RX_ALLUNI, true);
        assertTrue(accepts(OTHER_UNI));
        rx(RX_NOUNI, true);
        assertFalse(accepts(OWN), "NOUNI beats everything for unicast");
        assertTrue(accepts(BROADCAST));
    }

    @Test
    void unicastOverflowAcceptsAllUnicast() {
        rx(RX_PROMISC, false);
        cmd(new Cmd(CLASS_MAC, MAC_TABLE_SET).le32(65).bytes(macs(65, 0x02)).le32(0));
        assertTrue(accepts(OTHER_UNI));
        assertFalse(accepts(MULTI));
    }

    @Test
    void multicastAndBroadcast() {
        rx(RX_PROMISC, false);
        assertTrue(accepts(BROADCAST));
        assertFalse(accepts(MULTI));
        cmd(new Cmd(CLASS_MAC, MAC_TABLE_SET).le32(0).le32(1).bytes(TABLE_MULTI));
        assertTrue(accepts(TABLE_MULTI));
        assertFalse(accepts(MULTI));
        rx(RX_ALLMULTI, true);
        assertTrue(accepts(MULTI));
        rx(RX_NOMULTI, true);
        assertFalse(accepts(TABLE_MULTI), "NOMULTI beats ALLMULTI and the table");
        assertTrue(accepts(BROADCAST), "broadcast is not multicast for NOMULTI");
        rx(RX_NOBCAST, true);
        assertFalse(accepts(BROADCAST));
        assertTrue(accepts(OWN));
    }

    @Test
    void multicastOverflowAcceptsAllMulticast() {
        rx(RX_PROMISC, false);
        cmd(new Cmd(CLASS_MAC, MAC_TABLE_SET).le32(64).bytes(macs(64, 0x02)).le32(1).bytes(TABLE_MULTI));
        assertTrue(accepts(MULTI));
    }

    @Test
    void vlanTable() {
        rx(RX_PROMISC, false);
        assertFalse(accepts(OWN, 10), "CTRL_VLAN negotiated: no VLAN until added");
        assertTrue(accepts(OWN), "untagged frames pass");
        cmd(new Cmd(CLASS_VLAN, VLAN_ADD).le16(10));
        assertTrue(accepts(OWN, 10));
        assertFalse(accepts(OWN, 11));
        assertFalse(accepts(OTHER_UNI, 10), "then the DEVICE_MAC filter applies");
        cmd(new Cmd(CLASS_VLAN, VLAN_DEL).le16(10));
        assertFalse(accepts(OWN, 10));
    }

    @Test
    void withoutCtrlVlanEveryVlanPasses() {
        VirtioNetDevice plain = running(VirtioFeature.maskOf(VirtioFeature.VERSION_1, VirtioFeature.CTRL_VQ,
                VirtioFeature.CTRL_RX), VirtioFeature.maskOf(VirtioFeature.VERSION_1,
                VirtioFeature.CTRL_VQ, VirtioFeature.CTRL_RX), 1, new RecordingListener());
        plain.handleControl(new Cmd(CLASS_RX, RX_PROMISC).u8(0).segments());
        assertTrue(plain.rxFilter().accepts(frame(OWN, 4000), VirtioNetHeader.SIZE, 64));
    }

    @Test
    void runtFramesAreDroppedOutsidePromiscuousMode() {
        rx(RX_PROMISC, false);
        assertFalse(device.rxFilter().accepts(frame(OWN, -1), VirtioNetHeader.SIZE, 13));
        assertTrue(device.rxFilter().accepts(frame(OWN, -1), VirtioNetHeader.SIZE, 14));
        assertThrows(IndexOutOfBoundsException.class,
                () -> device.rxFilter().accepts(MemorySegment.ofArray(new byte[20]), VirtioNetHeader.SIZE, 14));
    }

    @Test
    void macAddrSetMovesTheOwnAddress() {
        rx(RX_PROMISC, false);
        cmd(new Cmd(CLASS_MAC, MAC_ADDR_SET).bytes(OTHER_UNI));
        assertTrue(accepts(OTHER_UNI));
        assertFalse(accepts(OWN));
        assertEquals(RxFilter.macToLong(OTHER_UNI, 0), 0x020000000009L);
        assertTrue(device.rxFilter().accepts(0x020000000009L, -1));
    }

    @Test
    void refusesStatesOfTheWrongShape() {
        VirtioNetState good = device.netState();
        assertThrows(IllegalArgumentException.class, () -> new RxFilter(good.withVlanTable(new long[3])));
        assertThrows(IllegalArgumentException.class, () -> new RxFilter(good.withMac(new byte[5])));
        assertThrows(IllegalArgumentException.class, () -> new RxFilter(
                good.withMacTable(new MacTableState(new byte[7], new byte[0], false, false))));
    }
}

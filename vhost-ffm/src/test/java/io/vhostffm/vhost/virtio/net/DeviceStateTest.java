package io.vhostffm.vhost.virtio.net;

import io.vhostffm.vhost.virtio.DeviceStatus;

import static io.vhostffm.vhost.virtio.net.NetTestSupport.*;
import static io.vhostffm.vhost.virtio.net.VirtioNetCtrl.*;
import static io.vhostffm.vhost.virtio.VirtioFeature.*;
import static org.junit.jupiter.api.Assertions.*;

import java.io.IOException;
import java.lang.reflect.RecordComponent;
import java.util.List;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;
import io.vhostffm.vhost.os.TunOffload;

class DeviceStateTest {

    /** A running device whose every state group differs from its defaults. */
    private static VirtioNetDevice busyDevice() {
        VirtioNetDevice d = running(new RecordingListener());
        List<Cmd> cmds = List.of(
                new Cmd(CLASS_RX, RX_PROMISC).u8(0),
                new Cmd(CLASS_RX, RX_ALLMULTI).u8(1),
                new Cmd(CLASS_RX, RX_NOBCAST).u8(1),
                new Cmd(CLASS_MAC, MAC_TABLE_SET).le32(2).bytes(macs(2, 0x02)).le32(70).bytes(macs(70, 0x01)),
                new Cmd(CLASS_MAC, MAC_ADDR_SET).bytes(new byte[] {0x02, 1, 2, 3, 4, 5}),
                new Cmd(CLASS_VLAN, VLAN_ADD).le16(42),
                new Cmd(CLASS_VLAN, VLAN_ADD).le16(4095),
                new Cmd(CLASS_GUEST_OFFLOADS, GUEST_OFFLOADS_SET).le64(maskOf(GUEST_CSUM, GUEST_TSO6)),
                ControlQueueTest.rss(0x7, 3, 1, new int[] {3, 2, 1, 0}, 3, ControlQueueTest.key(40)));
        for (Cmd c : cmds) {
            ControlAck ack = d.handleControl(c.segments());
            assertTrue(ack.isOk(), ack.reason());
        }
        assertTrue(d.requestAnnounce());
        return d;
    }

    @Test
    void snapshotIsImmutable() {
        VirtioNetDevice d = busyDevice();
        NetDeviceState s = d.snapshot();
        s.net().mac()[0] = 9;
        s.net().vlanTable()[0] = -1;
        s.virtio().config()[0] = 9;
        assertEquals(s, d.snapshot());
        assertEquals(d.snapshot().hashCode(), s.hashCode());
    }

    @Test
    void roundTripToAnotherDevice() throws Exception {
        VirtioNetDevice source = busyDevice();
        NetDeviceState state = source.snapshot();
        RecordingListener destListener = new RecordingListener();
        VirtioNetDevice dest = new VirtioNetDevice(options(ALL_CONTROL, 4), USERSPACE, destListener);
        dest.restore(state);
        assertEquals(state, dest.snapshot());
        // The backend heard every group that differs from a fresh device.
        assertEquals(List.of("rxFilterChanged", "guestOffloadsChanged", "rssChanged", "queuePairsChanged"),
                destListener.calls);
        assertEquals(3, destListener.pairs);
        assertEquals(TunOffload.CSUM.value() | TunOffload.TSO6.value(), destListener.tunFlags);
        assertSame(dest.rxFilter(), destListener.filter);
        // It carries on as the source would.
        assertTrue(dest.handleControl(new Cmd(CLASS_ANNOUNCE, ANNOUNCE_ACK).segments()).isOk());
        // Restoring the same state again tells the backend nothing.
        destListener.calls.clear();
        dest.restore(dest.snapshot());
        assertEquals(List.of(), destListener.calls);
    }

    @Test
    void snapshotRecordsAreMadeOfPlainComponents() {
        // What the migration codec walks: primitives, byte[]/long[] and nested records only.
        checkComponents(NetDeviceState.class);
    }

    private static void checkComponents(Class<?> type) {
        for (RecordComponent c : type.getRecordComponents()) {
            Class<?> t = c.getType();
            if (t.isRecord()) {
                checkComponents(t);
            } else {
                assertTrue(t.isPrimitive() || t == byte[].class || t == long[].class,
                        type.getSimpleName() + "." + c.getName() + " is " + t);
            }
        }
    }

    /** Restoring {@code bad} fails naming {@code field}, and the device is unchanged. */
    private static void assertRejected(NetDeviceState bad, String field, String why) {
        VirtioNetDevice dest = new VirtioNetDevice(options(ALL_CONTROL, 4), USERSPACE, new RecordingListener());
        NetDeviceState before = dest.snapshot();
        InvalidDeviceStateException e = assertThrows(InvalidDeviceStateException.class, () -> dest.restore(bad));
        assertEquals(field, e.field(), e.getMessage());
        assertTrue(e.getMessage().contains(why), e.getMessage());
        assertEquals(before, dest.snapshot());
    }

    private static NetDeviceState withNet(NetDeviceState s, UnaryOperator<VirtioNetState> change) {
        return new NetDeviceState(s.virtio(), change.apply(s.net()));
    }

    private static NetDeviceState withVirtio(NetDeviceState s, int status, long acked) {
        VirtioState v = s.virtio();
        return new NetDeviceState(new VirtioState(status, v.offeredFeatures(), acked, v.config()), s.net());
    }

    private static VirtioNetState net(VirtioNetState n, MacTableState table) {
        return n.withMacTable(table);
    }

    @Test
    void rejectsBadNetValues() {
        NetDeviceState good = busyDevice().snapshot();
        VirtioNetState n = good.net();
        assertRejected(withNet(good, x -> net(x, new MacTableState(macs(40, 2), macs(25, 1), false, false))),
                "net.macTable", "65 entries exceed the table's 64");
        assertRejected(withNet(good, x -> net(x, new MacTableState(new byte[7], new byte[0], false, false))),
                "net.macTable.unicast", "7 bytes is not a whole number");
        assertRejected(withNet(good, x -> net(x, new MacTableState(macs(1, 2), new byte[0], true, false))),
                "net.macTable.unicast", "unicastOverflow");
        assertRejected(withNet(good, x -> x.withQueues(true, 5)), "net.queuePairs", "5 is outside 1..4");
        assertRejected(withNet(good, x -> x.withQueues(true, 0)), "net.queuePairs", "0 is outside");
        assertRejected(withNet(good, x -> x.withQueues(false, 1)), "net.multiqueue", "disagrees");
        assertRejected(withNet(good, x -> x.withVlanTable(new long[63])), "net.vlanTable", "63 words");
        assertRejected(withNet(good, x -> x.withGuestOffloads(GUEST_USO4.mask())), "net.guestOffloads",
                "VIRTIO_NET_F_GUEST_USO4(54)");
        RssState rss = n.rss();
        assertRejected(withNet(good, x -> x.withRss(new RssState(true, true, true, rss.hashTypes(), rss.key(),
                new long[] {0, 1, 2}, 0))), "net.rss.indirectionTable", "3 entries");
        assertRejected(withNet(good, x -> x.withRss(new RssState(true, true, true, rss.hashTypes(), rss.key(),
                new long[] {0, 4}, 0))), "net.rss.indirectionTable[1]", "4 is not a receive queue");
        assertRejected(withNet(good, x -> x.withRss(new RssState(true, true, true, rss.hashTypes(), rss.key(),
                rss.indirectionTable(), 7))), "net.rss.defaultQueue", "7 is not a receive queue");
        assertRejected(withNet(good, x -> x.withRss(new RssState(true, true, true, rss.hashTypes(), new byte[41],
                rss.indirectionTable(), 0))), "net.rss.key", "41 bytes exceed rss_max_key_size 40");
        assertRejected(withNet(good, x -> x.withRss(new RssState(true, true, true, 1 << 12, rss.key(),
                rss.indirectionTable(), 0))), "net.rss.hashTypes", "0x1000");
        assertRejected(withNet(good, x -> x.withRss(new RssState(true, true, false, rss.hashTypes(), rss.key(),
                rss.indirectionTable(), 0))), "net.rss.populateHash", "HASH_REPORT");
        assertRejected(withNet(good, x -> x.withRss(new RssState(false, false, true, 1, new byte[0], new long[0], 0))),
                "net.rss", "disabled but carries");
        assertRejected(withNet(good, x -> x.withNetStatus(4)), "virtio.config.status", "differs");
    }

    @Test
    void rejectsBadVirtioValues() {
        NetDeviceState good = busyDevice().snapshot();
        int running = good.virtio().status();
        long acked = good.virtio().ackedFeatures();
        assertRejected(withVirtio(good, running | 16, acked), "virtio.status", "bits no spec defines");
        assertRejected(withVirtio(good, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.DRIVER_OK,
                acked), "virtio.status", "DRIVER_OK without FEATURES_OK");
        assertRejected(withVirtio(good, running, acked | RING_PACKED.mask()), "virtio.ackedFeatures",
                "did not offer");
        assertRejected(withVirtio(good, running, acked & ~CTRL_VQ.mask()), "virtio.ackedFeatures",
                "requires VIRTIO_NET_F_CTRL_VQ");
        byte[] config = good.virtio().config();
        config[8] = 9; // max_virtqueue_pairs
        assertRejected(new NetDeviceState(new VirtioState(running, good.virtio().offeredFeatures(), acked, config),
                good.net()), "virtio.config.max_virtqueue_pairs", "9 differs from this device's 4");
        assertRejected(new NetDeviceState(new VirtioState(running, good.virtio().offeredFeatures(), acked,
                new byte[23]), good.net()), "virtio.config", "23 bytes");
        byte[] otherMac = good.virtio().config();
        otherMac[5] ^= 1;
        assertRejected(new NetDeviceState(new VirtioState(running, good.virtio().offeredFeatures(), acked, otherMac),
                good.net()), "virtio.config.mac", "differs from net.mac");
    }

    @Test
    void packedStateCannotLandOnTheKernelBackend() throws Exception {
        long features = maskOf(VERSION_1, RING_PACKED, CTRL_VQ, MQ);
        VirtioNetDevice source = running(features, features, 2, new RecordingListener());
        VirtioNetDevice kernel = new VirtioNetDevice(options(maskOf(VERSION_1, CTRL_VQ, MQ), 2), KERNEL,
                new RecordingListener());
        InvalidDeviceStateException e =
                assertThrows(InvalidDeviceStateException.class, () -> kernel.restore(source.snapshot()));
        assertEquals("virtio.ackedFeatures", e.field());
        assertTrue(e.getMessage().contains("VIRTIO_F_RING_PACKED(34)"), e.getMessage());
        assertTrue(e.getMessage().contains("kernel vhost-net"), e.getMessage());
    }

    @Test
    void restoreOfAFreshDeviceStateIsAccepted() throws Exception {
        VirtioNetDevice fresh = new VirtioNetDevice(options(ALL_CONTROL, 4), USERSPACE, new RecordingListener());
        VirtioNetDevice other = busyDevice();
        other.restore(fresh.snapshot());
        assertEquals(fresh.snapshot(), other.snapshot());
        assertEquals(0, other.status());
    }

    @Test
    void backendRefusalDuringRestoreIsReportedAfterLoading() throws Exception {
        NetDeviceState state = busyDevice().snapshot();
        RecordingListener listener = new RecordingListener();
        listener.refuse = "guestOffloadsChanged";
        VirtioNetDevice dest = new VirtioNetDevice(options(ALL_CONTROL, 4), USERSPACE, listener);
        IOException e = assertThrows(IOException.class, () -> dest.restore(state));
        assertTrue(e.getMessage().contains("injected failure in guestOffloadsChanged"), e.getMessage());
        assertEquals(state, dest.snapshot());
        assertEquals(List.of("rxFilterChanged", "guestOffloadsChanged", "rssChanged", "queuePairsChanged"),
                listener.calls, "every group is still tried");
    }

    @Test
    void observersHearRestore() throws Exception {
        VirtioNetDevice dest = new VirtioNetDevice(options(ALL_CONTROL, 4), USERSPACE, new RecordingListener());
        int[] count = {0};
        dest.addChangeObserver(() -> count[0]++);
        dest.restore(busyDevice().snapshot());
        assertEquals(1, count[0]);
    }
}

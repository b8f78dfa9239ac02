package io.vhostffm.vhost.virtio.net;

import io.vhostffm.vhost.virtio.DeviceStatus;

import static io.vhostffm.vhost.virtio.net.NetTestSupport.*;
import static io.vhostffm.vhost.virtio.net.VirtioNetCtrl.*;
import static io.vhostffm.vhost.virtio.VirtioFeature.*;
import io.vhostffm.vhost.virtio.VirtioFeature;
import static org.junit.jupiter.api.Assertions.*;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import io.vhostffm.vhost.os.TunOffload;

class ControlQueueTest {
    private final RecordingListener listener = new RecordingListener();
    private final VirtioNetDevice device = running(listener);

    private ControlAck send(Cmd cmd) {
        return device.handleControl(cmd.segments());
    }

    private void assertOk(Cmd cmd) {
        ControlAck ack = send(cmd);
        assertTrue(ack.isOk(), () -> ack.command() + ": " + ack.reason());
        assertEquals(0, ack.ackByte());
    }

    /** ERR, the reason contains {@code why}, and the state did not move. */
    private void assertErr(Cmd cmd, String why) {
        assertErr(device, cmd, why);
    }

    private static void assertErr(VirtioNetDevice d, Cmd cmd, String why) {
        NetDeviceState before = d.snapshot();
        ControlAck ack = d.handleControl(cmd.segments());
        assertEquals(VirtioNetCtrl.ERR, ack.ack(), () -> "expected ERR, got OK for " + ack.command());
        assertEquals(1, ack.ackByte());
        assertTrue(ack.reason().contains(why), () -> "reason '" + ack.reason() + "' lacks '" + why + "'");
        assertEquals(before, d.snapshot(), "a refused command must not change the state");
        assertTrue(d.lastError().orElseThrow().contains(why));
    }

    /** A device that negotiated everything but {@code without}. */
    private static VirtioNetDevice without(VirtioFeature without) {
        return running(ALL_CONTROL, ALL_CONTROL & ~without.mask(), 4, new RecordingListener());
    }

    // ---- framing ----

    @Test
    void emptyAndHeaderlessCommandsAreErr() {
        ControlAck empty = device.handleControl(List.of());
        assertFalse(empty.isOk());
        assertTrue(empty.reason().contains("class needs 1 bytes at offset 0"), empty.reason());
        ControlAck onlyClass = device.handleControl(split(new byte[] {CLASS_RX}));
        assertTrue(onlyClass.reason().contains("command needs 1 bytes at offset 1"), onlyClass.reason());
    }

    @Test
    void unknownClassAndCommandsAreErr() {
        assertErr(new Cmd(9, 0).u8(1), "unknown class 9");
        assertErr(new Cmd(6, 0), "unknown class 6"); // NOTF_COAL: not implemented, not offered
        assertErr(new Cmd(CLASS_RX, 6).u8(1), "unknown command 6 in class 0");
        assertErr(new Cmd(CLASS_MAC, 2), "unknown command 2 in class 1");
        assertErr(new Cmd(CLASS_VLAN, 2).le16(1), "unknown command 2 in class 2");
        assertErr(new Cmd(CLASS_ANNOUNCE, 1), "unknown command 1 in class 3");
        assertErr(new Cmd(CLASS_MQ, 3).le16(1), "unknown command 3 in class 4");
        assertErr(new Cmd(CLASS_GUEST_OFFLOADS, 1).le64(0), "unknown command 1 in class 5");
    }

    @Test
    void commandsBeforeDriverOkOrWithoutCtrlVqAreErr() {
        VirtioNetDevice fresh = new VirtioNetDevice(options(ALL_CONTROL, 4), USERSPACE, new RecordingListener());
        assertErr(fresh, new Cmd(CLASS_RX, RX_PROMISC).u8(1), "CTRL_VQ was not negotiated");
        fresh.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
        fresh.writeDriverFeatures(ALL_CONTROL);
        fresh.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK);
        assertErr(fresh, new Cmd(CLASS_RX, RX_PROMISC).u8(1), "device not running");
        VirtioNetDevice noCvq = running(ALL_CONTROL, maskOf(VERSION_1, MAC), 1, new RecordingListener());
        assertErr(noCvq, new Cmd(CLASS_RX, RX_PROMISC).u8(1), "CTRL_VQ was not negotiated");
    }

    @Test
    void fieldsMaySplitAcrossBuffersAnywhere() {
        byte[] cmd = new Cmd(CLASS_MAC, MAC_TABLE_SET).le32(2).bytes(macs(2, 0x02)).le32(1).bytes(macs(1, 0x01))
                .toArray();
        for (int cut = 1; cut < cmd.length; cut++) {
            ControlAck ack = device.handleControl(split(cmd, cut));
            assertTrue(ack.isOk(), "cut at " + cut + ": " + ack.reason());
        }
        // One byte per buffer, with empty buffers between.
        int[] cuts = new int[cmd.length * 2 - 2];
        for (int i = 0; i < cuts.length; i++) {
            cuts[i] = i / 2 + 1; // 1, 1, 2, 2, ...: an empty buffer after every byte
        }
        assertTrue(device.handleControl(split(cmd, cuts)).isOk());
        assertArrayEquals(macs(2, 0x02), device.netState().macTable().unicast());
        assertArrayEquals(macs(1, 0x01), device.netState().macTable().multicast());
    }

    @Test
    void aClosedSegmentGivesErrNotAnException() {
        Arena arena = Arena.ofConfined();
        MemorySegment s = arena.allocate(3);
        arena.close();
        ControlAck ack = device.handleControl(List.of(s));
        assertFalse(ack.isOk());
        assertTrue(ack.reason().contains("unexpected failure"), ack.reason());
    }

    // ---- RX class ----

    @Test
    void rxModes() {
        assertTrue(device.netState().rxMode().promisc());
        assertOk(new Cmd(CLASS_RX, RX_PROMISC).u8(0));
        assertOk(new Cmd(CLASS_RX, RX_ALLMULTI).u8(1));
        assertOk(new Cmd(CLASS_RX, RX_ALLUNI).u8(7)); // any non-zero byte is on
        assertOk(new Cmd(CLASS_RX, RX_NOMULTI).u8(1));
        assertOk(new Cmd(CLASS_RX, RX_NOUNI).u8(1));
        assertOk(new Cmd(CLASS_RX, RX_NOBCAST).u8(1));
        assertEquals(new RxModeState(false, true, true, true, true, true), device.netState().rxMode());
        assertOk(new Cmd(CLASS_RX, RX_ALLMULTI).u8(0));
        assertEquals(new RxModeState(false, false, true, true, true, true), device.netState().rxMode());
        assertSame(device.rxFilter(), listener.filter, "backend got the filter now in force");
        assertFalse(device.rxFilter().mode().promisc());
    }

    @ParameterizedTest
    @ValueSource(ints = {RX_PROMISC, RX_ALLMULTI, RX_ALLUNI, RX_NOMULTI, RX_NOUNI, RX_NOBCAST})
    void rxWithoutPayloadIsErr(int command) {
        assertErr(new Cmd(CLASS_RX, command), "on needs 1 bytes at offset 2");
    }

    @Test
    void rxNeedsItsFeature() {
        VirtioNetDevice noRx = without(CTRL_RX);
        assertErr(noRx, new Cmd(CLASS_RX, RX_PROMISC).u8(0), "VIRTIO_NET_F_CTRL_RX was not negotiated");
        assertErr(noRx, new Cmd(CLASS_RX, RX_ALLMULTI).u8(0), "VIRTIO_NET_F_CTRL_RX was not negotiated");
        VirtioNetDevice noExtra = without(CTRL_RX_EXTRA);
        assertTrue(noExtra.handleControl(new Cmd(CLASS_RX, RX_PROMISC).u8(0).segments()).isOk());
        for (int cmd : new int[] {RX_ALLUNI, RX_NOMULTI, RX_NOUNI, RX_NOBCAST}) {
            assertErr(noExtra, new Cmd(CLASS_RX, cmd).u8(1), "VIRTIO_NET_F_CTRL_RX_EXTRA was not negotiated");
        }
    }

    // ---- MAC class ----

    @Test
    void macTableSet() {
        assertOk(new Cmd(CLASS_MAC, MAC_TABLE_SET).le32(3).bytes(macs(3, 0x02)).le32(2).bytes(macs(2, 0x01)));
        MacTableState table = device.netState().macTable();
        assertEquals(3, table.unicastCount());
        assertEquals(2, table.multicastCount());
        assertFalse(table.unicastOverflow() || table.multicastOverflow());
        // Empty lists clear it.
        assertOk(new Cmd(CLASS_MAC, MAC_TABLE_SET).le32(0).le32(0));
        assertEquals(MacTableState.EMPTY, device.netState().macTable());
        assertTrue(listener.calls.contains("rxFilterChanged"));
    }

    @Test
    void macTableOverflowAsQemu() {
        // 64 unicast fill the table; one multicast no longer fits.
        assertOk(new Cmd(CLASS_MAC, MAC_TABLE_SET).le32(64).bytes(macs(64, 0x02)).le32(1).bytes(macs(1, 0x01)));
        MacTableState t = device.netState().macTable();
        assertEquals(64, t.unicastCount());
        assertEquals(0, t.multicastCount());
        assertFalse(t.unicastOverflow());
        assertTrue(t.multicastOverflow());
        // 65 unicast overflow; the multicast list then has the whole table.
        assertOk(new Cmd(CLASS_MAC, MAC_TABLE_SET).le32(65).bytes(macs(65, 0x02)).le32(64).bytes(macs(64, 0x01)));
        t = device.netState().macTable();
        assertTrue(t.unicastOverflow());
        assertFalse(t.multicastOverflow());
        assertEquals(0, t.unicastCount());
        assertEquals(64, t.multicastCount());
        // 60 + 5 = 65: the multicast list overflows.
        assertOk(new Cmd(CLASS_MAC, MAC_TABLE_SET).le32(60).bytes(macs(60, 0x02)).le32(5).bytes(macs(5, 0x01)));
        t = device.netState().macTable();
        assertEquals(60, t.unicastCount());
        assertTrue(t.multicastOverflow());
    }

    @Test
    void macTableMalformed() {
        assertErr(new Cmd(CLASS_MAC, MAC_TABLE_SET), "unicast entries needs 4 bytes at offset 2");
        assertErr(new Cmd(CLASS_MAC, MAC_TABLE_SET).le32(2).bytes(macs(1, 2)), "unicast entries = 2 needs 12 bytes");
        assertErr(new Cmd(CLASS_MAC, MAC_TABLE_SET).le32(0xffff_ffffL).bytes(macs(1, 2)),
                "unicast entries = 4294967295 needs 25769803770 bytes");
        assertErr(new Cmd(CLASS_MAC, MAC_TABLE_SET).le32(1).bytes(macs(1, 2)), "multicast entries needs 4 bytes");
        assertErr(new Cmd(CLASS_MAC, MAC_TABLE_SET).le32(0).le32(2).bytes(macs(1, 1)),
                "multicast entries = 2 needs 12 bytes");
        // Trailing bytes after the multicast list: QEMU refuses too.
        assertErr(new Cmd(CLASS_MAC, MAC_TABLE_SET).le32(0).le32(1).bytes(macs(1, 1)).u8(0),
                "multicast entries = 1 needs 6 bytes at offset 10 but the command has 7 left");
        assertErr(without(CTRL_RX), new Cmd(CLASS_MAC, MAC_TABLE_SET).le32(0).le32(0),
                "VIRTIO_NET_F_CTRL_RX was not negotiated");
    }

    @Test
    void macAddrSet() {
        byte[] mac = {0x02, 0, 0, 0, 0, 0x42};
        assertOk(new Cmd(CLASS_MAC, MAC_ADDR_SET).bytes(mac));
        assertArrayEquals(mac, device.netState().mac());
        assertArrayEquals(mac, device.readConfig(0, 6), "the config space shows the new MAC");
        assertErr(new Cmd(CLASS_MAC, MAC_ADDR_SET).bytes(new byte[5]), "mac needs 6 bytes at offset 2");
        assertErr(new Cmd(CLASS_MAC, MAC_ADDR_SET).bytes(new byte[7]), "mac is 6 bytes but the command carries 7");
        assertErr(without(CTRL_MAC_ADDR), new Cmd(CLASS_MAC, MAC_ADDR_SET).bytes(mac),
                "VIRTIO_NET_F_CTRL_MAC_ADDR was not negotiated");
        // A reset brings back the configured MAC.
        device.writeStatus(0);
        assertArrayEquals(DEVICE_MAC, device.netState().mac());
    }

    // ---- VLAN class ----

    @Test
    void vlanAddDel() {
        assertOk(new Cmd(CLASS_VLAN, VLAN_ADD).le16(0));
        assertOk(new Cmd(CLASS_VLAN, VLAN_ADD).le16(100));
        assertOk(new Cmd(CLASS_VLAN, VLAN_ADD).le16(4095));
        VirtioNetState s = device.netState();
        assertTrue(s.vlanAllowed(0) && s.vlanAllowed(100) && s.vlanAllowed(4095));
        assertFalse(s.vlanAllowed(101));
        assertEquals(1L << 36, s.vlanTable()[1]);
        assertOk(new Cmd(CLASS_VLAN, VLAN_DEL).le16(100));
        assertFalse(device.netState().vlanAllowed(100));
        assertOk(new Cmd(CLASS_VLAN, VLAN_DEL).le16(100)); // deleting again is harmless
        assertErr(new Cmd(CLASS_VLAN, VLAN_ADD).le16(4096), "vlan id 4096 is outside 0..4095");
        assertErr(new Cmd(CLASS_VLAN, VLAN_DEL).le16(0xffff), "vlan id 65535");
        assertErr(new Cmd(CLASS_VLAN, VLAN_ADD).u8(1), "vlan id needs 2 bytes at offset 2");
        assertErr(without(CTRL_VLAN), new Cmd(CLASS_VLAN, VLAN_ADD).le16(1),
                "VIRTIO_NET_F_CTRL_VLAN was not negotiated");
    }

    // ---- ANNOUNCE class ----

    @Test
    void announceAck() {
        assertErr(new Cmd(CLASS_ANNOUNCE, ANNOUNCE_ACK), "no announcement is pending");
        listener.calls.clear();
        assertTrue(device.requestAnnounce());
        assertEquals(List.of("configChanged"), listener.calls);
        assertEquals(VirtioNetConfigSpace.S_LINK_UP | VirtioNetConfigSpace.S_ANNOUNCE, device.readConfig(6, 2)[0]);
        assertOk(new Cmd(CLASS_ANNOUNCE, ANNOUNCE_ACK));
        assertEquals(VirtioNetConfigSpace.S_LINK_UP, device.netState().netStatus());
        VirtioNetDevice noAnnounce = without(GUEST_ANNOUNCE);
        assertFalse(noAnnounce.requestAnnounce());
        assertErr(noAnnounce, new Cmd(CLASS_ANNOUNCE, ANNOUNCE_ACK), "VIRTIO_NET_F_GUEST_ANNOUNCE was not negotiated");
    }

    // ---- MQ class ----

    @Test
    void vqPairsSet() {
        assertOk(new Cmd(CLASS_MQ, MQ_VQ_PAIRS_SET).le16(4));
        assertEquals(4, device.netState().queuePairs());
        assertEquals(4, listener.pairs);
        assertOk(new Cmd(CLASS_MQ, MQ_VQ_PAIRS_SET).le16(1));
        assertEquals(1, listener.pairs);
        assertErr(new Cmd(CLASS_MQ, MQ_VQ_PAIRS_SET).le16(0), "virtqueue_pairs = 0 is outside 1..4");
        assertErr(new Cmd(CLASS_MQ, MQ_VQ_PAIRS_SET).le16(5), "virtqueue_pairs = 5 is outside 1..4");
        assertErr(new Cmd(CLASS_MQ, MQ_VQ_PAIRS_SET).le16(0x8001), "virtqueue_pairs = 32769");
        assertErr(new Cmd(CLASS_MQ, MQ_VQ_PAIRS_SET).u8(1), "virtqueue_pairs needs 2 bytes");
        assertErr(without(MQ), new Cmd(CLASS_MQ, MQ_VQ_PAIRS_SET).le16(2), "VIRTIO_NET_F_MQ was not negotiated");
    }

    @Test
    void backendRefusalIsErrAndKeepsState() {
        listener.refuse = "queuePairsChanged";
        assertErr(new Cmd(CLASS_MQ, MQ_VQ_PAIRS_SET).le16(2), "injected failure in queuePairsChanged");
        assertEquals(1, device.netState().queuePairs());
        // RSS_CONFIG tells rss first, then queue pairs: the refusal of the second rolls the first back.
        listener.calls.clear();
        assertErr(rss(0x3, 1, 0, new int[] {0, 1}, 2, key(40)), "injected failure");
        assertEquals(List.of("rssChanged", "queuePairsChanged", "rssChanged"), listener.calls);
        assertFalse(listener.rss.enabled(), "the backend got the old RSS state back");
        assertFalse(device.netState().rss().enabled());
    }

    static byte[] key(int length) {
        byte[] k = new byte[length];
        for (int i = 0; i < length; i++) {
            k[i] = (byte) (i * 7 + 1);
        }
        return k;
    }

    static Cmd rss(long hashTypes, int mask, int unclassified, int[] table, int maxTxVq, byte[] key) {
        Cmd c = new Cmd(CLASS_MQ, MQ_RSS_CONFIG).le32(hashTypes).le16(mask).le16(unclassified);
        for (int q : table) {
            c.le16(q);
        }
        return c.le16(maxTxVq).u8(key.length).bytes(key);
    }

    @Test
    void rssConfig() {
        int types = RssState.HASH_TYPE_IPV4 | RssState.HASH_TYPE_TCPV4 | RssState.HASH_TYPE_TCPV6;
        assertOk(rss(types, 3, 2, new int[] {0, 1, 2, 3}, 4, key(40)));
        RssState r = device.netState().rss();
        assertTrue(r.enabled());
        assertTrue(r.redirect());
        assertTrue(r.populateHash(), "HASH_REPORT was negotiated");
        assertEquals(types, r.hashTypes());
        assertArrayEquals(key(40), r.key());
        assertArrayEquals(new long[] {0, 1, 2, 3}, r.indirectionTable());
        assertEquals(2, r.defaultQueue());
        assertEquals(4, device.netState().queuePairs());
        assertEquals(r, listener.rss);
        assertEquals(4, listener.pairs);
        // Zero hash types and no key turn RSS off; max_tx_vq still applies.
        assertOk(rss(0, 0, 0, new int[] {0}, 2, new byte[0]));
        assertEquals(RssState.disabled(true), device.netState().rss());
        assertEquals(2, device.netState().queuePairs());
    }

    @Test
    void rssConfigMalformed() {
        int t = RssState.HASH_TYPE_IPV4;
        assertErr(new Cmd(CLASS_MQ, MQ_RSS_CONFIG).le32(t).le16(0), "unclassified_queue needs 2 bytes at offset 8");
        assertErr(rss(t, 2, 0, new int[] {0, 0, 0}, 1, key(40)), "the table length 3 is not a power of two");
        int[] big = new int[256];
        assertErr(rss(t, 255, 0, big, 1, key(40)), "indirection table length 256 exceeds "
                + "rss_max_indirection_table_length 128");
        assertErr(rss(t, 1, 4, new int[] {0, 1}, 1, key(40)), "unclassified_queue = 4 is not a receive queue");
        assertErr(rss(t, 1, 0, new int[] {0, 9}, 1, key(40)), "indirection_table[1] = 9 is not a receive queue");
        assertErr(rss(t, 1, 0, new int[] {0, 1}, 0, key(40)), "max_tx_vq = 0 is outside 1..4");
        assertErr(rss(t, 1, 0, new int[] {0, 1}, 5, key(40)), "max_tx_vq = 5 is outside 1..4");
        assertErr(rss(t, 1, 0, new int[] {0, 1}, 1, key(41)), "hash_key_length 41 exceeds rss_max_key_size 40");
        assertErr(rss(t, 1, 0, new int[] {0, 1}, 1, new byte[0]), "no hash key is given");
        assertErr(rss(1 << 9, 1, 0, new int[] {0, 1}, 1, key(40)), "hash_types 0x200 has types 0x200 not in");
        assertErr(new Cmd(CLASS_MQ, MQ_RSS_CONFIG).le32(t).le16(1).le16(0).le16(0), "indirection_table[1] needs 2 bytes");
        byte[] truncatedKey = rss(t, 1, 0, new int[] {0, 1}, 1, key(40)).toArray();
        assertErr(new Cmd(CLASS_MQ, MQ_RSS_CONFIG).bytes(Arrays.copyOfRange(truncatedKey, 2, truncatedKey.length - 1)),
                "hash_key_data needs 40 bytes");
        assertErr(without(RSS), rss(t, 1, 0, new int[] {0, 1}, 1, key(40)), "VIRTIO_NET_F_RSS was not negotiated");
    }

    @Test
    void hashConfig() {
        int types = RssState.HASH_TYPE_UDPV4;
        assertOk(new Cmd(CLASS_MQ, MQ_HASH_CONFIG).le32(types).bytes(new byte[8]).u8(40).bytes(key(40)));
        RssState r = device.netState().rss();
        assertTrue(r.enabled());
        assertFalse(r.redirect(), "hash config does not steer");
        assertEquals(types, r.hashTypes());
        assertEquals(0, r.indirectionTable().length);
        assertEquals(1, device.netState().queuePairs(), "queue pairs unchanged");
        assertOk(new Cmd(CLASS_MQ, MQ_HASH_CONFIG).le32(0).bytes(new byte[8]).u8(0));
        assertFalse(device.netState().rss().enabled());
        assertErr(new Cmd(CLASS_MQ, MQ_HASH_CONFIG).le32(types).bytes(new byte[8]).u8(0), "no hash key");
        assertErr(new Cmd(CLASS_MQ, MQ_HASH_CONFIG).le32(types).bytes(new byte[7]), "reserved needs 8 bytes");
        assertErr(new Cmd(CLASS_MQ, MQ_HASH_CONFIG).le32(types).bytes(new byte[8]).u8(41).bytes(key(41)),
                "exceeds rss_max_key_size");
        assertErr(new Cmd(CLASS_MQ, MQ_HASH_CONFIG).le32(types).bytes(new byte[8]).u8(40).bytes(key(39)),
                "hash_key_data needs 40 bytes");
        assertErr(without(HASH_REPORT), new Cmd(CLASS_MQ, MQ_HASH_CONFIG).le32(0).bytes(new byte[8]).u8(0),
                "VIRTIO_NET_F_HASH_REPORT was not negotiated");
    }

    // ---- GUEST_OFFLOADS class ----

    @Test
    void guestOffloadsSet() {
        long csumTso4 = maskOf(GUEST_CSUM, GUEST_TSO4);
        assertOk(new Cmd(CLASS_GUEST_OFFLOADS, GUEST_OFFLOADS_SET).le64(csumTso4));
        assertEquals(csumTso4, device.netState().guestOffloads());
        assertEquals(csumTso4, listener.offloads);
        assertEquals(TunOffload.CSUM.value() | TunOffload.TSO4.value(), listener.tunFlags);
        assertOk(new Cmd(CLASS_GUEST_OFFLOADS, GUEST_OFFLOADS_SET).le64(0));
        assertEquals(0, listener.tunFlags);
        // GUEST_USO4 is a guest offload, but not negotiated here; MQ is no offload at all.
        assertErr(new Cmd(CLASS_GUEST_OFFLOADS, GUEST_OFFLOADS_SET).le64(GUEST_USO4.mask()),
                "VIRTIO_NET_F_GUEST_USO4(54) are not negotiated guest offloads");
        assertErr(new Cmd(CLASS_GUEST_OFFLOADS, GUEST_OFFLOADS_SET).le64(MQ.mask()), "VIRTIO_NET_F_MQ(22)");
        assertErr(new Cmd(CLASS_GUEST_OFFLOADS, GUEST_OFFLOADS_SET).le32(1), "offloads needs 8 bytes at offset 2");
        assertErr(without(CTRL_GUEST_OFFLOADS), new Cmd(CLASS_GUEST_OFFLOADS, GUEST_OFFLOADS_SET).le64(0),
                "VIRTIO_NET_F_CTRL_GUEST_OFFLOADS was not negotiated");
    }

    @Test
    void observersHearEveryCommittedChange() {
        int[] count = {0};
        device.addChangeObserver(() -> count[0]++);
        assertOk(new Cmd(CLASS_VLAN, VLAN_ADD).le16(7));
        send(new Cmd(CLASS_VLAN, VLAN_ADD).le16(5000));
        device.setLinkUp(false);
        assertEquals(2, count[0], "one command and the link change, not the refused command");
    }
}

package io.vhostffm.migration.schema;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vhost.virtio.net.MacTableState;
import io.vhostffm.vhost.virtio.net.NetDeviceState;
import io.vhostffm.vhost.virtio.net.RssState;
import io.vhostffm.vhost.virtio.net.RxModeState;
import io.vhostffm.vhost.virtio.net.VirtioNetConfigSpace;
import io.vhostffm.vhost.virtio.net.VirtioNetState;
import io.vhostffm.vhost.virtio.net.VirtioState;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The schema over the device model's own state records, which vhost-ffm exports but does not
 * open: their accessors hand out copies of their arrays, their {@code equals} compares contents.
 * The schema must still see every component change and check "no delta" without allocating.
 */
class DeviceStateSchemaTest {

    static NetDeviceState deviceState() {
        byte[] mac = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
        long features = VirtioFeature.maskOf(VirtioFeature.MAC, VirtioFeature.CTRL_VQ, VirtioFeature.MQ,
                VirtioFeature.RSS) | 1L << 32;
        byte[] config = new byte[VirtioNetConfigSpace.SIZE];
        System.arraycopy(mac, 0, config, 0, 6);
        config[8] = 2;
        VirtioState virtio = new VirtioState(0x0f, features, features, config);
        MacTableState macTable = new MacTableState(new byte[] {2, 0, 0, 0, 0, 1}, new byte[] {1, 0, 0x5e, 0, 0, 1},
                false, true);
        long[] vlans = new long[VirtioNetState.VLAN_WORDS];
        vlans[1] = 1L << 36; // VLAN 100
        byte[] key = new byte[40];
        for (int i = 0; i < key.length; i++) {
            key[i] = (byte) (0x6d + 17 * i);
        }
        long[] table = new long[128];
        for (int i = 0; i < table.length; i++) {
            table[i] = i % 2;
        }
        RssState rss = new RssState(true, true, false, RssState.ALL_HASH_TYPES, key, table, 1);
        VirtioNetState net = new VirtioNetState(mac, macTable, VirtioNetConfigSpace.S_LINK_UP,
                new RxModeState(false, true, false, false, false, false), vlans,
                VirtioFeature.GUEST_CSUM.mask(), true, 2, rss);
        return new NetDeviceState(virtio, net);
    }

    @Test
    void everyComponentOfTheDeviceRecordsIsComparedEncodedAndSnapshotted() throws Exception {
        NetDeviceState state = deviceState();
        StateSchemaTest.checkEveryComponent(StateSchema.of(NetDeviceState.class), state);
        StateSchemaTest.checkEveryComponent(StateSchema.of(VirtioState.class), state.virtio());
        StateSchemaTest.checkEveryComponent(StateSchema.of(VirtioNetState.class), state.net());
        StateSchemaTest.checkEveryComponent(StateSchema.of(RssState.class), state.net().rss());
        StateSchemaTest.checkEveryComponent(StateSchema.of(MacTableState.class), state.net().macTable());
    }

    @Test
    void aChangeDeepInsideIsFoundAndNamed() throws StateDecodeException {
        StateSchema<NetDeviceState> schema = StateSchema.of(NetDeviceState.class);
        NetDeviceState before = deviceState();
        RssState rss = before.net().rss();
        long[] table = rss.indirectionTable();
        table[127] = 0;
        RssState changedRss = new RssState(rss.enabled(), rss.redirect(), rss.populateHash(), rss.hashTypes(),
                rss.key(), table, rss.defaultQueue());
        VirtioNetState n = before.net();
        NetDeviceState after = new NetDeviceState(before.virtio(), new VirtioNetState(n.mac(), n.macTable(),
                n.netStatus(), n.rxMode(), n.vlanTable(), n.guestOffloads(), n.multiqueue(), n.queuePairs(),
                changedRss));
        assertFalse(schema.unchanged(after, schema.snapshot(before)));
        assertEquals(List.of("net.rss.indirectionTable"), schema.changedFields(before, after));
        assertTrue(schema.unchanged(schema.decode(schema.encode(after)), after));
    }

    @Test
    void theNoDeltaCheckOfTheDeviceStateAllocatesNothing() throws Exception {
        StateSchema<NetDeviceState> schema = StateSchema.of(NetDeviceState.class);
        NetDeviceState live = deviceState();
        NetDeviceState snapshot = schema.snapshot(live);
        long fewest = StateSchemaTest.fewestBytesAllocated(schema, live, snapshot);
        // An allocation per check (a copied array) would be >= 16 bytes x 100,000.
        assertTrue(fewest < 1024, "allocated " + fewest + " bytes over 100,000 checks");
    }
}

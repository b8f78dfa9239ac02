package io.vhostffm.migration.net;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.migration.schema.StateSchema;
import io.vhostffm.vhost.virtio.net.MacTableState;
import io.vhostffm.vhost.virtio.net.RssState;
import io.vhostffm.vhost.virtio.net.RxModeState;
import io.vhostffm.vhost.virtio.net.VirtioNetState;
import io.vhostffm.vhost.virtio.net.VirtioState;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;

/**
 * The virtio-net sections: the device model's records are the schema, so every state group
 * is encoded, compared and named by its own component, with no comparison written by hand.
 */
class NetSectionsTest {
    private static final StateSchema<VirtioNetState> NET = StateSchema.of(VirtioNetState.class);

    static VirtioNetState net() {
        long[] vlans = new long[VirtioNetState.VLAN_WORDS];
        return new VirtioNetState(new byte[] {0x52, 0x54, 0, 0x12, 0x34, 0x56}, MacTableState.EMPTY, 1,
                RxModeState.AFTER_RESET, vlans, 0x2, true, 1, RssState.disabled(false));
    }

    /** Every state group, changed one at a time, by hand-built records (not through the schema). */
    static Map<String, UnaryOperator<VirtioNetState>> groups() {
        Map<String, UnaryOperator<VirtioNetState>> m = new LinkedHashMap<>();
        m.put("mac", n -> new VirtioNetState(new byte[] {0x52, 0x54, 0, 0x12, 0x34, 0x57}, n.macTable(), n.netStatus(),
                n.rxMode(), n.vlanTable(), n.guestOffloads(), n.multiqueue(), n.queuePairs(), n.rss()));
        m.put("macTable.unicast", n -> new VirtioNetState(n.mac(), new MacTableState(new byte[6], new byte[0], false, false),
                n.netStatus(), n.rxMode(), n.vlanTable(), n.guestOffloads(), n.multiqueue(), n.queuePairs(), n.rss()));
        m.put("macTable.multicastOverflow", n -> new VirtioNetState(n.mac(), new MacTableState(new byte[0], new byte[0],
                false, true), n.netStatus(), n.rxMode(), n.vlanTable(), n.guestOffloads(), n.multiqueue(), n.queuePairs(),
                n.rss()));
        m.put("netStatus", n -> new VirtioNetState(n.mac(), n.macTable(), 3, n.rxMode(), n.vlanTable(), n.guestOffloads(),
                n.multiqueue(), n.queuePairs(), n.rss()));
        m.put("rxMode.promisc", n -> new VirtioNetState(n.mac(), n.macTable(), n.netStatus(),
                new RxModeState(false, false, false, false, false, false), n.vlanTable(), n.guestOffloads(), n.multiqueue(),
                n.queuePairs(), n.rss()));
        m.put("vlanTable", n -> {
            long[] v = n.vlanTable();
            v[0] |= 1L << 42;
            return new VirtioNetState(n.mac(), n.macTable(), n.netStatus(), n.rxMode(), v, n.guestOffloads(), n.multiqueue(),
                    n.queuePairs(), n.rss());
        });
        m.put("guestOffloads", n -> new VirtioNetState(n.mac(), n.macTable(), n.netStatus(), n.rxMode(), n.vlanTable(), 0,
                n.multiqueue(), n.queuePairs(), n.rss()));
        m.put("multiqueue", n -> new VirtioNetState(n.mac(), n.macTable(), n.netStatus(), n.rxMode(), n.vlanTable(),
                n.guestOffloads(), false, n.queuePairs(), n.rss()));
        m.put("queuePairs", n -> new VirtioNetState(n.mac(), n.macTable(), n.netStatus(), n.rxMode(), n.vlanTable(),
                n.guestOffloads(), n.multiqueue(), 2, n.rss()));
        m.put("rss.enabled", n -> new VirtioNetState(n.mac(), n.macTable(), n.netStatus(), n.rxMode(), n.vlanTable(),
                n.guestOffloads(), n.multiqueue(), n.queuePairs(), new RssState(true, true, false, RssState.HASH_TYPE_IPV4,
                        new byte[40], new long[] {0}, 0)));
        return m;
    }

    @Test
    void eachGroupChangeIsDetectedAndNamedAndSurvivesTheWire() throws Exception {
        VirtioNetState base = net();
        assertTrue(NET.unchanged(base, NET.snapshot(base)));
        for (Map.Entry<String, UnaryOperator<VirtioNetState>> g : groups().entrySet()) {
            VirtioNetState changed = g.getValue().apply(base);
            assertTrue(!NET.unchanged(changed, NET.snapshot(base)), g.getKey() + " not detected");
            List<String> fields = NET.changedFields(base, changed);
            assertTrue(fields.stream().anyMatch(f -> f.startsWith(g.getKey().split("\\.")[0])),
                    () -> g.getKey() + " reported as " + fields);
            assertEquals(changed, NET.decode(NET.encode(changed)), g.getKey() + " round trip");
        }
    }

    @Test
    void virtioQueuesAndPendingTxAreSchemasToo() throws Exception {
        StateSchema<VirtioState> virtio = StateSchema.of(VirtioState.class);
        VirtioState v = new VirtioState(0x0f, 0x1_3000_0000L, 0x1_3000_0000L, new byte[24]);
        assertEquals(v, virtio.decode(virtio.encode(v)));
        assertEquals(List.of("ackedFeatures"), virtio.changedFields(v, new VirtioState(0x0f, 0x1_3000_0000L, 0x1_0000_0000L,
                new byte[24])));

        StateSchema<QueueLayouts> queues = StateSchema.of(QueueLayouts.class);
        QueueLayouts l = new QueueLayouts(List.of(new QueueLayout(0, 256, 0x10000, 0x11000, 0x12000, true, false),
                new QueueLayout(1, 256, 0x20000, 0x21000, 0x22000, true, false)), List.of());
        assertEquals(l, queues.decode(queues.encode(l)));
        QueueLayouts moved = new QueueLayouts(List.of(new QueueLayout(0, 256, 0x10000, 0x11000, 0x12000, true, false),
                new QueueLayout(1, 256, 0x30000, 0x31000, 0x32000, true, false)), List.of());
        assertTrue(!queues.changedFields(l, moved).isEmpty());

        StateSchema<PendingTx> pending = StateSchema.of(PendingTx.class);
        assertEquals(List.of("chainsInFlight"), pending.changedFields(PendingTx.none(2), new PendingTx(new int[] {0, 3})));
    }

    @Test
    void decodedLayoutsAndPendingTxAreChecked() {
        assertThrows(IllegalArgumentException.class, () -> new QueueLayouts(List.of(new QueueLayout(1, 256, 0, 0, 0, true,
                false), new QueueLayout(0, 256, 0, 0, 0, true, false)), List.of()));
        assertThrows(IllegalArgumentException.class, () -> new PendingTx(new int[] {-1}));
    }
}

package io.vhostffm.jmh;

import static io.vhostffm.vhost.virtio.VirtioFeature.CTRL_GUEST_OFFLOADS;
import static io.vhostffm.vhost.virtio.VirtioFeature.CTRL_RX;
import static io.vhostffm.vhost.virtio.VirtioFeature.CTRL_VLAN;
import static io.vhostffm.vhost.virtio.VirtioFeature.CTRL_VQ;
import static io.vhostffm.vhost.virtio.VirtioFeature.EVENT_IDX;
import static io.vhostffm.vhost.virtio.VirtioFeature.GUEST_CSUM;
import static io.vhostffm.vhost.virtio.VirtioFeature.MAC;
import static io.vhostffm.vhost.virtio.VirtioFeature.MQ;
import static io.vhostffm.vhost.virtio.VirtioFeature.MRG_RXBUF;
import static io.vhostffm.vhost.virtio.VirtioFeature.RSS;
import static io.vhostffm.vhost.virtio.VirtioFeature.STATUS;

import io.vhostffm.migration.schema.StateSchema;
import io.vhostffm.vhost.virtio.net.MacTableState;
import io.vhostffm.vhost.virtio.net.NetDeviceState;
import io.vhostffm.vhost.virtio.net.RssState;
import io.vhostffm.vhost.virtio.net.RxModeState;
import io.vhostffm.vhost.virtio.net.VirtioNetConfigSpace;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vhost.virtio.net.VirtioNetState;
import io.vhostffm.vhost.virtio.net.VirtioState;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/**
 * Delta detection on a realistic virtio-net device state (benchmark 3): at switchover the source
 * checks whether the device state changed since the snapshot it already sent.
 *
 * <p>The state is as full as a driver can make it: a 64-entry MAC filter table (32 unicast, 32
 * multicast, the {@code MAC_TABLE_ENTRIES} QEMU allows), 128 VLANs allowed in the 4096-bit VLAN
 * filter, RSS on with a 40-byte key and a 128-entry indirection table spread over the queue
 * pairs, multiqueue with {@link #pairs} pairs, the 24-byte config space of a device offering MTU,
 * speed and RSS limits. The snapshot is {@link StateSchema#snapshot}'s deep copy, so the no-delta
 * check compares every byte of every array rather than stopping at identical references.
 *
 * <p>{@link #noDelta} is the "nothing changed" check of {@link StateSchema#unchanged} (goal: at
 * most 1 us for one pair). {@link #oneDeltaDetect} is the same check when one entry changed: the
 * last indirection-table entry, the last thing the comparison reaches, so it scans the whole
 * state before it finds the difference. {@link #oneDeltaFields} names the changed field with
 * {@link StateSchema#changedFields}, as a source would to log or resend only that part.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Fork(1)
public class DeltaDetectionBenchmark {
    static final int MAC_ENTRIES = MacTableState.MAX_ENTRIES;
    static final int RSS_TABLE_LENGTH = 128;
    static final int RSS_KEY_SIZE = 40;
    static final int VLANS_ALLOWED = 128;

    /** Queue pairs of the device; the RSS indirection table spreads over them. */
    @Param({"1", "16"})
    public int pairs;

    StateSchema<NetDeviceState> schema;
    NetDeviceState live;
    NetDeviceState snapshot;
    NetDeviceState oneChanged;

    /** Builds the state, its deep snapshot, and the state with one indirection entry changed. */
    @Setup(Level.Trial)
    public void setUp() {
        schema = StateSchema.of(NetDeviceState.class);
        live = fullState(pairs, 0);
        snapshot = schema.snapshot(live);
        oneChanged = fullState(pairs, 1);
        if (!schema.unchanged(live, snapshot) || schema.unchanged(live, oneChanged)) {
            throw new IllegalStateException("fixture: the snapshot must equal the state, the changed one must not");
        }
    }

    /** The no-delta check: every component of the live state against the snapshot. */
    @Benchmark
    public boolean noDelta() {
        return schema.unchanged(live, snapshot);
    }

    /** The same check when the last indirection-table entry changed (a whole scan, then false). */
    @Benchmark
    public boolean oneDeltaDetect() {
        return schema.unchanged(oneChanged, snapshot);
    }

    /** Which fields changed: {@code [net.rss.indirectionTable]}. */
    @Benchmark
    public List<String> oneDeltaFields() {
        return schema.changedFields(snapshot, oneChanged);
    }

    /**
     * A device state as a driver leaves it after configuring everything; {@code lastEntryShift}
     * moves the last indirection-table entry to another queue pair (or, for one pair, to a
     * value one higher, which only a restore's validation would refuse).
     */
    static NetDeviceState fullState(int pairs, int lastEntryShift) {
        byte[] mac = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
        long features = VirtioFeature.maskOf(MAC, STATUS, CTRL_VQ, CTRL_RX, CTRL_VLAN, CTRL_GUEST_OFFLOADS, MQ,
                RSS, MRG_RXBUF, GUEST_CSUM, EVENT_IDX) | 1L << 32; // VIRTIO_F_VERSION_1
        byte[] config = new byte[24];
        System.arraycopy(mac, 0, config, 0, 6);
        config[6] = (byte) VirtioNetConfigSpace.S_LINK_UP;
        config[8] = (byte) pairs;
        config[10] = (byte) 0xdc; // mtu 1500
        config[11] = 0x05;
        config[12] = 0x10; // speed 10000 Mb/s
        config[13] = 0x27;
        config[16] = 1; // full duplex
        config[17] = RSS_KEY_SIZE;
        config[18] = (byte) RSS_TABLE_LENGTH;
        config[20] = (byte) 0xff; // supported hash types
        config[21] = 0x01;
        VirtioState virtio = new VirtioState(0x0f, features, features, config);

        int unicast = MAC_ENTRIES / 2;
        byte[] uni = new byte[6 * unicast];
        byte[] multi = new byte[6 * (MAC_ENTRIES - unicast)];
        for (int i = 0; i < unicast; i++) {
            uni[6 * i] = 0x02; // locally administered
            uni[6 * i + 5] = (byte) i;
            multi[6 * i] = 0x01; // multicast, 01:00:5e:xx (IPv4 groups)
            multi[6 * i + 2] = 0x5e;
            multi[6 * i + 5] = (byte) i;
        }
        MacTableState macTable = new MacTableState(uni, multi, false, false);
        long[] vlans = new long[VirtioNetState.VLAN_WORDS];
        for (int v = 0; v < VLANS_ALLOWED; v++) {
            int vid = 100 + 31 * v; // spread over the table
            vlans[vid >> 6] |= 1L << vid;
        }
        byte[] key = new byte[RSS_KEY_SIZE];
        for (int i = 0; i < key.length; i++) {
            key[i] = (byte) (0x6d + 17 * i);
        }
        long[] table = new long[RSS_TABLE_LENGTH];
        for (int i = 0; i < table.length; i++) {
            table[i] = i % pairs;
        }
        table[table.length - 1] = (table[table.length - 1] + lastEntryShift) % Math.max(pairs, 2);
        RssState rss = new RssState(true, true, false, RssState.ALL_HASH_TYPES, key, table, 0);
        VirtioNetState net = new VirtioNetState(mac, macTable, VirtioNetConfigSpace.S_LINK_UP,
                new RxModeState(false, false, false, false, false, false), vlans,
                VirtioFeature.maskOf(GUEST_CSUM), pairs > 1, pairs, rss);
        return new NetDeviceState(virtio, net);
    }
}

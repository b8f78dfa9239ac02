package io.vhostffm.vhost.virtio.net;

import io.vhostffm.vhost.virtio.DeviceStatus;

import io.vhostffm.vhost.virtio.VirtioFeature;

import static io.vhostffm.vhost.virtio.DeviceStatus.*;

import java.util.Arrays;
import java.util.HexFormat;
import java.util.Optional;

/**
 * Checks an untrusted {@link NetDeviceState} (from a migration stream) against a device's options
 * and offered features before {@link VirtioNetDevice#restore} loads it. The first bad value ends
 * in an {@link InvalidDeviceStateException} naming its field.
 */
final class StateValidator {
    private final VirtioNetOptions options;
    private final long offered;
    private final String backendName;

    StateValidator(VirtioNetOptions options, long offered, String backendName) {
        this.options = options;
        this.offered = offered;
        this.backendName = backendName;
    }

    private static void check(boolean ok, String field, String message) throws InvalidDeviceStateException {
        if (!ok) {
            throw new InvalidDeviceStateException(field, message);
        }
    }

    void validate(NetDeviceState state) throws InvalidDeviceStateException {
        VirtioState virtio = state.virtio();
        VirtioNetState net = state.net();
        int status = virtio.status();
        long acked = virtio.ackedFeatures();
        validateStatus(status);
        long extra = acked & ~virtio.offeredFeatures();
        check(extra == 0, "virtio.ackedFeatures", "acknowledges features the source did not offer: "
                + VirtioFeature.describe(extra));
        long notHere = acked & ~offered;
        check(notHere == 0, "virtio.ackedFeatures", "acknowledges " + VirtioFeature.describe(notHere)
                + ", not offered by this device (backend '" + backendName + "')");
        boolean negotiated = (status & FEATURES_OK) != 0;
        if (negotiated) {
            Optional<String> why = FeatureNegotiation.checkDriverFeatures(offered, acked);
            check(why.isEmpty(), "virtio.ackedFeatures", why.orElse(""));
        }
        validateConfig(virtio.config(), net);
        validateNet(net, negotiated ? acked : 0, negotiated);
    }

    private static void validateStatus(int status) throws InvalidDeviceStateException {
        check((status & ~ALL_BITS) == 0, "virtio.status", String.format("0x%x has bits no spec defines", status));
        check((status & DRIVER) == 0 || (status & ACKNOWLEDGE) != 0, "virtio.status",
                DeviceStatus.describe(status) + ": DRIVER without ACKNOWLEDGE");
        check((status & FEATURES_OK) == 0 || (status & DRIVER) != 0, "virtio.status",
                DeviceStatus.describe(status) + ": FEATURES_OK without DRIVER");
        check((status & DRIVER_OK) == 0 || (status & FEATURES_OK) != 0, "virtio.status",
                DeviceStatus.describe(status) + ": DRIVER_OK without FEATURES_OK");
    }

    private void validateConfig(byte[] config, VirtioNetState net) throws InvalidDeviceStateException {
        check(config.length == VirtioNetConfigSpace.SIZE, "virtio.config",
                "is " + config.length + " bytes, virtio_net_config is " + VirtioNetConfigSpace.SIZE);
        VirtioNetConfigSpace.Fields f = VirtioNetConfigSpace.decode(config);
        check(f.maxVirtqueuePairs() == options.maxQueuePairs(), "virtio.config.max_virtqueue_pairs",
                f.maxVirtqueuePairs() + " differs from this device's " + options.maxQueuePairs());
        check(f.mtu() == options.mtu(), "virtio.config.mtu", f.mtu() + " differs from this device's " + options.mtu());
        check(f.speed() == options.speedMbps(), "virtio.config.speed",
                f.speed() + " differs from this device's " + options.speedMbps());
        check(f.duplex() == options.duplex(), "virtio.config.duplex",
                f.duplex() + " differs from this device's " + options.duplex());
        check(f.rssMaxKeySize() == options.rssMaxKeySize(), "virtio.config.rss_max_key_size",
                f.rssMaxKeySize() + " differs from this device's " + options.rssMaxKeySize());
        check(f.rssMaxIndirectionTableLength() == options.rssMaxIndirectionTableLength(),
                "virtio.config.rss_max_indirection_table_length", f.rssMaxIndirectionTableLength()
                        + " differs from this device's " + options.rssMaxIndirectionTableLength());
        check(f.supportedHashTypes() == options.supportedHashTypes(), "virtio.config.supported_hash_types",
                String.format("0x%x differs from this device's 0x%x", f.supportedHashTypes(),
                        options.supportedHashTypes()));
        check(net.mac().length != 6 || Arrays.equals(f.mac(), net.mac()), "virtio.config.mac",
                HexFormat.of().formatHex(f.mac()) + " differs from net.mac " + HexFormat.of().formatHex(net.mac()));
        check(f.status() == net.netStatus(), "virtio.config.status",
                f.status() + " differs from net.netStatus " + net.netStatus());
    }

    private void validateNet(VirtioNetState net, long acked, boolean negotiated) throws InvalidDeviceStateException {
        check(net.mac().length == 6, "net.mac", "is " + net.mac().length + " bytes, not 6");
        MacTableState table = net.macTable();
        check(table.unicast().length % 6 == 0, "net.macTable.unicast",
                table.unicast().length + " bytes is not a whole number of 6-byte addresses");
        check(table.multicast().length % 6 == 0, "net.macTable.multicast",
                table.multicast().length + " bytes is not a whole number of 6-byte addresses");
        int entries = table.unicastCount() + table.multicastCount();
        check(entries <= MacTableState.MAX_ENTRIES, "net.macTable",
                entries + " entries exceed the table's " + MacTableState.MAX_ENTRIES);
        check(!table.unicastOverflow() || table.unicastCount() == 0, "net.macTable.unicast",
                "holds entries although unicastOverflow is set");
        check(!table.multicastOverflow() || table.multicastCount() == 0, "net.macTable.multicast",
                "holds entries although multicastOverflow is set");
        int knownStatus = VirtioNetConfigSpace.S_LINK_UP | VirtioNetConfigSpace.S_ANNOUNCE;
        check((net.netStatus() & ~knownStatus) == 0, "net.netStatus",
                String.format("0x%x has bits other than LINK_UP and ANNOUNCE", net.netStatus()));
        check(net.vlanTable().length == VirtioNetState.VLAN_WORDS, "net.vlanTable",
                net.vlanTable().length + " words, not " + VirtioNetState.VLAN_WORDS + " (4096 bits)");
        long offloadsAllowed = acked & FeatureNegotiation.GUEST_OFFLOAD_FEATURES;
        long badOffloads = net.guestOffloads() & ~offloadsAllowed;
        check(badOffloads == 0, "net.guestOffloads",
                VirtioFeature.describe(badOffloads) + " are not negotiated guest offloads");
        boolean multiqueue = negotiated && (VirtioFeature.MQ.in(acked) || VirtioFeature.RSS.in(acked));
        check(net.multiqueue() == multiqueue, "net.multiqueue",
                net.multiqueue() + " disagrees with the acknowledged features (MQ or RSS: " + multiqueue + ")");
        check(net.queuePairs() >= 1 && net.queuePairs() <= options.maxQueuePairs(), "net.queuePairs",
                net.queuePairs() + " is outside 1.." + options.maxQueuePairs() + " (max_virtqueue_pairs)");
        check(multiqueue || net.queuePairs() == 1, "net.queuePairs",
                net.queuePairs() + " pairs without multiqueue negotiated");
        validateRss(net.rss(), acked, negotiated);
    }

    private void validateRss(RssState rss, long acked, boolean negotiated) throws InvalidDeviceStateException {
        boolean hashReport = VirtioFeature.HASH_REPORT.in(acked);
        check(!negotiated || rss.populateHash() == hashReport, "net.rss.populateHash",
                rss.populateHash() + " disagrees with VIRTIO_NET_F_HASH_REPORT negotiated = " + hashReport);
        check(negotiated || !rss.populateHash(), "net.rss.populateHash", "set before feature negotiation");
        if (!rss.enabled()) {
            check(!rss.redirect() && rss.hashTypes() == 0 && rss.key().length == 0
                            && rss.indirectionTable().length == 0 && rss.defaultQueue() == 0,
                    "net.rss", "disabled but carries a configuration: " + rss);
            return;
        }
        check(VirtioFeature.RSS.in(acked) || hashReport, "net.rss.enabled",
                "set without VIRTIO_NET_F_RSS or VIRTIO_NET_F_HASH_REPORT negotiated");
        check(!rss.redirect() || VirtioFeature.RSS.in(acked), "net.rss.redirect",
                "set without VIRTIO_NET_F_RSS negotiated");
        long unsupported = Integer.toUnsignedLong(rss.hashTypes()) & ~Integer.toUnsignedLong(options.supportedHashTypes());
        check(unsupported == 0, "net.rss.hashTypes", String.format("0x%x not in supported_hash_types 0x%x",
                unsupported, options.supportedHashTypes()));
        check(rss.key().length <= options.rssMaxKeySize(), "net.rss.key",
                rss.key().length + " bytes exceed rss_max_key_size " + options.rssMaxKeySize());
        check(rss.key().length > 0 || rss.hashTypes() == 0, "net.rss.key", "empty while hashTypes is not zero");
        long[] table = rss.indirectionTable();
        if (rss.redirect()) {
            check(table.length > 0 && Integer.bitCount(table.length) == 1
                            && table.length <= options.rssMaxIndirectionTableLength(),
                    "net.rss.indirectionTable", table.length + " entries: not a power of two in 1.."
                            + options.rssMaxIndirectionTableLength());
            for (int i = 0; i < table.length; i++) {
                check(table[i] >= 0 && table[i] < options.maxQueuePairs(), "net.rss.indirectionTable[" + i + "]",
                        table[i] + " is not a receive queue (max_virtqueue_pairs " + options.maxQueuePairs() + ")");
            }
            check(rss.defaultQueue() >= 0 && rss.defaultQueue() < options.maxQueuePairs(), "net.rss.defaultQueue",
                    rss.defaultQueue() + " is not a receive queue (max_virtqueue_pairs " + options.maxQueuePairs() + ")");
        } else {
            check(table.length == 0, "net.rss.indirectionTable", "not empty while redirect is off");
            check(rss.defaultQueue() == 0, "net.rss.defaultQueue", "not 0 while redirect is off");
        }
    }
}

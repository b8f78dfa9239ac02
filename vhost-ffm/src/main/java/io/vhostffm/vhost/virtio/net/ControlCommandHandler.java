package io.vhostffm.vhost.virtio.net;

import io.vhostffm.vhost.virtio.VirtioFeature;

import static io.vhostffm.vhost.virtio.net.VirtioNetCtrl.*;

import io.vhostffm.vhost.virtio.net.CommandReader.MalformedCommandException;
import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * Carries out one control-queue command (virtio 1.3, 5.1.6.5) on an immutable {@link
 * VirtioNetState}: parses the command from its device-readable buffers, checks it, and computes
 * the new state. It touches nothing else; the device commits the new state and tells the backend.
 *
 * <p>Every command that cannot be carried out, for whatever reason, gives {@link VirtioNetCtrl#ERR}
 * and leaves the state as it was (QEMU disables RSS on a bad RSS_CONFIG; here a bad command has no
 * effect at all). Where QEMU ignores trailing bytes after a fixed-size payload, so does this
 * handler; MAC_TABLE_SET and MAC_ADDR_SET, which QEMU checks exactly, must be exact here too.
 */
final class ControlCommandHandler {

    /** The result: the ack and the state to commit (the old one on ERR). */
    record Outcome(ControlAck ack, VirtioNetState state) {}

    private final VirtioNetOptions options;

    ControlCommandHandler(VirtioNetOptions options) {
        this.options = options;
    }

    Outcome handle(VirtioNetState state, long acked, List<MemorySegment> readable) {
        CommandReader in = new CommandReader(readable);
        String name = "control command";
        try {
            int ctrlClass = in.u8("class");
            int command = in.u8("command");
            name = VirtioNetCtrl.name(ctrlClass, command);
            VirtioNetState next = switch (ctrlClass) {
                case CLASS_RX -> rx(state, acked, command, in);
                case CLASS_MAC -> mac(state, acked, command, in);
                case CLASS_VLAN -> vlan(state, acked, command, in);
                case CLASS_ANNOUNCE -> announce(state, acked, command, in);
                case CLASS_MQ -> mq(state, acked, command, in);
                case CLASS_GUEST_OFFLOADS -> guestOffloads(state, acked, command, in);
                default -> throw new MalformedCommandException("unknown class " + ctrlClass);
            };
            return new Outcome(ControlAck.ok(name), next);
        } catch (MalformedCommandException e) {
            return new Outcome(ControlAck.err(name, e.getMessage()), state);
        }
    }

    private static void require(long acked, VirtioFeature feature) throws MalformedCommandException {
        if (!feature.in(acked)) {
            throw new MalformedCommandException(feature.specName() + " was not negotiated");
        }
    }

    private static MalformedCommandException unknownCommand(int ctrlClass, int command) {
        return new MalformedCommandException("unknown command " + command + " in class " + ctrlClass);
    }

    // 5.1.6.5.1: PROMISC and ALLMULTI need CTRL_RX, the other four CTRL_RX_EXTRA.
    private static VirtioNetState rx(VirtioNetState state, long acked, int command, CommandReader in)
            throws MalformedCommandException {
        switch (command) {
            case RX_PROMISC, RX_ALLMULTI -> require(acked, VirtioFeature.CTRL_RX);
            case RX_ALLUNI, RX_NOMULTI, RX_NOUNI, RX_NOBCAST -> require(acked, VirtioFeature.CTRL_RX_EXTRA);
            default -> throw unknownCommand(CLASS_RX, command);
        }
        boolean on = in.u8("on") != 0;
        return state.withRxMode(state.rxMode().with(command, on));
    }

    private static VirtioNetState mac(VirtioNetState state, long acked, int command, CommandReader in)
            throws MalformedCommandException {
        switch (command) {
            case MAC_TABLE_SET -> {
                require(acked, VirtioFeature.CTRL_RX);
                return state.withMacTable(macTable(in));
            }
            case MAC_ADDR_SET -> {
                require(acked, VirtioFeature.CTRL_MAC_ADDR);
                byte[] mac = in.bytes(6, "mac");
                if (in.remaining() != 0) {
                    throw new MalformedCommandException("mac is 6 bytes but the command carries "
                            + (in.remaining() + 6) + " after its header");
                }
                return state.withMac(mac);
            }
            default -> throw unknownCommand(CLASS_MAC, command);
        }
    }

    /**
     * Two {@code virtio_net_ctrl_mac} lists, unicast then multicast, filling the table from the
     * front as QEMU does: a list that does not fit in what is left sets its overflow flag.
     */
    private static MacTableState macTable(CommandReader in) throws MalformedCommandException {
        long uniEntries = in.le32("unicast entries");
        long uniBytes = uniEntries * 6; // at most 2^32 * 6, no overflow in a long
        if (uniBytes > in.remaining()) {
            throw new MalformedCommandException("unicast entries = " + uniEntries + " needs " + uniBytes
                    + " bytes at offset " + in.position() + " but the command has " + in.remaining() + " left");
        }
        boolean uniOverflow = uniEntries > MacTableState.MAX_ENTRIES;
        byte[] unicast;
        if (uniOverflow) {
            in.skip(uniBytes, "unicast macs");
            unicast = new byte[0];
        } else {
            unicast = in.bytes(uniBytes, "unicast macs");
        }
        long multiEntries = in.le32("multicast entries");
        long multiBytes = multiEntries * 6;
        if (multiBytes != in.remaining()) {
            throw new MalformedCommandException("multicast entries = " + multiEntries + " needs " + multiBytes
                    + " bytes at offset " + in.position() + " but the command has " + in.remaining() + " left");
        }
        boolean multiOverflow = multiEntries > MacTableState.MAX_ENTRIES - unicast.length / 6;
        byte[] multicast;
        if (multiOverflow) {
            in.skip(multiBytes, "multicast macs");
            multicast = new byte[0];
        } else {
            multicast = in.bytes(multiBytes, "multicast macs");
        }
        return new MacTableState(unicast, multicast, uniOverflow, multiOverflow);
    }

    private static VirtioNetState vlan(VirtioNetState state, long acked, int command, CommandReader in)
            throws MalformedCommandException {
        if (command != VLAN_ADD && command != VLAN_DEL) {
            throw unknownCommand(CLASS_VLAN, command);
        }
        require(acked, VirtioFeature.CTRL_VLAN);
        int vid = in.le16("vlan id");
        if (vid >= VirtioNetState.MAX_VLAN) {
            throw new MalformedCommandException("vlan id " + vid + " is outside 0..4095");
        }
        return state.withVlan(vid, command == VLAN_ADD);
    }

    // QEMU answers ERR to an ACK with no announcement pending; so does this device.
    private static VirtioNetState announce(VirtioNetState state, long acked, int command, CommandReader in)
            throws MalformedCommandException {
        if (command != ANNOUNCE_ACK) {
            throw unknownCommand(CLASS_ANNOUNCE, command);
        }
        require(acked, VirtioFeature.GUEST_ANNOUNCE);
        if ((state.netStatus() & VirtioNetConfigSpace.S_ANNOUNCE) == 0) {
            throw new MalformedCommandException("no announcement is pending (status has no VIRTIO_NET_S_ANNOUNCE)");
        }
        return state.withNetStatus(state.netStatus() & ~VirtioNetConfigSpace.S_ANNOUNCE);
    }

    private VirtioNetState mq(VirtioNetState state, long acked, int command, CommandReader in)
            throws MalformedCommandException {
        switch (command) {
            case MQ_VQ_PAIRS_SET -> {
                require(acked, VirtioFeature.MQ);
                int pairs = in.le16("virtqueue_pairs");
                checkQueuePairs(pairs, "virtqueue_pairs");
                return state.withQueues(true, pairs);
            }
            case MQ_RSS_CONFIG -> {
                require(acked, VirtioFeature.RSS);
                return rssConfig(state, acked, in);
            }
            case MQ_HASH_CONFIG -> {
                require(acked, VirtioFeature.HASH_REPORT);
                return hashConfig(state, acked, in);
            }
            default -> throw unknownCommand(CLASS_MQ, command);
        }
    }

    private void checkQueuePairs(int pairs, String field) throws MalformedCommandException {
        if (pairs < MQ_VQ_PAIRS_MIN || pairs > options.maxQueuePairs()) {
            throw new MalformedCommandException(field + " = " + pairs + " is outside 1.." + options.maxQueuePairs()
                    + " (max_virtqueue_pairs)");
        }
    }

    /**
     * {@code struct virtio_net_rss_config}: le32 hash_types; le16 indirection_table_mask; le16
     * unclassified_queue; le16 indirection_table[mask + 1]; le16 max_tx_vq; u8 hash_key_length;
     * u8 hash_key_data[hash_key_length].
     */
    private VirtioNetState rssConfig(VirtioNetState state, long acked, CommandReader in)
            throws MalformedCommandException {
        int hashTypes = checkHashTypes(in.le32("hash_types"));
        int mask = in.le16("indirection_table_mask");
        int length = mask + 1;
        if (Integer.bitCount(length) != 1) {
            throw new MalformedCommandException("indirection_table_mask = " + mask
                    + ": the table length " + length + " is not a power of two");
        }
        if (length > options.rssMaxIndirectionTableLength()) {
            throw new MalformedCommandException("indirection table length " + length + " exceeds "
                    + "rss_max_indirection_table_length " + options.rssMaxIndirectionTableLength());
        }
        int unclassified = in.le16("unclassified_queue");
        checkQueueIndex(unclassified, "unclassified_queue");
        long[] table = new long[length];
        for (int i = 0; i < length; i++) {
            int queue = in.le16("indirection_table[" + i + "]");
            checkQueueIndex(queue, "indirection_table[" + i + "]");
            table[i] = queue;
        }
        int maxTxVq = in.le16("max_tx_vq");
        checkQueuePairs(maxTxVq, "max_tx_vq");
        byte[] key = hashKey(in, hashTypes);
        boolean populate = VirtioFeature.HASH_REPORT.in(acked);
        RssState rss = hashTypes == 0 && key.length == 0
                ? RssState.disabled(populate) // the driver turns RSS off this way
                : new RssState(true, true, populate, hashTypes, key, table, unclassified);
        return state.withRss(rss).withQueues(true, maxTxVq);
    }

    /**
     * {@code struct virtio_net_hash_config}: le32 hash_types; le16 reserved[4]; u8 hash_key_length;
     * u8 hash_key_data[hash_key_length]. Hashing without redirection; queue pairs unchanged.
     */
    private VirtioNetState hashConfig(VirtioNetState state, long acked, CommandReader in)
            throws MalformedCommandException {
        int hashTypes = checkHashTypes(in.le32("hash_types"));
        in.bytes(8, "reserved");
        byte[] key = hashKey(in, hashTypes);
        boolean populate = VirtioFeature.HASH_REPORT.in(acked);
        RssState rss = hashTypes == 0 && key.length == 0
                ? RssState.disabled(populate)
                : new RssState(true, false, populate, hashTypes, key, new long[0], 0);
        return state.withRss(rss);
    }

    private int checkHashTypes(long hashTypes) throws MalformedCommandException {
        long unsupported = hashTypes & ~Integer.toUnsignedLong(options.supportedHashTypes());
        if (unsupported != 0) {
            throw new MalformedCommandException(String.format(
                    "hash_types 0x%x has types 0x%x not in supported_hash_types 0x%x", hashTypes, unsupported,
                    options.supportedHashTypes()));
        }
        return (int) hashTypes;
    }

    private void checkQueueIndex(int queue, String field) throws MalformedCommandException {
        if (queue >= options.maxQueuePairs()) {
            throw new MalformedCommandException(field + " = " + queue + " is not a receive queue (max_virtqueue_pairs "
                    + options.maxQueuePairs() + ")");
        }
    }

    private byte[] hashKey(CommandReader in, int hashTypes) throws MalformedCommandException {
        int keyLength = in.u8("hash_key_length");
        if (keyLength > options.rssMaxKeySize()) {
            throw new MalformedCommandException("hash_key_length " + keyLength + " exceeds rss_max_key_size "
                    + options.rssMaxKeySize());
        }
        if (keyLength == 0 && hashTypes != 0) {
            throw new MalformedCommandException("hash_types is not zero but no hash key is given");
        }
        return in.bytes(keyLength, "hash_key_data");
    }

    // 5.1.6.5.6.2: only offloads whose feature was negotiated.
    private static VirtioNetState guestOffloads(VirtioNetState state, long acked, int command, CommandReader in)
            throws MalformedCommandException {
        if (command != GUEST_OFFLOADS_SET) {
            throw unknownCommand(CLASS_GUEST_OFFLOADS, command);
        }
        require(acked, VirtioFeature.CTRL_GUEST_OFFLOADS);
        long offloads = in.le64("offloads");
        long allowed = acked & FeatureNegotiation.GUEST_OFFLOAD_FEATURES;
        long refused = offloads & ~allowed;
        if (refused != 0) {
            throw new MalformedCommandException("offloads " + VirtioFeature.describe(refused)
                    + " are not negotiated guest offloads");
        }
        return state.withGuestOffloads(offloads);
    }
}

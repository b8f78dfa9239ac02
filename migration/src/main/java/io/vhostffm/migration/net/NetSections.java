package io.vhostffm.migration.net;

import io.vhostffm.vhost.virtio.net.VirtioNetState;
import io.vhostffm.vhost.virtio.net.VirtioState;

/**
 * The state sections of a virtio-net device on the migration stream. Each is one record of the
 * device model (or of this package), and that record is its whole description: the generic
 * {@link io.vhostffm.migration.schema.StateSchema} encodes, snapshots and compares it, so no
 * field can be sent but not compared, or compared but not sent.
 *
 * <table>
 * <caption>sections</caption>
 * <tr><th>id</th><th>name</th><th>record</th><th>what it holds</th></tr>
 * <tr><td>{@value #VIRTIO}</td><td>{@value #VIRTIO_NAME}</td><td>{@link VirtioState}</td>
 *     <td>device status, offered and acked features, config bytes</td></tr>
 * <tr><td>{@value #QUEUES}</td><td>{@value #QUEUES_NAME}</td><td>{@link QueueLayouts}</td>
 *     <td>each queue's state from vring, minus the runtime indices</td></tr>
 * <tr><td>{@value #NET}</td><td>{@value #NET_NAME}</td><td>{@link VirtioNetState}</td>
 *     <td>MAC, MAC table with overflow flags, net status, rx-filter flags, VLAN table, guest
 *     offloads, multiqueue and queue pairs, RSS</td></tr>
 * <tr><td>{@value #PENDING_TX}</td><td>{@value #PENDING_TX_NAME}</td><td>{@link PendingTx}</td>
 *     <td>pending tx per queue</td></tr>
 * </table>
 * Ring indices are in none of them: they travel as the final indices of the switchover.
 */
public final class NetSections {
    private NetSections() {}

    public static final int VIRTIO = 0x0001;
    public static final String VIRTIO_NAME = "virtio";
    public static final int QUEUES = 0x0002;
    public static final String QUEUES_NAME = "virtio.queues";
    public static final int NET = 0x0003;
    public static final String NET_NAME = "virtio-net";
    public static final int PENDING_TX = 0x0004;
    public static final String PENDING_TX_NAME = "virtio-net.pending-tx";
}

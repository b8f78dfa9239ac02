package io.vhostffm.vhost.virtio.net;

import java.io.IOException;

/**
 * What a backend (kernel vhost-net or the userspace datapath) hears from the device model: the
 * effects of control commands and of status changes that concern its datapath. Every method has
 * an empty default, so a backend implements only what concerns it.
 *
 * <p>Called with the device's lock held, on the thread that drove the device (a vCPU exit, the
 * control queue's handler). The change-carrying methods may throw: the device then answers the
 * control command with VIRTIO_NET_ERR and keeps its previous state.
 */
public interface NetDeviceListener {

    /**
     * The guest's receive offloads changed (GUEST_OFFLOADS_SET, or negotiation at FEATURES_OK):
     * a TAP backend calls TUNSETOFFLOAD with {@code tunOffloadFlags}.
     */
    default void guestOffloadsChanged(long guestOffloads, int tunOffloadFlags) throws IOException {}

    /**
     * The number of active queue pairs changed (VQ_PAIRS_SET, RSS_CONFIG): enable pairs below
     * {@code activePairs}, disable the rest (TUNSETQUEUE, NET_SET_BACKEND).
     */
    default void queuePairsChanged(int activePairs) throws IOException {}

    /** The MAC, MAC table, rx mode or VLAN table changed: a userspace datapath filters with {@code filter}. */
    default void rxFilterChanged(RxFilter filter) throws IOException {}

    /** RSS or hash reporting changed (RSS_CONFIG, HASH_CONFIG, reset). */
    default void rssChanged(RssState rss) throws IOException {}

    /** The config space changed under the driver: send it a configuration change notification. */
    default void configChanged() {}

    /** The driver set DRIVER_OK: the datapath may start. A failure puts the device in NEEDS_RESET. */
    default void driverOk(NetDeviceState state) throws IOException {}

    /** The driver reset the device (status 0): stop the datapath, forget the queues. */
    default void reset() {}

    /** The device entered DEVICE_NEEDS_RESET: stop the datapath; the reason says why. */
    default void needsReset(String reason) {}

    /** A driver or transport access was refused; the device is unchanged. {@code reason} names it. */
    default void refused(String reason) {}
}

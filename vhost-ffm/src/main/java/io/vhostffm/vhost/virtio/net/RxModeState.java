package io.vhostffm.vhost.virtio.net;

/**
 * The receive-filter mode flags set by the VIRTIO_NET_CTRL_RX commands (virtio 1.3, 5.1.6.5.1).
 * After a reset the device is promiscuous, as QEMU's is, so that a driver without CTRL_RX gets
 * every frame.
 *
 * @param promisc VIRTIO_NET_CTRL_RX_PROMISC: accept every frame
 * @param allMulti VIRTIO_NET_CTRL_RX_ALLMULTI: accept every multicast frame
 * @param allUni VIRTIO_NET_CTRL_RX_ALLUNI: accept every unicast frame
 * @param noMulti VIRTIO_NET_CTRL_RX_NOMULTI: drop every multicast frame (broadcast excepted)
 * @param noUni VIRTIO_NET_CTRL_RX_NOUNI: drop every unicast frame
 * @param noBroadcast VIRTIO_NET_CTRL_RX_NOBCAST: drop broadcast frames
 */
public record RxModeState(boolean promisc, boolean allMulti, boolean allUni, boolean noMulti, boolean noUni,
        boolean noBroadcast) {

    /** The mode after a device reset: promiscuous, nothing else. */
    public static final RxModeState AFTER_RESET = new RxModeState(true, false, false, false, false, false);

    /** This mode with the flag of an RX command ({@code VIRTIO_NET_CTRL_RX_*}) set to {@code on}. */
    RxModeState with(int rxCommand, boolean on) {
        return switch (rxCommand) {
            case VirtioNetCtrl.RX_PROMISC -> new RxModeState(on, allMulti, allUni, noMulti, noUni, noBroadcast);
            case VirtioNetCtrl.RX_ALLMULTI -> new RxModeState(promisc, on, allUni, noMulti, noUni, noBroadcast);
            case VirtioNetCtrl.RX_ALLUNI -> new RxModeState(promisc, allMulti, on, noMulti, noUni, noBroadcast);
            case VirtioNetCtrl.RX_NOMULTI -> new RxModeState(promisc, allMulti, allUni, on, noUni, noBroadcast);
            case VirtioNetCtrl.RX_NOUNI -> new RxModeState(promisc, allMulti, allUni, noMulti, on, noBroadcast);
            case VirtioNetCtrl.RX_NOBCAST -> new RxModeState(promisc, allMulti, allUni, noMulti, noUni, on);
            default -> throw new IllegalArgumentException("no RX command " + rxCommand);
        };
    }
}

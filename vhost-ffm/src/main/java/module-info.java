/**
 * The native layer of vhost-ffm and the virtio-net device built on it.
 *
 * <ul>
 *   <li>{@code io.vhostffm.vhost.os}: OS primitives through FFM: file descriptors, errno, eventfd,
 *       memfd guest memory, TAP, packet and UNIX sockets, the ioctl catalogue.</li>
 *   <li>{@code io.vhostffm.vhost.virtio}: virtio vocabulary: feature bits, device status bits.</li>
 *   <li>{@code io.vhostffm.vhost.virtio.net}: the virtio-net device model (features, status,
 *       config space, control queue, state records). Pure Java.</li>
 *   <li>{@code io.vhostffm.vhost.device}: the device runtime, the {@code NetBackend} interface
 *       and its value types.</li>
 *   <li>{@code io.vhostffm.vhost.device.kernel}: the kernel's vhost-net (its ioctls and the
 *       backend on them); {@code io.vhostffm.vhost.device.userspace}: the Java datapath.</li>
 *   <li>{@code io.vhostffm.vhost.vhostuser}: the vhost-user protocol (messages, codec,
 *       connection); {@code io.vhostffm.vhost.vhostuser.backend}: the device side serving a
 *       vhost-user frontend (QEMU, DPDK virtio-user) on the userspace datapath and a TAP;
 *       {@code io.vhostffm.vhost.vhostuser.frontend}: the frontend side, a {@code NetBackend}
 *       whose datapath is an external vhost-user backend process (DPDK's net_vhost).</li>
 * </ul>
 */
module io.vhostffm.vhost {
    requires transitive io.vhostffm.vring;
    requires jdk.jfr; // IoctlEvent

    exports io.vhostffm.vhost.os;
    exports io.vhostffm.vhost.virtio;
    exports io.vhostffm.vhost.virtio.net;
    exports io.vhostffm.vhost.device;
    exports io.vhostffm.vhost.device.kernel;
    exports io.vhostffm.vhost.device.userspace;
    exports io.vhostffm.vhost.vhostuser;
    exports io.vhostffm.vhost.vhostuser.backend;
    exports io.vhostffm.vhost.vhostuser.frontend;
}

/**
 * The FFM layer of vhost-ffm: libc downcalls with per-thread errno, file descriptors, eventfd,
 * memfd guest memory, TAP devices, the vhost-net ioctls, and the virtio-net device with its kernel
 * and userspace backends.
 */
module io.vhostffm.vhost {
    requires transitive io.vhostffm.vring;

    exports io.vhostffm.vhost;
    exports io.vhostffm.vhost.net;
    exports io.vhostffm.vhost.device.userspace;
    exports io.vhostffm.vhost.device;
}

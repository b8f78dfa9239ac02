/**
 * The FFM layer of vhost-ffm: libc downcalls with per-thread errno, file descriptors, eventfd,
 * memfd guest memory, TAP devices, the vhost-net ioctls, and the virtio-net device with its kernel
 * and userspace backends.
 */
@SuppressWarnings("module") // io.vhostffm.migration is built after this module
module io.vhostffm.vhost {
    requires transitive io.vhostffm.vring;

    exports io.vhostffm.vhost;
    exports io.vhostffm.vhost.net;
    exports io.vhostffm.vhost.device.userspace;
    exports io.vhostffm.vhost.device;

    // Migration's StateSchema reads the device-state records' fields directly: their accessors
    // copy arrays, and the no-delta check at stop-and-copy must not allocate.
    opens io.vhostffm.vhost.net to io.vhostffm.migration;
}

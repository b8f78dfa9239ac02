/** A first virtio-net device with vhost-ffm. */
module com.example.firstdevice {
    requires io.vhostffm.vhost;
    requires io.vhostffm.testkit;
}

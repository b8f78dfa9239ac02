/**
 * The fake guest of vhost-ffm, for tests of a virtio-net device, as rust-vmm virtio-queue's
 * {@code MockSplitQueue} is for its users: a hypervisor author's tests can drive a device with it.
 *
 * <ul>
 *   <li>{@link io.vhostffm.testkit.GuestLayout}: where every ring and buffer lives in guest-physical
 *       memory, computed from the queue count and sizes, checked for overlaps.</li>
 *   <li>{@link io.vhostffm.testkit.FakeGuest}: the driver side of every virtqueue (split or packed),
 *       feature negotiation, receive buffers (mergeable), transmit chains, the control queue,
 *       save and restore of the driver's state across a migration.</li>
 *   <li>{@link io.vhostffm.testkit.Frames} and {@link io.vhostffm.testkit.StreamCheck}: numbered
 *       frames and the exactly-once, in-order check of a stream.</li>
 *   <li>{@link io.vhostffm.testkit.NetworkSide}: the far side of the TAP, with a window so the host
 *       never drops a frame towards the guest.</li>
 *   <li>{@link io.vhostffm.testkit.IoctlRecorder} and {@link io.vhostffm.testkit.OpenDescriptors}:
 *       what a backend asked the kernel, and which descriptors a test left open.</li>
 *   <li>{@link io.vhostffm.testkit.ResourceLedger}: descriptors by kind, the library's threads
 *       and mapped guest memory, and which of them grew.</li>
 * </ul>
 */
module io.vhostffm.testkit {
    requires transitive io.vhostffm.vhost;

    exports io.vhostffm.testkit;
}

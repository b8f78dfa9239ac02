/**
 * The virtio-net device model shared by the kernel (vhost-net) and userspace backends: feature
 * negotiation ({@link io.vhostffm.vhost.virtio.net.FeatureNegotiation}), the device status state machine,
 * the config space ({@link io.vhostffm.vhost.virtio.net.VirtioNetConfigSpace}), the control queue
 * ({@link io.vhostffm.vhost.virtio.net.VirtioNetDevice#handleControl}), the receive filter of the
 * userspace datapath ({@link io.vhostffm.vhost.virtio.net.RxFilter}) and the immutable state records
 * migration carries ({@link io.vhostffm.vhost.virtio.net.NetDeviceState}). Pure Java: no native call.
 */
package io.vhostffm.vhost.virtio.net;

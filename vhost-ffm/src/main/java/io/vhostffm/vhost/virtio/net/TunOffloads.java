package io.vhostffm.vhost.virtio.net;

import io.vhostffm.vhost.device.BackendCapabilities;
import io.vhostffm.vhost.os.TunOffload;

import static io.vhostffm.vhost.virtio.VirtioFeature.*;

/**
 * The mapping between a guest's virtio-net offloads and the {@code TUNSETOFFLOAD} flags (defined
 * once, by {@link TunOffload}): the flags
 * that let a TAP device hand the guest what its current guest offloads accept. A pure function of the offload bits.
 *
 * <p>The kernel only honours segmentation offloads on top of checksum offload, and ECN only on top
 * of TSO, so without GUEST_CSUM nothing is turned on and GUEST_ECN without TSO adds nothing (the
 * same rules as QEMU's TAP code).
 */
public final class TunOffloads {

    private TunOffloads() {}

    /** The TUNSETOFFLOAD argument for guest offloads given as virtio-net feature bits. */
    public static int fromGuestOffloads(long guestOffloads) {
        if (!GUEST_CSUM.in(guestOffloads)) {
            return 0;
        }
        int flags = TunOffload.CSUM.value();
        if (GUEST_TSO4.in(guestOffloads)) flags |= TunOffload.TSO4.value();
        if (GUEST_TSO6.in(guestOffloads)) flags |= TunOffload.TSO6.value();
        if (GUEST_ECN.in(guestOffloads) && (flags & (TunOffload.TSO4.value() | TunOffload.TSO6.value())) != 0) {
            flags |= TunOffload.TSO_ECN.value();
        }
        if (GUEST_UFO.in(guestOffloads)) flags |= TunOffload.UFO.value();
        if (GUEST_USO4.in(guestOffloads)) flags |= TunOffload.USO4.value();
        if (GUEST_USO6.in(guestOffloads)) flags |= TunOffload.USO6.value();
        return flags;
    }

    /**
     * The virtio-net offload features a TAP device can carry, for a backend's {@link
     * BackendCapabilities}: with a virtio-net header ({@code IFF_VNET_HDR}) the device side takes
     * the guest's partial checksums and TSO (CSUM, HOST_TSO4/6, HOST_ECN) and the guest may get
     * them (GUEST_CSUM, GUEST_TSO4/6, GUEST_ECN); UFO and USO only where the kernel accepted
     * {@code TunOffload.UFO.value()} / {@code TunOffload.USO4.value()|TunOffload.USO6.value()} in {@code supportedTunFlags}.
     */
    public static long virtioFeaturesFor(boolean vnetHeader, int supportedTunFlags) {
        if (!vnetHeader) {
            return 0;
        }
        long features = maskOf(CSUM, HOST_TSO4, HOST_TSO6, HOST_ECN, GUEST_CSUM, GUEST_TSO4, GUEST_TSO6, GUEST_ECN);
        if ((supportedTunFlags & TunOffload.UFO.value()) != 0) {
            features |= maskOf(HOST_UFO, GUEST_UFO);
        }
        if ((supportedTunFlags & (TunOffload.USO4.value() | TunOffload.USO6.value())) == (TunOffload.USO4.value() | TunOffload.USO6.value())) {
            features |= maskOf(HOST_USO, GUEST_USO4, GUEST_USO6);
        }
        return features;
    }
}

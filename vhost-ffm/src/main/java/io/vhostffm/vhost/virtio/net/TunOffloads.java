package io.vhostffm.vhost.virtio.net;

import io.vhostffm.vhost.device.BackendCapabilities;

import static io.vhostffm.vhost.virtio.VirtioFeature.*;

/**
 * The {@code TUNSETOFFLOAD} flags ({@code <linux/if_tun.h>}) that let a TAP device hand the guest
 * what its current guest offloads accept. A pure function of the offload bits.
 *
 * <p>The kernel only honours segmentation offloads on top of checksum offload, and ECN only on top
 * of TSO, so without GUEST_CSUM nothing is turned on and GUEST_ECN without TSO adds nothing (the
 * same rules as QEMU's TAP code).
 */
public final class TunOffloads {
    /** TUN_F_CSUM: the receiver can take packets with partial checksums. */
    public static final int TUN_F_CSUM = 0x01;
    /** TUN_F_TSO4. */
    public static final int TUN_F_TSO4 = 0x02;
    /** TUN_F_TSO6. */
    public static final int TUN_F_TSO6 = 0x04;
    /** TUN_F_TSO_ECN. */
    public static final int TUN_F_TSO_ECN = 0x08;
    /** TUN_F_UFO. */
    public static final int TUN_F_UFO = 0x10;
    /** TUN_F_USO4. */
    public static final int TUN_F_USO4 = 0x20;
    /** TUN_F_USO6. */
    public static final int TUN_F_USO6 = 0x40;

    private TunOffloads() {}

    /** The TUNSETOFFLOAD argument for guest offloads given as virtio-net feature bits. */
    public static int fromGuestOffloads(long guestOffloads) {
        if (!GUEST_CSUM.in(guestOffloads)) {
            return 0;
        }
        int flags = TUN_F_CSUM;
        if (GUEST_TSO4.in(guestOffloads)) flags |= TUN_F_TSO4;
        if (GUEST_TSO6.in(guestOffloads)) flags |= TUN_F_TSO6;
        if (GUEST_ECN.in(guestOffloads) && (flags & (TUN_F_TSO4 | TUN_F_TSO6)) != 0) flags |= TUN_F_TSO_ECN;
        if (GUEST_UFO.in(guestOffloads)) flags |= TUN_F_UFO;
        if (GUEST_USO4.in(guestOffloads)) flags |= TUN_F_USO4;
        if (GUEST_USO6.in(guestOffloads)) flags |= TUN_F_USO6;
        return flags;
    }

    /**
     * The virtio-net offload features a TAP device can carry, for a backend's {@link
     * BackendCapabilities}: with a virtio-net header ({@code IFF_VNET_HDR}) the device side takes
     * the guest's partial checksums and TSO (CSUM, HOST_TSO4/6, HOST_ECN) and the guest may get
     * them (GUEST_CSUM, GUEST_TSO4/6, GUEST_ECN); UFO and USO only where the kernel accepted
     * {@code TUN_F_UFO} / {@code TUN_F_USO4|TUN_F_USO6} in {@code supportedTunFlags}.
     */
    public static long virtioFeaturesFor(boolean vnetHeader, int supportedTunFlags) {
        if (!vnetHeader) {
            return 0;
        }
        long features = maskOf(CSUM, HOST_TSO4, HOST_TSO6, HOST_ECN, GUEST_CSUM, GUEST_TSO4, GUEST_TSO6, GUEST_ECN);
        if ((supportedTunFlags & TUN_F_UFO) != 0) {
            features |= maskOf(HOST_UFO, GUEST_UFO);
        }
        if ((supportedTunFlags & (TUN_F_USO4 | TUN_F_USO6)) == (TUN_F_USO4 | TUN_F_USO6)) {
            features |= maskOf(HOST_USO, GUEST_USO4, GUEST_USO6);
        }
        return features;
    }
}

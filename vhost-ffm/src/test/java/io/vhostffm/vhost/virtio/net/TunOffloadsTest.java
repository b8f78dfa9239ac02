package io.vhostffm.vhost.virtio.net;

import static io.vhostffm.vhost.virtio.net.TunOffloads.*;
import static io.vhostffm.vhost.virtio.VirtioFeature.*;
import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class TunOffloadsTest {
    @Test
    void mapsGuestOffloadsToTunFlags() {
        assertEquals(0, fromGuestOffloads(0));
        assertEquals(0x01, TUN_F_CSUM);
        assertEquals(0x10, TUN_F_UFO);
        assertEquals(TUN_F_CSUM, fromGuestOffloads(GUEST_CSUM.mask()));
        assertEquals(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_UFO,
                fromGuestOffloads(maskOf(GUEST_CSUM, GUEST_TSO4, GUEST_TSO6, GUEST_ECN, GUEST_UFO)));
        assertEquals(TUN_F_CSUM | TUN_F_USO4 | TUN_F_USO6, fromGuestOffloads(maskOf(GUEST_CSUM, GUEST_USO4, GUEST_USO6)));
    }

    @Test
    void segmentationNeedsChecksumAndEcnNeedsTso() {
        assertEquals(0, fromGuestOffloads(maskOf(GUEST_TSO4, GUEST_TSO6, GUEST_UFO)), "nothing without GUEST_CSUM");
        assertEquals(TUN_F_CSUM, fromGuestOffloads(maskOf(GUEST_CSUM, GUEST_ECN)), "ECN alone adds nothing");
        assertEquals(TUN_F_CSUM | TUN_F_TSO6 | TUN_F_TSO_ECN, fromGuestOffloads(maskOf(GUEST_CSUM, GUEST_TSO6, GUEST_ECN)));
        assertEquals(TUN_F_CSUM, fromGuestOffloads(maskOf(GUEST_CSUM, MQ, CTRL_VQ)), "non-offload bits ignored");
    }

    @Test
    void tapCapabilitiesToFeatures() {
        assertEquals(0, virtioFeaturesFor(false, 0x7f));
        long base = maskOf(CSUM, HOST_TSO4, HOST_TSO6, HOST_ECN, GUEST_CSUM, GUEST_TSO4, GUEST_TSO6, GUEST_ECN);
        assertEquals(base, virtioFeaturesFor(true, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN));
        assertEquals(base | maskOf(HOST_UFO, GUEST_UFO), virtioFeaturesFor(true, 0x1f));
        assertEquals(base | maskOf(HOST_UFO, GUEST_UFO, HOST_USO, GUEST_USO4, GUEST_USO6), virtioFeaturesFor(true, 0x7f));
        // What the TAP can carry always satisfies the 5.1.3.1 requirements by itself.
        assertEquals(java.util.Optional.empty(), FeatureNegotiation.unmetRequirement(virtioFeaturesFor(true, 0x7f)));
    }
}

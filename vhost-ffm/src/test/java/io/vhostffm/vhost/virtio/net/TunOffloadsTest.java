package io.vhostffm.vhost.virtio.net;

import static io.vhostffm.vhost.virtio.net.TunOffloads.*;
import static io.vhostffm.vhost.virtio.VirtioFeature.*;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.vhostffm.vhost.os.TunOffload;
import java.util.Optional;
import org.junit.jupiter.api.Test;

class TunOffloadsTest {
    @Test
    void mapsGuestOffloadsToTunFlags() {
        assertEquals(0, fromGuestOffloads(0));
        assertEquals(TunOffload.CSUM.value(), fromGuestOffloads(GUEST_CSUM.mask()));
        assertEquals(TunOffload.CSUM.value() | TunOffload.TSO4.value() | TunOffload.TSO6.value() | TunOffload.TSO_ECN.value() | TunOffload.UFO.value(),
                fromGuestOffloads(maskOf(GUEST_CSUM, GUEST_TSO4, GUEST_TSO6, GUEST_ECN, GUEST_UFO)));
        assertEquals(TunOffload.CSUM.value() | TunOffload.USO4.value() | TunOffload.USO6.value(), fromGuestOffloads(maskOf(GUEST_CSUM, GUEST_USO4, GUEST_USO6)));
    }

    @Test
    void segmentationNeedsChecksumAndEcnNeedsTso() {
        assertEquals(0, fromGuestOffloads(maskOf(GUEST_TSO4, GUEST_TSO6, GUEST_UFO)), "nothing without GUEST_CSUM");
        assertEquals(TunOffload.CSUM.value(), fromGuestOffloads(maskOf(GUEST_CSUM, GUEST_ECN)), "ECN alone adds nothing");
        assertEquals(TunOffload.CSUM.value() | TunOffload.TSO6.value() | TunOffload.TSO_ECN.value(), fromGuestOffloads(maskOf(GUEST_CSUM, GUEST_TSO6, GUEST_ECN)));
        assertEquals(TunOffload.CSUM.value(), fromGuestOffloads(maskOf(GUEST_CSUM, MQ, CTRL_VQ)), "non-offload bits ignored");
    }

    @Test
    void tapCapabilitiesToFeatures() {
        assertEquals(0, virtioFeaturesFor(false, 0x7f));
        long base = maskOf(CSUM, HOST_TSO4, HOST_TSO6, HOST_ECN, GUEST_CSUM, GUEST_TSO4, GUEST_TSO6, GUEST_ECN);
        assertEquals(base, virtioFeaturesFor(true, TunOffload.CSUM.value() | TunOffload.TSO4.value() | TunOffload.TSO6.value() | TunOffload.TSO_ECN.value()));
        assertEquals(base | maskOf(HOST_UFO, GUEST_UFO), virtioFeaturesFor(true, 0x1f));
        assertEquals(base | maskOf(HOST_UFO, GUEST_UFO, HOST_USO, GUEST_USO4, GUEST_USO6), virtioFeaturesFor(true, 0x7f));
        // What the TAP can carry always satisfies the 5.1.3.1 requirements by itself.
        assertEquals(Optional.empty(), FeatureNegotiation.unmetRequirement(virtioFeaturesFor(true, 0x7f)));
    }
}

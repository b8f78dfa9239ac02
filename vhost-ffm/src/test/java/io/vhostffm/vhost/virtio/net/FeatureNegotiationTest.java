package io.vhostffm.vhost.virtio.net;

import io.vhostffm.vhost.device.BackendCapabilities;
import io.vhostffm.vhost.virtio.DeviceStatus;

import static io.vhostffm.vhost.virtio.net.NetTestSupport.*;
import static io.vhostffm.vhost.virtio.VirtioFeature.*;
import io.vhostffm.vhost.virtio.VirtioFeature;
import static org.junit.jupiter.api.Assertions.*;

import java.util.Optional;
import org.junit.jupiter.api.Test;

class FeatureNegotiationTest {

    @Test
    void enumCarriesSpecBitsAndNames() {
        assertEquals(0, CSUM.bit());
        assertEquals(17, CTRL_VQ.bit());
        assertEquals(23, CTRL_MAC_ADDR.bit());
        assertEquals(57, HASH_REPORT.bit());
        assertEquals(60, RSS.bit());
        assertEquals(34, RING_PACKED.bit());
        assertEquals(29, EVENT_IDX.bit());
        assertEquals(1L << 32, VERSION_1.mask());
        assertTrue(RING_PACKED.isTransport());
        assertFalse(MQ.isTransport());
        assertEquals(MQ, VirtioFeature.forBit(22));
        assertNull(VirtioFeature.forBit(4));
        assertEquals("VIRTIO_NET_F_MAC(5)|VIRTIO_F_VERSION_1(32)|bit 41",
                VirtioFeature.describe(MAC.mask() | VERSION_1.mask() | 1L << 41));
        // The kernel's answer from the VM bench decodes to names, VHOST_F_LOG_ALL (26) being vhost's own:
        // named, but not a bit the device model knows (offers).
        assertFalse(LOG_ALL.isDeviceFeature());
        assertFalse(LOG_ALL.isTransport());
        assertEquals(0, knownMask() & (LOG_ALL.mask() | GSO.mask()));
        assertEquals(LOG_ALL, VirtioFeature.forBit(26));
        assertEquals("VIRTIO_NET_F_MRG_RXBUF(15)|VIRTIO_F_NOTIFY_ON_EMPTY(24)|VHOST_F_LOG_ALL(26)|VIRTIO_F_ANY_LAYOUT(27)"
                        + "|VIRTIO_RING_F_INDIRECT_DESC(28)|VIRTIO_RING_F_EVENT_IDX(29)|VIRTIO_F_VERSION_1(32)"
                        + "|VIRTIO_F_ACCESS_PLATFORM(33)",
                VirtioFeature.describe(KERNEL_VHOST_FEATURES));
    }

    @Test
    void offerIsRequestLimitedToBackendWhileModelFeaturesStay() {
        long requested = maskOf(VERSION_1, MRG_RXBUF, EVENT_IDX, CTRL_VQ, CTRL_RX, MQ, MAC, STATUS, HASH_REPORT,
                GUEST_USO4, GUEST_CSUM);
        FeatureNegotiation.Offer offer = FeatureNegotiation.offer(requested, KERNEL);
        // HASH_REPORT and GUEST_USO4 are datapath features the kernel backend does not list.
        assertEquals(requested & ~maskOf(HASH_REPORT, GUEST_USO4), offer.offered());
        assertEquals(maskOf(HASH_REPORT, GUEST_USO4), offer.dropped());
        // Everything requested that the userspace backend supports is offered.
        assertEquals(requested, FeatureNegotiation.offer(requested, USERSPACE).offered());
    }

    @Test
    void packedRingsOnKernelBackendAreRefusedAtNegotiation() {
        long requested = maskOf(VERSION_1, RING_PACKED, MRG_RXBUF);
        FeatureNegotiationException e = assertThrows(FeatureNegotiationException.class,
                () -> FeatureNegotiation.offer(requested, KERNEL));
        assertTrue(e.getMessage().contains("VIRTIO_F_RING_PACKED(34)"), e.getMessage());
        assertTrue(e.getMessage().contains("kernel vhost-net"), e.getMessage());
        // The device cannot even be built that way.
        assertThrows(FeatureNegotiationException.class,
                () -> new VirtioNetDevice(options(requested, 1), KERNEL, new NetDeviceListener() {}));
        // The userspace backend runs packed rings.
        assertTrue(RING_PACKED.in(FeatureNegotiation.offer(requested, USERSPACE).offered()));
    }

    @Test
    void backendCapabilitiesMustAgreeOnPacked() {
        assertThrows(IllegalArgumentException.class,
                () -> new BackendCapabilities("x", VERSION_1.mask(), true));
        assertThrows(IllegalArgumentException.class,
                () -> new BackendCapabilities("x", maskOf(VERSION_1, RING_PACKED), false));
        assertFalse(KERNEL.packedRings());
        assertTrue(USERSPACE.packedRings());
    }

    @Test
    void badRequestsAreErrors() {
        assertThrows(FeatureNegotiationException.class,
                () -> FeatureNegotiation.offer(VERSION_1.mask() | 1L << 41, USERSPACE), "unknown bit");
        assertThrows(FeatureNegotiationException.class,
                () -> FeatureNegotiation.offer(maskOf(MAC), USERSPACE), "no VERSION_1");
        assertThrows(FeatureNegotiationException.class,
                () -> FeatureNegotiation.offer(maskOf(VERSION_1, CTRL_VQ, NOTF_COAL), USERSPACE), "unimplemented");
        FeatureNegotiationException e = assertThrows(FeatureNegotiationException.class,
                () -> FeatureNegotiation.offer(maskOf(VERSION_1, CTRL_RX), USERSPACE));
        assertTrue(e.getMessage().contains("VIRTIO_NET_F_CTRL_RX requires VIRTIO_NET_F_CTRL_VQ(17)"), e.getMessage());
        assertThrows(FeatureNegotiationException.class,
                () -> FeatureNegotiation.offer(maskOf(VERSION_1, MRG_RXBUF), BackendCapabilities.of("old", MRG_RXBUF.mask())),
                "backend without VERSION_1");
    }

    @Test
    void droppingAFeatureDropsWhatRequiresIt() {
        // A backend without checksum offload: the TSO/ECN/UFO that need it go too.
        BackendCapabilities noCsum = BackendCapabilities.of("no-csum",
                maskOf(VERSION_1, HOST_TSO4, HOST_ECN, HOST_UFO, GUEST_CSUM, GUEST_TSO4));
        long requested = maskOf(VERSION_1, CSUM, HOST_TSO4, HOST_ECN, HOST_UFO, GUEST_CSUM, GUEST_TSO4);
        FeatureNegotiation.Offer offer = FeatureNegotiation.offer(requested, noCsum);
        assertEquals(maskOf(VERSION_1, GUEST_CSUM, GUEST_TSO4), offer.offered());
        assertEquals(maskOf(CSUM, HOST_TSO4, HOST_ECN, HOST_UFO), offer.dropped());
    }

    @Test
    void driverFeaturesChecks() {
        long offered = maskOf(VERSION_1, CTRL_VQ, CTRL_RX, MQ, GUEST_CSUM, GUEST_TSO4, GUEST_TSO6, GUEST_ECN);
        assertEquals(Optional.empty(), FeatureNegotiation.checkDriverFeatures(offered, offered));
        assertEquals(Optional.empty(), FeatureNegotiation.checkDriverFeatures(offered, VERSION_1.mask()));
        assertTrue(FeatureNegotiation.checkDriverFeatures(offered, maskOf(VERSION_1, RSS)).orElseThrow()
                .contains("did not offer: VIRTIO_NET_F_RSS(60)"));
        assertTrue(FeatureNegotiation.checkDriverFeatures(offered, maskOf(CTRL_VQ)).orElseThrow()
                .contains("VIRTIO_F_VERSION_1"));
        assertTrue(FeatureNegotiation.checkDriverFeatures(offered, maskOf(VERSION_1, CTRL_RX)).orElseThrow()
                .contains("VIRTIO_NET_F_CTRL_RX requires VIRTIO_NET_F_CTRL_VQ(17)"));
        assertTrue(FeatureNegotiation.checkDriverFeatures(offered, maskOf(VERSION_1, MQ)).orElseThrow()
                .contains("VIRTIO_NET_F_MQ requires VIRTIO_NET_F_CTRL_VQ(17)"));
        assertTrue(FeatureNegotiation.checkDriverFeatures(offered, maskOf(VERSION_1, GUEST_TSO4)).orElseThrow()
                .contains("VIRTIO_NET_F_GUEST_TSO4 requires VIRTIO_NET_F_GUEST_CSUM(1)"));
        // ECN needs either TSO: one is enough.
        assertTrue(FeatureNegotiation.checkDriverFeatures(offered, maskOf(VERSION_1, GUEST_CSUM, GUEST_ECN))
                .orElseThrow().contains("VIRTIO_NET_F_GUEST_ECN requires VIRTIO_NET_F_GUEST_TSO4(7) or "
                        + "VIRTIO_NET_F_GUEST_TSO6(8)"));
        assertEquals(Optional.empty(), FeatureNegotiation.checkDriverFeatures(offered,
                maskOf(VERSION_1, GUEST_CSUM, GUEST_TSO6, GUEST_ECN)));
    }

    @Test
    void deviceOffersWordsAndRefusesBadAckAtFeaturesOk() {
        RecordingListener listener = new RecordingListener();
        VirtioNetDevice device = new VirtioNetDevice(options(ALL_CONTROL, 2), KERNEL, listener);
        long offered = device.deviceFeatures();
        assertEquals((int) offered, device.deviceFeatures(0));
        assertEquals((int) (offered >>> 32), device.deviceFeatures(1));
        assertEquals(0, device.deviceFeatures(2));
        // RSS and HASH_REPORT are datapath features the kernel backend lacks.
        assertFalse(RSS.in(offered));
        assertTrue(MQ.in(offered));
        device.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
        device.writeDriverFeatures(0, (int) maskOf(CTRL_RX));
        device.writeDriverFeatures(1, (int) (VERSION_1.mask() >>> 32));
        assertEquals(maskOf(CTRL_RX, VERSION_1), device.driverFeatures());
        int status = device.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK);
        assertEquals(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER, status, "FEATURES_OK must stay clear");
        assertTrue(device.lastError().orElseThrow().contains("CTRL_RX requires"), device.lastError().orElseThrow());
        // Acknowledging RSS, which this (kernel) device never offered, is refused the same way.
        device.writeDriverFeatures(maskOf(VERSION_1, CTRL_VQ, RSS));
        assertEquals(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER,
                device.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK));
        assertTrue(device.lastError().orElseThrow().contains("did not offer"));
        // A valid set is taken; features are then fixed.
        device.writeDriverFeatures(maskOf(VERSION_1, CTRL_VQ, CTRL_RX, MQ));
        int ok = DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK;
        assertEquals(ok, device.writeStatus(ok));
        assertFalse(device.writeDriverFeatures(maskOf(VERSION_1)));
        assertEquals(maskOf(VERSION_1, CTRL_VQ, CTRL_RX, MQ), device.driverFeatures());
        assertTrue(device.netState().multiqueue());
    }
}

package io.vhostffm.vhost.device;

import io.vhostffm.vhost.virtio.net.FeatureNegotiation;

import io.vhostffm.vhost.virtio.VirtioFeature;

import java.util.Objects;

/**
 * What a datapath backend can carry, as an input to feature negotiation: the feature bits its
 * datapath supports and whether it runs packed virtqueues.
 *
 * <p>Only datapath bits are taken from here (see {@link FeatureNegotiation#MODEL_FEATURES} for the
 * bits the Java device model implements itself, whatever the backend). For the kernel backend the
 * supported bits are what {@code VHOST_GET_FEATURES} returned plus the TAP's offloads; the kernel
 * offers no {@code VIRTIO_F_RING_PACKED}, so {@code packedRings} is false there.
 *
 * @param name a name for messages, e.g. {@code kernel vhost-net}
 * @param supportedFeatures the feature bits the backend's datapath supports
 * @param packedRings whether the backend runs packed virtqueues; must agree with bit 34 of
 *     {@code supportedFeatures}
 */
public record BackendCapabilities(String name, long supportedFeatures, boolean packedRings) {

    /**
     * @throws IllegalArgumentException when {@code packedRings} and bit 34 ({@code
     *     VIRTIO_F_RING_PACKED}) of {@code supportedFeatures} disagree
     */
    public BackendCapabilities {
        Objects.requireNonNull(name, "name");
        if (packedRings != VirtioFeature.RING_PACKED.in(supportedFeatures)) {
            throw new IllegalArgumentException("backend " + name + ": packedRings=" + packedRings
                    + " disagrees with VIRTIO_F_RING_PACKED(34) in supportedFeatures "
                    + VirtioFeature.describe(supportedFeatures));
        }
    }

    /** A backend with these bits; packed rings iff the set holds {@code RING_PACKED}. */
    public static BackendCapabilities of(String name, long supportedFeatures) {
        return new BackendCapabilities(name, supportedFeatures, VirtioFeature.RING_PACKED.in(supportedFeatures));
    }

    /** Whether the backend supports a feature. */
    public boolean supports(VirtioFeature feature) {
        return feature.in(supportedFeatures);
    }
}

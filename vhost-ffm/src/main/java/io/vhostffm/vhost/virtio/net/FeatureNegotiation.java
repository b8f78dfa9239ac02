package io.vhostffm.vhost.virtio.net;

import io.vhostffm.vhost.device.BackendCapabilities;

import static io.vhostffm.vhost.virtio.VirtioFeature.*;
import io.vhostffm.vhost.virtio.VirtioFeature;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Feature negotiation for virtio-net: what the device offers (what was asked for, limited to what
 * the backend supports) and whether the driver's acknowledged set may be accepted at
 * {@code FEATURES_OK} (virtio 1.3, 2.2 and 5.1.3.1).
 */
public final class FeatureNegotiation {

    /**
     * Features the Java device model implements itself, on any backend: the config-space fields
     * and everything done on the control queue. They are offered when asked for, whatever the
     * backend's datapath reports (kernel vhost-net knows nothing of them).
     */
    public static final long MODEL_FEATURES = maskOf(MAC, MTU, STATUS, SPEED_DUPLEX, STANDBY, CTRL_VQ, CTRL_RX,
            CTRL_RX_EXTRA, CTRL_VLAN, GUEST_ANNOUNCE, MQ, CTRL_MAC_ADDR, CTRL_GUEST_OFFLOADS);

    /**
     * Features whose control-queue commands this model does not implement (notification
     * coalescing, class 6). Asking for them is an error rather than a guest surprised later.
     */
    public static final long UNIMPLEMENTED_FEATURES = maskOf(NOTF_COAL, VQ_NOTF_COAL);

    /** The guest receive offloads: the bits GUEST_OFFLOADS_SET may turn on and off (5.1.6.5.6.1). */
    public static final long GUEST_OFFLOAD_FEATURES =
            maskOf(GUEST_CSUM, GUEST_TSO4, GUEST_TSO6, GUEST_ECN, GUEST_UFO, GUEST_USO4, GUEST_USO6);

    /** One row of 5.1.3.1: {@code feature} requires at least one of {@code anyOf}. */
    private record Requirement(VirtioFeature feature, long anyOf) {
        String describe() {
            return feature.specName() + " requires " + VirtioFeature.describe(anyOf).replace("|", " or ");
        }
    }

    /**
     * The requirements of virtio 1.3 section 5.1.3.1, plus HASH_REPORT requiring CTRL_VQ (its
     * configuration is a control command; Linux refuses the combination too).
     */
    private static final List<Requirement> REQUIREMENTS = List.of(
            new Requirement(GUEST_TSO4, GUEST_CSUM.mask()),
            new Requirement(GUEST_TSO6, GUEST_CSUM.mask()),
            new Requirement(GUEST_ECN, maskOf(GUEST_TSO4, GUEST_TSO6)),
            new Requirement(GUEST_UFO, GUEST_CSUM.mask()),
            new Requirement(GUEST_USO4, GUEST_CSUM.mask()),
            new Requirement(GUEST_USO6, GUEST_CSUM.mask()),
            new Requirement(HOST_TSO4, CSUM.mask()),
            new Requirement(HOST_TSO6, CSUM.mask()),
            new Requirement(HOST_ECN, maskOf(HOST_TSO4, HOST_TSO6)),
            new Requirement(HOST_UFO, CSUM.mask()),
            new Requirement(HOST_USO, CSUM.mask()),
            new Requirement(CTRL_RX, CTRL_VQ.mask()),
            new Requirement(CTRL_VLAN, CTRL_VQ.mask()),
            new Requirement(GUEST_ANNOUNCE, CTRL_VQ.mask()),
            new Requirement(MQ, CTRL_VQ.mask()),
            new Requirement(CTRL_MAC_ADDR, CTRL_VQ.mask()),
            new Requirement(NOTF_COAL, CTRL_VQ.mask()),
            new Requirement(VQ_NOTF_COAL, CTRL_VQ.mask()),
            new Requirement(RSC_EXT, maskOf(HOST_TSO4, HOST_TSO6)),
            new Requirement(RSS, CTRL_VQ.mask()),
            new Requirement(HASH_REPORT, CTRL_VQ.mask()));

    /**
     * What the device offers and which asked-for bits were left out because the backend lacks
     * them (directly, or because a feature they require was left out).
     */
    public record Offer(long offered, long dropped) {}

    private FeatureNegotiation() {}

    /**
     * The features to offer: the asked-for model features, plus the asked-for datapath features
     * the backend supports; a feature whose requirement the backend cannot meet is dropped too.
     *
     * @throws FeatureNegotiationException when the request names an unknown or unimplemented bit,
     *     breaks a requirement by itself, lacks VERSION_1, or asks for RING_PACKED of a backend
     *     without packed rings
     */
    public static Offer offer(long requested, BackendCapabilities backend) {
        long unknown = requested & ~knownMask();
        if (unknown != 0) {
            throw new FeatureNegotiationException("requested features include unknown " + describe(unknown));
        }
        if ((requested & UNIMPLEMENTED_FEATURES) != 0) {
            throw new FeatureNegotiationException("requested " + describe(requested & UNIMPLEMENTED_FEATURES)
                    + ": their control commands are not implemented by this device model");
        }
        if (!VERSION_1.in(requested)) {
            throw new FeatureNegotiationException(
                    "requested features lack VIRTIO_F_VERSION_1(32): this device is a virtio 1.x device only");
        }
        if (RING_PACKED.in(requested) && !backend.packedRings()) {
            throw new FeatureNegotiationException("VIRTIO_F_RING_PACKED(34) requested but backend '" + backend.name()
                    + "' has no packed virtqueues (kernel vhost-net offers none); use the userspace backend"
                    + " or leave RING_PACKED out");
        }
        Optional<String> broken = unmetRequirement(requested);
        if (broken.isPresent()) {
            throw new FeatureNegotiationException("requested features are inconsistent: " + broken.get());
        }
        long offered = (requested & MODEL_FEATURES) | (requested & ~MODEL_FEATURES & backend.supportedFeatures());
        if (!VERSION_1.in(offered)) {
            throw new FeatureNegotiationException(
                    "backend '" + backend.name() + "' does not support VIRTIO_F_VERSION_1(32)");
        }
        // Dropping one feature can break another's requirement (HOST_TSO4 without CSUM): repeat
        // until stable; at most one pass per feature.
        boolean changed = true;
        while (changed) {
            changed = false;
            for (Requirement r : REQUIREMENTS) {
                if (r.feature().in(offered) && (offered & r.anyOf()) == 0) {
                    offered &= ~r.feature().mask();
                    changed = true;
                }
            }
        }
        return new Offer(offered, requested & ~offered);
    }

    /**
     * Why the driver's features cannot be accepted at FEATURES_OK, or empty when they can: a bit
     * not offered, a broken 5.1.3.1 requirement, or VERSION_1 not acknowledged.
     */
    public static Optional<String> checkDriverFeatures(long offered, long acked) {
        long extra = acked & ~offered;
        if (extra != 0) {
            return Optional.of("driver acknowledged features the device did not offer: " + describe(extra));
        }
        if (!VERSION_1.in(acked)) {
            return Optional.of("driver did not acknowledge VIRTIO_F_VERSION_1(32); legacy drivers are not supported");
        }
        return unmetRequirement(acked);
    }

    /** The first requirement of 5.1.3.1 that {@code features} breaks, in words. */
    public static Optional<String> unmetRequirement(long features) {
        List<String> broken = new ArrayList<>();
        for (Requirement r : REQUIREMENTS) {
            if (r.feature().in(features) && (features & r.anyOf()) == 0) {
                broken.add(r.describe());
            }
        }
        return broken.isEmpty() ? Optional.empty() : Optional.of(String.join("; ", broken));
    }
}

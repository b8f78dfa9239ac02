package io.vhostffm.vhost.virtio.net;

/**
 * The features asked of a device cannot be offered: an unknown bit, a feature whose required
 * feature is missing, {@code VIRTIO_F_VERSION_1} missing, or {@code VIRTIO_F_RING_PACKED} asked of
 * a backend without packed rings (kernel vhost-net). Raised when the device is built, not later.
 */
public class FeatureNegotiationException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    public FeatureNegotiationException(String message) {
        super(message);
    }
}

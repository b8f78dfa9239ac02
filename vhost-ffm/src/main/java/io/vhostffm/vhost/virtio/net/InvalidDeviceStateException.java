package io.vhostffm.vhost.virtio.net;

/**
 * A device state handed to {@link VirtioNetDevice#restore} holds a value this device cannot take:
 * out of its spec range, inconsistent with another field, or beyond what this device was
 * configured with. Names the field as a path of record components, e.g. {@code
 * net.macTable.unicast}.
 */
public class InvalidDeviceStateException extends Exception {
    private static final long serialVersionUID = 1L;

    private final String field;

    public InvalidDeviceStateException(String field, String message) {
        super(field + ": " + message);
        this.field = field;
    }

    /** The offending field, e.g. {@code net.queuePairs}. */
    public String field() {
        return field;
    }
}

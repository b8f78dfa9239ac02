package io.vhostffm.vhost.virtio;

/**
 * A transport's register access that the device refused: a queue register written after
 * DRIVER_OK or while the queue is enabled, a queue that does not exist, a size out of range, a
 * write to read-only config space. The message names the queue, the register and the rule. The
 * device is unchanged; the same text is the device's last error and is told to its listeners.
 */
public final class VirtioTransportException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** A refusal explained by {@code message}. */
    public VirtioTransportException(String message) {
        super(message);
    }
}

package io.vhostffm.vhost.device.userspace;

/**
 * A chain that is well-formed as a virtqueue chain but breaks virtio-net's rules for its queue
 * (a transmit chain with device-writable buffers or without room for the header, a receive chain
 * with device-readable buffers or shorter than the header, more buffers than one system call
 * takes). Like a {@link io.vhostffm.vring.VirtqueueException} it puts the device in
 * DEVICE_NEEDS_RESET; the message names the queue and the chain's head.
 */
final class BadGuestInputException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final int queueIndex;

    BadGuestInputException(int queueIndex, String message) {
        super(message, null, false, false);
        this.queueIndex = queueIndex;
    }

    /** The virtqueue the chain came from. */
    int queueIndex() {
        return queueIndex;
    }
}

package io.vhostffm.vring;

/**
 * A guest-physical range that guest memory does not hold whole: it falls in a hole, or crosses
 * the end of a region. Guests are untrusted, so this is ordinary input, never a crash.
 */
public final class GuestMemoryException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final long guestAddress;
    private final long length;

    public GuestMemoryException(long guestAddress, long length, String reason) {
        super(String.format("guest range [0x%x, +%d) %s", guestAddress, length, reason));
        this.guestAddress = guestAddress;
        this.length = length;
    }

    /** The guest-physical address that was asked for. */
    public long guestAddress() {
        return guestAddress;
    }

    /** The length that was asked for. */
    public long length() {
        return length;
    }
}

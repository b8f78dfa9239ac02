package io.vhostffm.vhost.os;

/**
 * A {@link FileDescriptor} used after it was closed. A programming error, not an I/O failure:
 * the descriptor number may already belong to another file, so the call is never made.
 */
public final class DescriptorClosedException extends IllegalStateException {
    private static final long serialVersionUID = 1L;

    public DescriptorClosedException(String description, int fd) {
        super(description + " (fd " + fd + ") is closed");
    }
}

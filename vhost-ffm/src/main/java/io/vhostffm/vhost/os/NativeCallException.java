package io.vhostffm.vhost.os;

import java.io.IOException;

/**
 * A libc call that failed. Names the call, the ioctl request by its kernel-header name when the
 * call was an ioctl, what the descriptor is, the errno symbol and its message, e.g.
 * {@code ioctl(VHOST_SET_VRING_NUM) on /dev/vhost-net (fd 7) [index 0, num 3]: EINVAL (Invalid argument)}.
 *
 * <p>Made in one place only (the library's internal {@code NativeErrors}), so every failure
 * reads the same way.
 */
public class NativeCallException extends IOException {
    private static final long serialVersionUID = 1L;

    private final String call;
    private final String request;
    private final int errno;
    private final String target;

    /** A failure described by a ready message (kept for callers that compose their own). */
    public NativeCallException(String call, String request, int errno, String message) {
        super(message);
        this.call = call;
        this.request = request;
        this.errno = errno;
        this.target = null;
    }

    /**
     * A failure whose message is composed from its parts.
     *
     * @param call    libc function, e.g. {@code ioctl}
     * @param request ioctl request name, or null
     * @param errno   the errno the call left
     * @param target  what the call was made on, e.g. {@code /dev/vhost-net (fd 7)}, or null
     * @param detail  the arguments worth seeing, e.g. {@code index 0, num 3}, or null
     */
    public NativeCallException(String call, String request, int errno, String target, String detail) {
        super(compose(call, request, errno, target, detail));
        this.call = call;
        this.request = request;
        this.errno = errno;
        this.target = target;
    }

    private static String compose(String call, String request, int errno, String target, String detail) {
        StringBuilder b = new StringBuilder(call);
        if (request != null) {
            b.append('(').append(request).append(')');
        }
        if (target != null) {
            b.append(" on ").append(target);
        }
        if (detail != null) {
            b.append(" [").append(detail).append(']');
        }
        return b.append(": ").append(Errno.describe(errno)).toString();
    }

    /** The libc function that failed, e.g. {@code ioctl}. */
    public String call() {
        return call;
    }

    /** The ioctl request name (e.g. {@code VHOST_SET_OWNER}), or null when the call was no ioctl. */
    public String request() {
        return request;
    }

    /** The errno value the call left. */
    public int errno() {
        return errno;
    }

    /** The errno symbol, e.g. {@code EBUSY}. */
    public String errnoSymbol() {
        return Errno.symbol(errno);
    }

    /** What the call was made on, e.g. {@code /dev/vhost-net (fd 7)}, or null. */
    public String target() {
        return target;
    }
}

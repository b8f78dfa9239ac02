package io.vhostffm.vhost;

import java.io.IOException;

/**
 * A libc call that failed. Names the call, the ioctl request by its kernel-header name when the
 * call was an ioctl, the errno symbol and its message, e.g.
 * {@code ioctl(VHOST_SET_VRING_NUM) on /dev/vhost-net: EINVAL (Invalid argument)}.
 */
public class NativeCallException extends IOException {
    private static final long serialVersionUID = 1L;

    private final String call;
    private final String request;
    private final int errno;

    public NativeCallException(String call, String request, int errno, String message) {
        super(message);
        this.call = call;
        this.request = request;
        this.errno = errno;
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
}

package io.vhostffm.vhost.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import io.vhostffm.vhost.os.Errno;
import io.vhostffm.vhost.os.IoctlRequest;
import io.vhostffm.vhost.os.NativeCallException;
import org.junit.jupiter.api.Test;

class NativeErrorsTest {
    @Test
    void aFailureInContextKeepsCallRequestAndErrnoAndNamesTheContextFirst() {
        int eio = Errno.number("EIO").orElseThrow();
        NativeCallException failure = NativeErrors.ioctlFailure(IoctlRequest.VHOST_NET_SET_BACKEND,
                "/dev/vhost-net (fd 9)", eio, "index 1, fd 12");
        NativeCallException e = NativeErrors.inContext("kernel vhost-net on tap0, queue pair 2", failure);
        assertEquals("kernel vhost-net on tap0, queue pair 2: " + failure.getMessage(), e.getMessage());
        assertEquals("ioctl", e.call());
        assertEquals("VHOST_NET_SET_BACKEND", e.request());
        assertEquals("EIO", e.errnoSymbol());
        assertSame(failure, e.getCause());
    }
}

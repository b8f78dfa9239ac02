package io.vhostffm.vhost.os;

import io.vhostffm.vhost.internal.CallState;
import io.vhostffm.vhost.internal.Libc;
import io.vhostffm.vhost.internal.LinuxConstants;
import io.vhostffm.vhost.internal.NativeErrors;
import java.nio.file.Files;
import java.nio.file.Path;
import java.io.IOException;
import java.net.SocketTimeoutException;
import java.time.Duration;

/**
 * A listening AF_UNIX stream socket bound to a path: the side of a two-process migration that
 * waits for the other to {@link UnixSocket#connect}. The JDK's own UNIX-domain channels cannot
 * carry SCM_RIGHTS, so both ends are native here.
 */
public final class UnixSocketListener implements AutoCloseable {
    private final FileDescriptor fd;
    private final Path path;

    private UnixSocketListener(FileDescriptor fd, Path path) {
        this.fd = fd;
        this.path = path;
    }

    /** socket, bind to {@code path} (which must not exist), listen. */
    public static UnixSocketListener bind(Path path) throws NativeCallException {
        FileDescriptor fd = UnixAddress.streamSocketAt(path, "unix listener on " + path, "bind", Libc::bind);
        try {
            CallState s = CallState.current();
            NativeErrors.check(Libc.listen(s, fd.number(), 4), "listen", fd, s);
            return new UnixSocketListener(fd, path);
        } catch (NativeCallException | RuntimeException e) {
            fd.close();
            throw e;
        }
    }

    /** The path this listener is bound to. */
    public Path path() {
        return path;
    }

    /** The listening socket's descriptor (e.g. to poll it together with a stop eventfd before {@link #accept()}). */
    public FileDescriptor fd() {
        return fd;
    }

    /** Waits for one connection (accept4, close-on-exec). */
    public UnixSocket accept() throws NativeCallException {
        int n = fd.acquire();
        try {
            CallState s = CallState.current();
            int accepted = Libc.accept4(s, n, LinuxConstants.SOCK_CLOEXEC);
            if (accepted < 0) {
                throw NativeErrors.failure("accept4", fd, s.errno());
            }
            return UnixSocket.wrap(FileDescriptor.adopt(accepted, "unix socket accepted on " + path));
        } finally {
            fd.release();
        }
    }

    /**
     * Waits at most {@code timeout} for one connection: the deadline for a peer that should have
     * connected by now (a destination process that died or stalled while starting).
     *
     * @throws SocketTimeoutException when nobody connected in time
     */
    public UnixSocket accept(Duration timeout) throws IOException {
        if (!DescriptorPoller.awaitReadable(fd, timeout)) {
            throw new SocketTimeoutException("accept on " + fd.description() + ": nobody connected within "
                    + timeout.toMillis() + " ms");
        }
        return accept();
    }

    /** Closes the socket and removes its path. Idempotent. */
    @Override
    public void close() {
        fd.close();
        try {
            Files.deleteIfExists(path);
        } catch (IOException ignored) {
            // the path is a leftover at worst; nothing else depends on it
        }
    }

    @Override
    public String toString() {
        return fd.toString();
    }
}

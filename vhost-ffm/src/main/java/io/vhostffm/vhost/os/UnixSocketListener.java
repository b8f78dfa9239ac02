package io.vhostffm.vhost.os;

import io.vhostffm.vhost.internal.CallState;
import io.vhostffm.vhost.internal.Libc;
import io.vhostffm.vhost.internal.LinuxConstants;
import io.vhostffm.vhost.internal.NativeErrors;
import java.io.IOException;
import java.net.SocketTimeoutException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.Objects;

/**
 * A listening AF_UNIX stream socket bound to a path: the side of a two-process migration that
 * waits for the other to {@link UnixSocket#connect}, or a server for device processes. The JDK's
 * own UNIX-domain channels cannot carry SCM_RIGHTS, so both ends are native here.
 *
 * <p>Owner-only by default ({@link SocketPolicy}): the path must be new, in a directory nobody
 * else may write; the socket file is made 0600; every accepted peer is checked with SO_PEERCRED
 * before the caller sees it.
 */
public final class UnixSocketListener implements AutoCloseable {
    private final FileDescriptor fd;
    private final Path path;
    private final SocketPolicy policy;

    private UnixSocketListener(FileDescriptor fd, Path path, SocketPolicy policy) {
        this.fd = fd;
        this.path = path;
        this.policy = policy;
    }

    /** {@link #bind(Path, SocketPolicy)} with {@link SocketPolicy#ownerOnly()}. */
    public static UnixSocketListener bind(Path path) throws IOException {
        return bind(path, SocketPolicy.ownerOnly());
    }

    /**
     * Checks the path ({@link SocketPolicy}: new, in a private directory unless the policy says
     * why not), then socket, bind, chmod 0600, listen.
     *
     * <p>Why chmod between bind and listen, not umask around bind: the umask is per process, and
     * every other thread of the JVM creating a file meanwhile would get it too (and another
     * bind's restore could undo ours); fchmod on the socket's descriptor would change the socket
     * inode, not the file bind made. Before listen(2) nobody can connect (connect gets
     * ECONNREFUSED), so the moment the path has the umask's mode lets nobody in; and the path's
     * directory is checked to be ours, so nobody can swap the file between bind and chmod.
     *
     * @throws SocketPathException when the path exists or its directory is not private
     */
    public static UnixSocketListener bind(Path path, SocketPolicy policy) throws IOException {
        Objects.requireNonNull(policy, "policy");
        policy.checkBindPath(path);
        FileDescriptor fd = UnixAddress.streamSocketAt(path, "unix listener on " + path, "bind", Libc::bind);
        try {
            Files.setPosixFilePermissions(path, PosixFilePermissions.fromString("rw-------"));
            int owner = (int) Files.getAttribute(path, "unix:uid", LinkOption.NOFOLLOW_LINKS);
            if (owner != SocketPolicy.ourUid()) {
                throw new SocketPathException(path, "after bind it belongs to uid " + owner + ", not to us");
            }
            CallState s = CallState.current();
            NativeErrors.check(Libc.listen(s, fd.number(), 4), "listen", fd, s);
            return new UnixSocketListener(fd, path, policy);
        } catch (IOException | RuntimeException e) {
            fd.close();
            Files.deleteIfExists(path);
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

    /** Who may connect. */
    public SocketPolicy policy() {
        return policy;
    }

    /**
     * Waits for one connection (accept4, close-on-exec) and admits it by the policy before
     * returning it: a refused peer is closed without a byte read or written.
     *
     * @throws PeerRefusedException when the peer's uid is not allowed (naming its pid, uid, gid)
     */
    public UnixSocket accept() throws IOException {
        UnixSocket accepted;
        int n = fd.acquire();
        try {
            CallState s = CallState.current();
            int number = Libc.accept4(s, n, LinuxConstants.SOCK_CLOEXEC);
            if (number < 0) {
                throw NativeErrors.failure("accept4", fd, s.errno());
            }
            accepted = UnixSocket.wrap(FileDescriptor.adopt(number, "unix socket accepted on " + path));
        } finally {
            fd.release();
        }
        policy.admit(accepted);
        return accepted;
    }

    /**
     * Waits at most {@code timeout} for one connection: the deadline for a peer that should have
     * connected by now (a destination process that died or stalled while starting). The peer is
     * admitted as by {@link #accept()}.
     *
     * @throws SocketTimeoutException when nobody connected in time
     * @throws PeerRefusedException when the peer's uid is not allowed
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

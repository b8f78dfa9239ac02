package io.vhostffm.vhost.os;

import io.vhostffm.vhost.internal.Libc;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;

/**
 * Who may connect to a UNIX socket the library binds or connects: what crosses these sockets
 * is the guest itself (its memory memfds, its TAP queues, its device state).
 *
 * <ul>
 *   <li>Every peer, accepted or connected to, is checked with SO_PEERCRED against the allowed
 *       uids before a byte or descriptor passes ({@link #admit}); a stranger is a
 *       {@link PeerRefusedException} naming its pid, uid and gid.</li>
 *   <li>A listener's path must not exist yet, and its directory must belong to us (or root) and
 *       be writable by nobody else, unless {@link #allowingSharedDirectory(String)} says why it
 *       may; otherwise {@link SocketPathException}. The socket file is made 0600.</li>
 * </ul>
 *
 * <p>Immutable; {@link #ownerOnly()} is the default of every bind and connect.
 */
public final class SocketPolicy {
    /** The mode bits that let group or others write a directory (S_IWGRP | S_IWOTH). */
    private static final int WRITABLE_BY_OTHERS = 0020 | 0002;

    private final Set<Integer> allowedUids;
    private final String sharedDirectoryReason;

    private SocketPolicy(Set<Integer> allowedUids, String sharedDirectoryReason) {
        this.allowedUids = Set.copyOf(allowedUids);
        this.sharedDirectoryReason = sharedDirectoryReason;
    }

    /** Only our own effective uid may be at the other end; the directory must be private to us. */
    public static SocketPolicy ownerOnly() {
        return new SocketPolicy(Set.of(ourUid()), null);
    }

    /** This process's effective uid. */
    public static int ourUid() {
        return Libc.geteuid();
    }

    /** This policy, also admitting peers running as {@code uids} (e.g. a separate, unprivileged device process). */
    public SocketPolicy allowingUids(int... uids) {
        Set<Integer> more = new TreeSet<>(allowedUids);
        Arrays.stream(uids).forEach(more::add);
        return new SocketPolicy(more, sharedDirectoryReason);
    }

    /**
     * This policy, binding also in a directory others may write (a shared run directory),
     * because of {@code reason}, which error messages and logs repeat. The path must still not
     * exist and the socket is still 0600; but whoever may write the directory may replace it.
     */
    public SocketPolicy allowingSharedDirectory(String reason) {
        if (reason == null || reason.isBlank()) {
            throw new IllegalArgumentException("say why a directory others may write is acceptable");
        }
        return new SocketPolicy(allowedUids, reason);
    }

    /** The uids admitted. */
    public Set<Integer> allowedUids() {
        return allowedUids;
    }

    /** Why a shared directory is accepted, or null when it is not. */
    public String sharedDirectoryReason() {
        return sharedDirectoryReason;
    }

    /** Whether {@code peer}'s user is admitted. */
    public boolean admits(PeerCredentials peer) {
        return allowedUids.contains(peer.uid());
    }

    /**
     * Reads {@code socket}'s peer credentials and refuses a peer whose uid is not allowed. Call it
     * on every accepted or connected socket before the first byte or descriptor moves (the
     * library's own {@link UnixSocketListener#accept()} and {@link UnixSocket#connect(Path,
     * SocketPolicy)} do); on refusal the socket is closed.
     *
     * @return the admitted peer's credentials
     * @throws PeerRefusedException naming the peer's pid, uid and gid
     */
    public PeerCredentials admit(UnixSocket socket) throws IOException {
        PeerCredentials peer;
        try {
            peer = socket.peerCredentials();
        } catch (IOException | RuntimeException e) {
            socket.close();
            throw e;
        }
        if (!admits(peer)) {
            String description = socket.fd().description();
            socket.close();
            throw new PeerRefusedException(description, peer, new TreeSet<>(allowedUids));
        }
        return peer;
    }

    /**
     * Refuses a listener path that exists already, or whose directory is missing, is not a
     * directory, belongs to another user than us or root, or may be written by group or others
     * (unless the policy says why that is acceptable).
     */
    void checkBindPath(Path path) throws IOException {
        Path absolute = path.toAbsolutePath();
        if (Files.exists(absolute, LinkOption.NOFOLLOW_LINKS)) {
            throw new SocketPathException(path, "it exists already (" + describe(absolute)
                    + "); a path someone created first is never reused: remove it, or name a new one");
        }
        Path directory = absolute.getParent();
        int mode;
        int owner;
        try {
            mode = (int) Files.getAttribute(directory, "unix:mode");
            owner = (int) Files.getAttribute(directory, "unix:uid");
        } catch (NoSuchFileException e) {
            throw new SocketPathException(path, "its directory " + directory + " does not exist");
        }
        if (!Files.isDirectory(directory)) {
            throw new SocketPathException(path, directory + " is not a directory");
        }
        if (sharedDirectoryReason != null) {
            return;
        }
        if (owner != ourUid() && owner != 0) {
            throw new SocketPathException(path, "its directory " + directory + " belongs to uid " + owner
                    + ", not to us (uid " + ourUid() + ") or root; " + "its owner could replace the socket");
        }
        if ((mode & WRITABLE_BY_OTHERS) != 0) {
            throw new SocketPathException(path, "its directory " + directory + " (mode "
                    + Integer.toOctalString(mode & 07777) + ") may be written by "
                    + ((mode & 0020) != 0 ? "its group" : "others")
                    + ", who could replace the socket; use a private directory, or "
                    + "SocketPolicy.allowingSharedDirectory(reason)");
        }
    }

    private static String describe(Path existing) {
        try {
            return "owner uid " + Files.getAttribute(existing, "unix:uid", LinkOption.NOFOLLOW_LINKS) + ", mode "
                    + Integer.toOctalString((int) Files.getAttribute(existing, "unix:mode", LinkOption.NOFOLLOW_LINKS));
        } catch (IOException | RuntimeException e) {
            return "owner unknown: " + e.getMessage();
        }
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof SocketPolicy p && p.allowedUids.equals(allowedUids)
                && Objects.equals(p.sharedDirectoryReason, sharedDirectoryReason);
    }

    @Override
    public int hashCode() {
        return Objects.hash(allowedUids, sharedDirectoryReason);
    }

    @Override
    public String toString() {
        return "uids " + allowedUids.stream().sorted().map(String::valueOf).collect(Collectors.joining(", ", "[", "]"))
                + (sharedDirectoryReason == null ? ", private directory" : ", shared directory (" + sharedDirectoryReason + ")");
    }
}

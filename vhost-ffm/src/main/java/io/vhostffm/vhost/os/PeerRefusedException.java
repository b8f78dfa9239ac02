package io.vhostffm.vhost.os;

import java.io.IOException;
import java.util.Objects;
import java.util.Set;

/**
 * A UNIX socket peer was refused because its user is not in the {@link SocketPolicy}'s allowed
 * set: a stranger connected to our listener, or the listener we connected to is not who it
 * claims. Thrown before a single byte or descriptor was sent or taken; the connection is closed.
 * The message names the socket, the peer's pid, uid and gid, and the uids allowed.
 */
public final class PeerRefusedException extends IOException {
    private static final long serialVersionUID = 1L;

    private final PeerCredentials peer;

    /**
     * @param socket the socket, in words (e.g. "unix socket accepted on /run/vm/migration.sock")
     * @param peer the peer's credentials
     * @param allowedUids the uids the policy admits
     */
    public PeerRefusedException(String socket, PeerCredentials peer, Set<Integer> allowedUids) {
        super("refused the peer of " + socket + ": " + Objects.requireNonNull(peer, "peer")
                + " is not an allowed user (allowed uids " + allowedUids + "); nothing was sent or taken");
        this.peer = peer;
    }

    /** The refused peer's credentials. */
    public PeerCredentials peer() {
        return peer;
    }
}

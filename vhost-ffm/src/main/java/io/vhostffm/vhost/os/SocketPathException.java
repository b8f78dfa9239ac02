package io.vhostffm.vhost.os;

import java.io.IOException;
import java.nio.file.Path;

/**
 * A path a listener was asked to bind is not safe to bind: it already exists (someone else may
 * have created it first, to receive what the socket would carry), or its directory can be
 * written by others (they could replace the socket with their own) and the {@link SocketPolicy}
 * did not explicitly accept that. Thrown before any socket is made.
 */
public final class SocketPathException extends IOException {
    private static final long serialVersionUID = 1L;

    private final Path path;

    /** @param path the refused path; {@code reason} says why, in words */
    public SocketPathException(Path path, String reason) {
        super("refusing to bind a unix socket at " + path + ": " + reason);
        this.path = path;
    }

    /** The refused path. */
    public Path path() {
        return path;
    }
}

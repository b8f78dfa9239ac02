package io.vhostffm.migration;

import io.vhostffm.migration.stream.MigrationStreamReader;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.os.PeerRefusedException;
import java.io.EOFException;
import java.net.SocketTimeoutException;
import java.util.Objects;
import javax.net.ssl.SSLHandshakeException;

/**
 * The other process of a migration, or the connection to it, failed: it closed the connection
 * (died, or gave up), reset it, stopped reading or answering within the deadline (stalled), or
 * the connection failed otherwise. Names the {@link #phase()} it happened in and the {@link
 * #peer()}; {@link #guestStaysAtSource()} says which side owns the guest now.
 */
public final class MigrationPeerException extends MigrationException {
    private static final long serialVersionUID = 1L;

    /** What the peer or the connection did. */
    public enum Fault {
        /** Nothing arrived, or nothing was taken, within the deadline: a stalled peer. */
        TIMEOUT("did not answer within the deadline"),
        /** The peer closed the connection (end of stream): it died or gave up. */
        CLOSED("closed the connection"),
        /** ECONNRESET. */
        RESET("reset the connection"),
        /** EPIPE: writing to a connection the peer no longer reads. */
        BROKEN_PIPE("is gone (broken pipe)"),
        /**
         * The peer is not who may connect: a UNIX socket peer of another user (SO_PEERCRED), or a
         * TLS peer whose certificate is not trusted. Nothing was sent to it or taken from it.
         */
        REFUSED("is not allowed to connect"),
        /** Any other failure of the connection. */
        IO("failed");

        private final String words;

        Fault(String words) {
            this.words = words;
        }
    }

    private final MigrationPhase phase;
    private final String peer;
    private final Fault fault;

    /**
     * @param phase where the migration was
     * @param peer who failed, in words (e.g. "the destination (unix socket accepted on ...)")
     * @param fault what it did
     * @param cause the failure as the connection reported it
     */
    public MigrationPeerException(MigrationPhase phase, String peer, Fault fault, Throwable cause) {
        super("migration failed in phase " + phase + ": " + peer + " " + fault.words
                + (cause == null ? "" : " (" + cause.getMessage() + ")"), cause);
        this.phase = Objects.requireNonNull(phase, "phase");
        this.peer = Objects.requireNonNull(peer, "peer");
        this.fault = Objects.requireNonNull(fault, "fault");
    }

    /** A failure of the connection, classified by what its cause chain says. */
    public static MigrationPeerException of(MigrationPhase phase, String peer, Throwable cause) {
        return new MigrationPeerException(phase, peer, classify(cause), cause);
    }

    /**
     * What a stream failure read through {@code reader} was: when the channel's read threw or met
     * the end of the channel (the peer closed its end before the stream was complete), the peer or
     * the connection failed, and the answer is a {@code MigrationPeerException} whose cause is
     * {@code failure} (which names the section and byte offset); otherwise the stream itself was
     * malformed and the answer is {@code failure}.
     */
    public static MigrationException ofStream(MigrationPhase phase, String peer, MigrationStreamException failure,
            MigrationStreamReader reader) {
        if (reader.readFailure() != null || reader.endOfStream()) {
            Fault fault = classify(failure);
            return new MigrationPeerException(phase, peer, fault == Fault.IO && reader.endOfStream() ? Fault.CLOSED : fault,
                    failure);
        }
        return failure;
    }

    /**
     * What a connection failure was: a refused peer ({@link PeerRefusedException}, a failed TLS
     * handshake) anywhere in the cause chain, else a timeout anywhere in the cause chain, else EPIPE or
     * ECONNRESET, else an end of stream ({@link EOFException}: the stream reader gives its
     * truncations that cause), else {@link Fault#IO}.
     */
    public static Fault classify(Throwable failure) {
        for (Throwable t = failure; t != null; t = t.getCause()) {
            if (t instanceof PeerRefusedException || t instanceof SSLHandshakeException) {
                return Fault.REFUSED;
            }
            if (t instanceof SocketTimeoutException) {
                return Fault.TIMEOUT;
            }
            if (t instanceof NativeCallException n) {
                switch (n.errnoSymbol()) {
                    case "EPIPE": return Fault.BROKEN_PIPE;
                    case "ECONNRESET": return Fault.RESET;
                    default: break;
                }
            }
            if (t instanceof EOFException) {
                return Fault.CLOSED;
            }
            if (t.getCause() == t) {
                break;
            }
        }
        return Fault.IO;
    }

    /** Where the migration was. */
    public MigrationPhase phase() {
        return phase;
    }

    /** Who failed, in words. */
    public String peer() {
        return peer;
    }

    /** What happened. */
    public Fault fault() {
        return fault;
    }

    /** Whether the guest stays with the source (the failure came before the acknowledgement arrived). */
    public boolean guestStaysAtSource() {
        return phase.guestStaysAtSource();
    }
}

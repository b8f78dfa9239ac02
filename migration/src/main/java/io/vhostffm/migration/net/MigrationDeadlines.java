package io.vhostffm.migration.net;

import java.time.Duration;
import java.util.Objects;

/**
 * How long each blocking step of a migration between two processes may wait for the peer: a
 * peer that died shows up at once (end of stream, EPIPE, ECONNRESET), one that stalled (stopped,
 * hung, swapped out) only through these deadlines, as a {@code MigrationPeerException} with
 * fault {@code TIMEOUT} naming the phase.
 *
 * @param connect the source waiting for the destination to connect (it starts a process first)
 * @param handoff the destination waiting for the memfds and backend fds
 * @param streamRead each read of the stream, of the RAM precopy and of the answers: the longest
 *     silence accepted. A destination also waits this long between precopy deltas: a source with
 *     a longer quiet precopy must raise it
 * @param write each write: the longest the peer may leave its receive buffer full
 * @param acknowledgement after stop-and-copy, the source waiting for the destination's answer,
 *     and the destination waiting for the source's commit
 */
public record MigrationDeadlines(Duration connect, Duration handoff, Duration streamRead, Duration write,
        Duration acknowledgement) {
    public MigrationDeadlines {
        for (Duration d : new Duration[] {connect, handoff, streamRead, write, acknowledgement}) {
            Objects.requireNonNull(d, "deadline");
            if (d.isNegative() || d.isZero()) {
                throw new IllegalArgumentException("a deadline must be positive: " + d);
            }
        }
    }

    /**
     * The defaults: connect 60 s (a cold JVM under load), handoff 30 s, each stream read 60 s,
     * each write 30 s, acknowledgement 30 s. Generous: an emulated host is a hundred times slower
     * than hardware, and a deadline that fires on a healthy peer fails a good migration.
     */
    public static MigrationDeadlines defaults() {
        return new MigrationDeadlines(Duration.ofSeconds(60), Duration.ofSeconds(30), Duration.ofSeconds(60),
                Duration.ofSeconds(30), Duration.ofSeconds(30));
    }

    /** Every deadline {@code d} (tests: a short one, so that a stalled peer is found quickly). */
    public static MigrationDeadlines uniform(Duration d) {
        return new MigrationDeadlines(d, d, d, d, d);
    }

    /** These deadlines with another connect deadline. */
    public MigrationDeadlines withConnect(Duration d) {
        return new MigrationDeadlines(d, handoff, streamRead, write, acknowledgement);
    }
}

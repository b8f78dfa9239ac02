package io.vhostffm.migration;

import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;

/**
 * A loop of the connection's own kind for the destination's rehearsals of its switchover read:
 * what is written into {@link #writer()} comes back out of {@link #reader()}, through the same
 * read path the migration's connection takes (for a {@code UnixSocketChannel}, a socket pair:
 * {@code io.vhostffm.migration.net.UnixSocketChannel#loop()}). {@link
 * MigrationDestination#setRehearsalLoop} opens one before the rehearsals and closes it after them.
 */
public interface RehearsalLoop extends AutoCloseable {
    /** Where a rehearsal writes the stream it then reads; each write takes all of it (a stream of a few hundred bytes). */
    WritableByteChannel writer();

    /** Where the rehearsal reads it back; a blocking channel. */
    ReadableByteChannel reader();

    /** Closes both ends. */
    @Override
    void close();
}

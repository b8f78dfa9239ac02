package io.vhostffm.programs.demo;

import io.vhostffm.migration.schema.StateDecodeException;
import io.vhostffm.migration.schema.StateSchema;
import java.io.EOFException;
import java.io.IOException;
import java.lang.invoke.MethodHandles;
import java.nio.ByteBuffer;
import java.nio.channels.ByteChannel;

/**
 * The demo's own messages between the two processes, after the migration stream (the guest's
 * carried state, traffic plans, the destination's figures): a 4-byte length, then a record
 * encoded by its {@link StateSchema}.
 */
final class Messages {
    private static final int MAX = 64 << 20;
    /** This module's lookup: the schema reads the components of records the migration module cannot see. */
    private static final MethodHandles.Lookup LOOKUP = MethodHandles.lookup();

    private Messages() {}

    /**
     * Compiles the schemas of {@code types} now (once per type; {@link StateSchema#of} caches
     * them): a message first sent or received inside a migration's downtime would otherwise pay
     * for building its encoder and decoder there.
     */
    @SafeVarargs
    static void prepare(Class<? extends Record>... types) {
        for (Class<? extends Record> type : types) {
            StateSchema.of(type, LOOKUP);
        }
    }

    /**
     * Encodes {@code sample} and decodes the bytes {@code times} times, through the code a message
     * of its type takes on the wire: a message that crosses inside the downtime is then compiled
     * before it (a rehearsal, as the destination's of its switchover).
     */
    static <R extends Record> void rehearse(Class<R> type, R sample, int times) {
        StateSchema<R> schema = StateSchema.of(type, LOOKUP);
        try {
            for (int i = 0; i < times; i++) {
                schema.decode(schema.encode(sample));
            }
        } catch (StateDecodeException e) {
            throw new IllegalStateException(type.getSimpleName() + ": its own encoding does not decode: " + e.getMessage(), e);
        }
    }

    static <R extends Record> void send(ByteChannel channel, Class<R> type, R record) throws IOException {
        write(channel, encode(type, record));
    }

    /**
     * {@code record} as it goes on the wire (length, then the encoding), for {@link #write} later:
     * a message whose content is known before the moment it must go out is encoded ahead.
     */
    static <R extends Record> ByteBuffer encode(Class<R> type, R record) {
        byte[] bytes = StateSchema.of(type, LOOKUP).encode(record);
        return ByteBuffer.allocate(4 + bytes.length).putInt(bytes.length).put(bytes).flip();
    }

    /** Writes a message {@link #encode encoded} before, in full. */
    static void write(ByteChannel channel, ByteBuffer message) throws IOException {
        while (message.hasRemaining()) {
            channel.write(message);
        }
    }

    static <R extends Record> R receive(ByteChannel channel, Class<R> type) throws IOException {
        ByteBuffer length = readFully(channel, 4, type);
        int n = length.getInt(0);
        if (n < 0 || n > MAX) {
            throw new IOException(type.getSimpleName() + ": length " + n + " outside 0.." + MAX);
        }
        ByteBuffer body = readFully(channel, n, type);
        try {
            return StateSchema.of(type, LOOKUP).decode(body.array());
        } catch (StateDecodeException e) {
            throw new IOException(type.getSimpleName() + ": " + e.getMessage(), e);
        }
    }

    private static ByteBuffer readFully(ByteChannel channel, int n, Class<?> type) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(n);
        while (b.hasRemaining()) {
            if (channel.read(b) < 0) {
                throw new EOFException(type.getSimpleName() + ": the peer closed the socket after " + b.position() + " of "
                        + n + " bytes");
            }
        }
        return b;
    }
}

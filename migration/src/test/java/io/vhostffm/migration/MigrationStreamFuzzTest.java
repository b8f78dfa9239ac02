package io.vhostffm.migration;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import io.vhostffm.migration.internal.Acknowledgement;
import io.vhostffm.migration.internal.Manifest;
import io.vhostffm.migration.net.LocalHandoff;
import io.vhostffm.migration.net.NetSections;
import io.vhostffm.migration.net.PendingTx;
import io.vhostffm.migration.net.QueueLayouts;
import io.vhostffm.migration.schema.StateDecodeException;
import io.vhostffm.migration.schema.StateSchema;
import io.vhostffm.migration.stream.MigrationStreamReader;
import io.vhostffm.migration.stream.Section;
import io.vhostffm.migration.stream.StreamFormat;
import io.vhostffm.vhost.virtio.net.VirtioState;
import io.vhostffm.vhost.virtio.net.VirtioNetState;
import java.io.ByteArrayInputStream;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32C;

/**
 * Coverage-guided fuzzing of what a migration destination reads: the stream's framing, the
 * protocol order on top of it, and the state decoder over the real device records.
 *
 * <p>{@link #destinationStream}: the input is a stream (the stored seeds are real ones from a
 * {@link MigrationSource}); its first byte chooses whether the target rewrites every frame's
 * CRC32C before reading, so that mutations reach past the checksum into the protocol and the
 * records. Invariants: {@link MigrationDestination#receive} returns or throws a {@link
 * MigrationException} with a message; when it throws, the device's switchover was never called
 * (the destination never started; the source keeps the guest); when it returns, the switchover
 * ran exactly once.
 *
 * <p>{@link #streamReader}: raw bytes to {@link MigrationStreamReader}: frames come out or a
 * {@link io.vhostffm.migration.MigrationStreamException} naming an offset inside the input; after
 * one, the reader refuses to read on; it never reads past the end marker.
 *
 * <p>{@link #stateDecoder}: one of the records that travel (the device's sections, the final
 * indices, the manifests, the acknowledgement) decoded from fuzzer bytes: a record or a
 * {@link StateDecodeException} naming an offset inside the bytes; a record decoded re-encodes to
 * exactly the bytes it came from (one encoding per value, nothing ignored).
 *
 * <p>Without {@code JAZZER_FUZZ=1} these run the stored inputs under {@code MigrationStreamFuzzTestInputs}.
 */
class MigrationStreamFuzzTest {
    private static final List<StateSchema<?>> RECORDS = List.of(
            StateSchema.of(VirtioState.class), StateSchema.of(QueueLayouts.class),
            StateSchema.of(VirtioNetState.class), StateSchema.of(PendingTx.class),
            StateSchema.of(FinalPositions.class), StateSchema.of(Manifest.class),
            StateSchema.of(Acknowledgement.class), StateSchema.of(LocalHandoff.Manifest.class));

    private static final Map<Integer, String> SECTIONS = Map.of(NetSections.VIRTIO, NetSections.VIRTIO_NAME,
            NetSections.QUEUES, NetSections.QUEUES_NAME, NetSections.NET, NetSections.NET_NAME,
            NetSections.PENDING_TX, NetSections.PENDING_TX_NAME);

    @FuzzTest
    void destinationStream(byte[] input) {
        if (input.length == 0) {
            return;
        }
        byte[] stream = java.util.Arrays.copyOfRange(input, 1, input.length);
        if ((input[0] & 1) != 0) {
            fixChecksums(stream);
        }
        List<Switchover> started = new ArrayList<>();
        // The wait for the rehearsals' compilations is not under test and would cost each
        // input that gets past the setup at least three readings of the compilation time.
        String settle = System.setProperty(MigrationDestination.COMPILER_SETTLE_PROPERTY, "0");
        try {
            receive(stream, started);
        } finally {
            if (settle == null) {
                System.clearProperty(MigrationDestination.COMPILER_SETTLE_PROPERTY);
            } else {
                System.setProperty(MigrationDestination.COMPILER_SETTLE_PROPERTY, settle);
            }
        }
    }

    private static void receive(byte[] stream, List<Switchover> started) {
        MigrationDestination destination = new MigrationDestination(List.of(
                section(NetSections.VIRTIO, NetSections.VIRTIO_NAME, VirtioState.class),
                section(NetSections.QUEUES, NetSections.QUEUES_NAME, QueueLayouts.class),
                section(NetSections.NET, NetSections.NET_NAME, VirtioNetState.class),
                section(NetSections.PENDING_TX, NetSections.PENDING_TX_NAME, PendingTx.class)), started::add);
        try {
            ReceivedMigration received = destination.receive(
                    destination.reader(Channels.newChannel(new ByteArrayInputStream(stream))));
            assertNotNull(received);
            assertEquals(1, started.size(), "a received migration switched over once");
        } catch (MigrationException e) {
            assertNotNull(e.getMessage());
            assertTrue(started.isEmpty(), () -> "the destination started, then failed: " + e.getMessage());
        }
    }

    private static <R extends Record> DeviceStateSection<R> section(int id, String name, Class<R> type) {
        return DeviceStateSection.onDestination(id, name, type, early -> { }, (previous, now, changed, at) -> { });
    }

    /** Rewrites the CRC32C of every whole frame, walking the frames by their lengths. */
    private static void fixChecksums(byte[] stream) {
        ByteBuffer b = ByteBuffer.wrap(stream);
        int at = StreamFormat.HEADER_SIZE;
        CRC32C crc = new CRC32C();
        while (at + StreamFormat.FRAME_HEADER_SIZE <= stream.length) {
            long length = Integer.toUnsignedLong(b.getInt(at + 4));
            long end = at + StreamFormat.FRAME_HEADER_SIZE + length;
            if (end + StreamFormat.CHECKSUM_SIZE > stream.length) {
                return;
            }
            crc.reset();
            crc.update(stream, at, (int) (end - at));
            b.putInt((int) end, (int) crc.getValue());
            at = (int) end + StreamFormat.CHECKSUM_SIZE;
        }
    }

    @FuzzTest
    void streamReader(byte[] stream) {
        MigrationStreamReader reader = new MigrationStreamReader(
                Channels.newChannel(new ByteArrayInputStream(stream)), SECTIONS, 1 << 16);
        try {
            while (true) {
                Section section = reader.next();
                assertTrue(reader.offset() <= stream.length, "read past the input");
                if (section.isEndOfStream()) {
                    assertThrows(IllegalStateException.class, reader::next);
                    return;
                }
                assertNotNull(reader.nameOf(section.id()), () -> "unknown section came out: " + section.id());
            }
        } catch (MigrationStreamException e) {
            assertNotNull(e.getMessage());
            assertTrue(e.offset() >= 0 && e.offset() <= stream.length,
                    () -> "offset " + e.offset() + " outside the " + stream.length + " input bytes: " + e.getMessage());
            assertThrows(IllegalStateException.class, reader::next, "the reader went on after a failure");
        }
    }

    @FuzzTest
    void stateDecoder(FuzzedDataProvider data) {
        StateSchema<?> schema = data.pickValue(RECORDS);
        byte[] bytes = data.consumeRemainingAsBytes();
        decodeAndCheck(schema, bytes);
    }

    private static <R extends Record> void decodeAndCheck(StateSchema<R> schema, byte[] bytes) {
        R value;
        try {
            value = schema.decode(bytes);
        } catch (StateDecodeException e) {
            assertNotNull(e.reason());
            assertTrue(e.offset() >= 0 && e.offset() <= bytes.length,
                    () -> schema.recordType().getSimpleName() + ": offset " + e.offset() + " outside the "
                            + bytes.length + " bytes: " + e.getMessage());
            return;
        }
        assertNotNull(value);
        assertArrayEquals(bytes, schema.encode(value), () -> schema.recordType().getSimpleName()
                + " decoded from bytes that are not its encoding");
        assertFalse(schema.changedFields(value, schema.snapshot(value)).iterator().hasNext(),
                "a snapshot differs from its value");
    }
}

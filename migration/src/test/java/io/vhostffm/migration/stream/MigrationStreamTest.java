package io.vhostffm.migration.stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.vhostffm.migration.MigrationStreamException;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class MigrationStreamTest {
    private static final Map<Integer, String> SECTIONS = Map.of(1, "virtio", 2, "net");

    static byte[] validStream() throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        MigrationStreamWriter w = MigrationStreamWriter.over(bytes);
        w.writeSection(1, StreamFormat.FLAG_INIT_STATE, new byte[] {1, 2, 3});
        w.writeSection(2, StreamFormat.FLAG_INIT_STATE | StreamFormat.FLAG_END_OF_DATA, new byte[100]);
        w.writeSection(StreamFormat.QUEUE_INDICES,
                StreamFormat.FLAG_NO_DATA | StreamFormat.FLAG_SWITCHOVER | StreamFormat.FLAG_END_OF_DATA, new byte[0]);
        w.writeEndOfStream();
        assertEquals(bytes.size(), w.bytesWritten());
        return bytes.toByteArray();
    }

    static List<Section> readAll(byte[] stream) throws MigrationStreamException {
        MigrationStreamReader r = MigrationStreamReader.over(new ByteArrayInputStream(stream), SECTIONS);
        List<Section> out = new ArrayList<>();
        Section s;
        do {
            s = r.next();
            out.add(s);
        } while (!s.isEndOfStream());
        return out;
    }

    static MigrationStreamException failure(byte[] stream) {
        return assertThrows(MigrationStreamException.class, () -> readAll(stream));
    }

    @Test
    void framesRoundTrip() throws Exception {
        byte[] stream = validStream();
        assertEquals(8 + (12 + 3) + (12 + 100) + 12 + 12, stream.length);
        List<Section> sections = readAll(stream);
        assertEquals(4, sections.size());
        assertEquals(1, sections.get(0).id());
        assertEquals(8, sections.get(0).offset());
        assertArrayEquals(new byte[] {1, 2, 3}, sections.get(0).payload());
        assertTrue(sections.get(1).has(StreamFormat.FLAG_END_OF_DATA));
        assertEquals(8 + 15, sections.get(1).offset());
        assertEquals(StreamFormat.QUEUE_INDICES, sections.get(2).id());
        assertTrue(sections.get(3).isEndOfStream());
    }

    /**
     * The last section and the end marker in one write: the same bytes as two writes, in one
     * call on the channel (the destination wakes once), and nothing may follow.
     */
    @Test
    void lastSectionAndEndGoOutInOneWriteWithTheSameBytes() throws Exception {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        List<Integer> writes = new ArrayList<>();
        java.nio.channels.WritableByteChannel counting = new java.nio.channels.WritableByteChannel() {
            private final java.nio.channels.WritableByteChannel inner = Channels.newChannel(bytes);

            @Override
            public int write(ByteBuffer src) throws IOException {
                int n = inner.write(src);
                writes.add(n);
                return n;
            }

            @Override
            public boolean isOpen() {
                return true;
            }

            @Override
            public void close() {}
        };
        MigrationStreamWriter w = new MigrationStreamWriter(counting);
        w.writeSection(1, StreamFormat.FLAG_INIT_STATE, new byte[] {1, 2, 3});
        w.writeSection(2, StreamFormat.FLAG_INIT_STATE | StreamFormat.FLAG_END_OF_DATA, new byte[100]);
        writes.clear();
        w.writeLastSectionAndEnd(StreamFormat.QUEUE_INDICES,
                StreamFormat.FLAG_NO_DATA | StreamFormat.FLAG_SWITCHOVER | StreamFormat.FLAG_END_OF_DATA, new byte[0]);
        assertEquals(List.of(12 + 12), writes, "one write: the indices frame and the end marker");
        assertArrayEquals(validStream(), bytes.toByteArray());
        assertEquals(bytes.size(), w.bytesWritten());
        assertThrows(IllegalStateException.class, () -> w.writeSection(1, 0, new byte[0]));
        assertThrows(IllegalArgumentException.class,
                () -> new MigrationStreamWriter(counting).writeLastSectionAndEnd(StreamFormat.END_OF_STREAM, 0, new byte[0]));
    }

    @Test
    void wrongMagic() throws Exception {
        byte[] s = validStream();
        s[0] = 'X';
        MigrationStreamException e = failure(s);
        assertEquals(0, e.offset());
        assertEquals(MigrationStreamException.NO_SECTION, e.sectionId());
        assertTrue(e.getMessage().contains("magic"), e.getMessage());
    }

    @Test
    void aFailedReaderRefusesToGoOn() throws Exception {
        byte[] s = validStream();
        s[8 + 15 + 8 + 50] ^= 1; // break section 2
        MigrationStreamReader r = MigrationStreamReader.over(new ByteArrayInputStream(s), SECTIONS);
        assertEquals(1, r.next().id());
        assertThrows(MigrationStreamException.class, r::next);
        assertThrows(IllegalStateException.class, r::next);
    }

    @Test
    void wrongVersion() throws Exception {
        byte[] s = validStream();
        s[5] = 2;
        MigrationStreamException e = failure(s);
        assertEquals(4, e.offset());
        assertTrue(e.getMessage().contains("version 2"), e.getMessage());
    }

    @Test
    void reservedHeaderBits() throws Exception {
        byte[] s = validStream();
        s[7] = 1;
        assertEquals(6, failure(s).offset());
    }

    @Test
    void unknownSectionId() throws Exception {
        byte[] s = validStream();
        s[8 + 15 + 1] = 7; // second frame: id 2 -> 7
        MigrationStreamException e = failure(s);
        assertEquals(7, e.sectionId());
        assertNull(e.sectionName());
        assertEquals(8 + 15, e.offset());
        assertTrue(e.getMessage().contains("unknown section id"), e.getMessage());
    }

    @Test
    void unknownFlag() throws Exception {
        byte[] s = validStream();
        s[8 + 2] = 0x40; // first frame's flags high byte
        MigrationStreamException e = failure(s);
        assertEquals(1, e.sectionId());
        assertEquals("virtio", e.sectionName());
        assertEquals(8 + 2, e.offset());
        assertTrue(e.getMessage().contains("unknown flags"), e.getMessage());
    }

    @Test
    void lengthOverTheLimit() throws Exception {
        byte[] s = validStream();
        s[8 + 4] = 0x7f;
        MigrationStreamException e = failure(s);
        assertEquals(1, e.sectionId());
        assertEquals(8 + 4, e.offset());
        assertTrue(e.getMessage().contains("exceeds the limit"), e.getMessage());
        // a smaller limit applies before reading
        MigrationStreamReader r = new MigrationStreamReader(
                Channels.newChannel(new ByteArrayInputStream(validStream())), SECTIONS, 50);
        assertEquals(1, r.next().id());
        e = assertThrows(MigrationStreamException.class, r::next);
        assertEquals(2, e.sectionId());
    }

    @Test
    void badChecksumNamesTheSection() throws Exception {
        byte[] s = validStream();
        s[8 + 15 + 8 + 50] ^= 1; // a payload byte of section 2
        MigrationStreamException e = failure(s);
        assertEquals(2, e.sectionId());
        assertEquals("net", e.sectionName());
        assertEquals(8 + 15 + 8 + 100, e.offset(), "offset of the checksum");
        assertTrue(e.getMessage().contains("CRC32C"), e.getMessage());
    }

    @Test
    void endMarkerMustBeEmpty() throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        MigrationStreamWriter w = MigrationStreamWriter.over(out);
        w.writeHeader();
        ByteBuffer frame = ByteBuffer.allocate(12).putShort((short) 0).putShort((short) 8).putInt(0);
        java.util.zip.CRC32C crc = new java.util.zip.CRC32C();
        crc.update(frame.array(), 0, 8);
        frame.putInt((int) crc.getValue());
        out.write(frame.array());
        MigrationStreamException e = failure(out.toByteArray());
        assertEquals(0, e.sectionId());
        assertTrue(e.getMessage().contains("end marker"), e.getMessage());
    }

    @Test
    void truncationAtEveryOffsetIsAStreamError() throws Exception {
        byte[] s = validStream();
        for (int len = 0; len < s.length; len++) {
            byte[] cut = java.util.Arrays.copyOf(s, len);
            MigrationStreamException e = failure(cut);
            assertEquals(len, e.offset(), "truncated at " + len + ": " + e.getMessage());
            assertTrue(e.getMessage().contains("truncated"), e.getMessage());
        }
    }

    @Test
    void everyFlippedByteIsAStreamError() throws Exception {
        byte[] s = validStream();
        for (int i = 0; i < s.length; i++) {
            for (int mask : new int[] {0x01, 0x10, 0x80, 0xff}) {
                byte[] bad = s.clone();
                bad[i] ^= (byte) mask;
                try {
                    readAll(bad);
                    fail("flip 0x" + Integer.toHexString(mask) + " at " + i + " went unnoticed");
                } catch (MigrationStreamException expected) {
                    assertTrue(expected.offset() >= 0 && expected.offset() <= s.length);
                }
            }
        }
    }

    @Test
    void randomBytesAreAStreamError() throws Exception {
        java.util.Random random = new java.util.Random(7);
        byte[] valid = validStream();
        for (int i = 0; i < 5_000; i++) {
            byte[] junk = new byte[random.nextInt(200)];
            random.nextBytes(junk);
            if (i % 2 == 0 && junk.length >= 8) {
                System.arraycopy(valid, 0, junk, 0, 8); // a valid header, then junk frames
            }
            byte[] input = junk;
            assertThrows(MigrationStreamException.class, () -> readAll(input), "random input " + i);
        }
    }

    @Test
    void writerRefusesWhatTheReaderWouldReject() {
        MigrationStreamWriter w = MigrationStreamWriter.over(new ByteArrayOutputStream());
        assertThrows(IllegalArgumentException.class, () -> w.writeSection(1, 0x100, new byte[0]));
        assertThrows(IllegalArgumentException.class, () -> w.writeSection(0, 0, new byte[0]));
        assertThrows(IllegalArgumentException.class, () -> w.writeSection(0x10000, 0, new byte[0]));
        MigrationStreamWriter small = new MigrationStreamWriter(Channels.newChannel(new ByteArrayOutputStream()), 4);
        assertThrows(IllegalArgumentException.class, () -> small.writeSection(1, 0, new byte[5]));
    }

    @Test
    void readerRejectsNonDeviceIdsAsDeviceSections() {
        assertThrows(IllegalArgumentException.class,
                () -> new MigrationStreamReader(Channels.newChannel(new ByteArrayInputStream(new byte[0])),
                        Map.of(StreamFormat.MANIFEST, "x")));
    }
}

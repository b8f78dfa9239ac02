package io.vhostffm.vring;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The public ring layout arithmetic and GuestMemory's byte and value helpers. */
class RingPlacementAndGuestBytesTest {

    @Test
    void splitSizesAreTheSpecsFormulas() {
        for (int n = 1; n <= SplitRingLayout.MAX_QUEUE_SIZE; n <<= 1) {
            assertEquals(16L * n, SplitRingLayout.descTableBytes(n));
            assertEquals(6 + 2L * n, SplitRingLayout.availRingBytes(n));
            assertEquals(6 + 8L * n, SplitRingLayout.usedRingBytes(n));
        }
        assertThrows(IllegalArgumentException.class, () -> SplitRingLayout.descTableBytes(96));
        assertThrows(IllegalArgumentException.class, () -> SplitRingLayout.usedRingBytes(0));
        assertThrows(IllegalArgumentException.class, () -> SplitRingLayout.availRingBytes(1 << 16));
    }

    @Test
    void splitPlacementIsAlignedAndTheQueuesDoNotOverlap() {
        long base = 0x1003;
        for (int n : new int[] {1, 2, 64, 256, 1024}) {
            RingAddresses a = SplitRingLayout.place(base, n);
            assertEquals(0, a.descTable() % SplitRingLayout.DESC_TABLE_ALIGNMENT);
            assertEquals(0, a.driverArea() % SplitRingLayout.AVAIL_RING_ALIGNMENT);
            assertEquals(0, a.deviceArea() % SplitRingLayout.USED_RING_ALIGNMENT);
            assertTrue(a.descTable() >= base);
            assertTrue(a.driverArea() >= a.descTable() + SplitRingLayout.descTableBytes(n));
            assertTrue(a.deviceArea() >= a.driverArea() + SplitRingLayout.availRingBytes(n));
            assertEquals(a.deviceArea() + SplitRingLayout.usedRingBytes(n), a.end());
            base = a.end(); // the next queue starts where this one ends
        }
        assertEquals(new RingAddresses(0, 16, 24, 24 + 14), SplitRingLayout.place(0, 1));
    }

    @Test
    void packedPlacementIsAligned() {
        RingAddresses a = PackedRing.place(0x2001, 3);
        assertEquals(0x2010, a.descTable());
        assertEquals(0x2010 + 48, a.driverArea());
        assertEquals(a.driverArea() + PackedRing.EVENT_SUPPRESSION_SIZE, a.deviceArea());
        assertEquals(a.deviceArea() + PackedRing.EVENT_SUPPRESSION_SIZE, a.end());
        assertThrows(IllegalArgumentException.class, () -> PackedRing.place(0, 0));
    }

    @Test
    void bytesAndLittleEndianValuesByGuestAddress() {
        try (Arena arena = Arena.ofConfined()) {
            GuestMemory memory = GuestMemory.of(List.of(
                    new GuestRegion(0x1000, arena.allocate(0x1000, 4096)),
                    new GuestRegion(0x4000, arena.allocate(0x1000, 4096))));
            memory.write(0x1ffd, new byte[] {1, 2, 3});
            byte[] back = new byte[3];
            memory.read(0x1ffd, back);
            assertArrayEquals(new byte[] {1, 2, 3}, back);

            memory.writeLe16(0x4001, (short) 0xbeef); // unaligned
            memory.writeLe32(0x4003, 0x12345678);
            memory.writeLe64(0x4007, 0x0102030405060708L);
            assertEquals((short) 0xbeef, memory.readLe16(0x4001));
            assertEquals(0x12345678, memory.readLe32(0x4003));
            assertEquals(0x0102030405060708L, memory.readLe64(0x4007));
            byte[] raw = new byte[2];
            memory.read(0x4001, raw);
            assertArrayEquals(new byte[] {(byte) 0xef, (byte) 0xbe}, raw, "little-endian in guest memory");

            GuestMemoryException crossing = assertThrows(GuestMemoryException.class,
                    () -> memory.write(0x1ffe, new byte[] {1, 2, 3}));
            assertEquals(0x1ffe, crossing.guestAddress());
            assertTrue(crossing.getMessage().contains("0x1ffe") && crossing.getMessage().contains("crosses"),
                    crossing.getMessage());
            GuestMemoryException hole = assertThrows(GuestMemoryException.class, () -> memory.readLe32(0x3000));
            assertTrue(hole.getMessage().contains("0x3000") && hole.getMessage().contains("hole"), hole.getMessage());
            assertThrows(GuestMemoryException.class, () -> memory.writeLe64(0x4ffc, 1));
            assertThrows(IndexOutOfBoundsException.class, () -> memory.read(0x1000, new byte[2], 1, 2));
        }
    }
}

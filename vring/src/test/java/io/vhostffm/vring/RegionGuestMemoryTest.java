package io.vhostffm.vring;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.util.List;
import org.junit.jupiter.api.Test;

class RegionGuestMemoryTest {
    private final Arena arena = Arena.ofAuto();
    private final GuestMemory memory = GuestMemory.of(List.of(
            new GuestRegion(0x10_0000, arena.allocate(0x1000)),
            new GuestRegion(0x0, arena.allocate(0x2000))));

    @Test
    void findsRangesInsideOneRegion() {
        assertEquals(0, memory.findRegion(0, 0x2000));
        assertEquals(1, memory.findRegion(0x10_0ff0, 0x10));
        assertEquals(0, memory.findRegion(0x1fff, 0));
    }

    @Test
    void rejectsHolesRegionEndsAndOverflow() {
        assertEquals(-1, memory.findRegion(0x1fff, 2));
        assertEquals(-1, memory.findRegion(0x5000, 1));
        assertEquals(-1, memory.findRegion(Long.MAX_VALUE - 1, 4));
        assertEquals(-1, memory.findRegion(-8, 4));
        GuestMemoryException hole = assertThrows(GuestMemoryException.class, () -> memory.slice(0x5000, 16));
        assertTrue(hole.getMessage().contains("0x5000") && hole.getMessage().contains("hole"), hole.getMessage());
        GuestMemoryException cross = assertThrows(GuestMemoryException.class, () -> memory.slice(0x10_0ff0, 0x20));
        assertTrue(cross.getMessage().contains("crosses the end"), cross.getMessage());
    }

    @Test
    void slicesAreViewsNotCopies() {
        memory.slice(0x10_0010, 8).set(ValueLayout.JAVA_LONG_UNALIGNED, 0, 0x1122334455667788L);
        assertEquals(0x1122334455667788L,
                memory.regions().get(1).segment().get(ValueLayout.JAVA_LONG_UNALIGNED, 0x10));
    }

    @Test
    void overlappingRegionsAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> GuestMemory.of(List.of(
                new GuestRegion(0, arena.allocate(0x2000)), new GuestRegion(0x1000, arena.allocate(0x1000)))));
    }
}

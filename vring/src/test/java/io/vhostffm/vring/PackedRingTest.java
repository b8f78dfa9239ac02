package io.vhostffm.vring;

import static io.vhostffm.vring.PackedRing.VIRTQ_DESC_F_AVAIL;
import static io.vhostffm.vring.PackedRing.VIRTQ_DESC_F_USED;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemoryLayout.PathElement;
import org.junit.jupiter.api.Test;

/** The packed ring's layouts and the arithmetic both sides share. */
class PackedRingTest {

    @Test
    void layoutsMatchTheSpec() {
        assertEquals(16, PackedRing.PVIRTQ_DESC.byteSize());
        assertEquals(0, PackedRing.PVIRTQ_DESC.byteOffset(PathElement.groupElement("addr")));
        assertEquals(8, PackedRing.PVIRTQ_DESC.byteOffset(PathElement.groupElement("len")));
        assertEquals(12, PackedRing.PVIRTQ_DESC.byteOffset(PathElement.groupElement("id")));
        assertEquals(14, PackedRing.PVIRTQ_DESC.byteOffset(PathElement.groupElement("flags")));
        assertEquals(16, PackedRing.PVIRTQ_DESC_UNALIGNED.byteSize());
        assertEquals(1, PackedRing.PVIRTQ_DESC_UNALIGNED.byteAlignment());
        assertEquals(4, PackedRing.PVIRTQ_EVENT_SUPPRESS.byteSize());
        assertEquals(2, PackedRing.PVIRTQ_EVENT_SUPPRESS.byteOffset(PathElement.groupElement("flags")));
        assertEquals(0x80, VIRTQ_DESC_F_AVAIL);
        assertEquals(0x8000, VIRTQ_DESC_F_USED);
    }

    @Test
    void availableAndUsedFollowTheWrapCounters() {
        // The driver marks available with AVAIL = its wrap counter, USED = the inverse.
        assertTrue(PackedRing.isAvailable(PackedRing.availFlags(true), true));
        assertTrue(PackedRing.isAvailable(PackedRing.availFlags(false), false));
        assertFalse(PackedRing.isAvailable(PackedRing.availFlags(true), false));
        assertFalse(PackedRing.isAvailable(PackedRing.availFlags(false), true));
        // The device marks used with both bits = its wrap counter.
        assertTrue(PackedRing.isUsed(PackedRing.usedFlags(true), true));
        assertTrue(PackedRing.isUsed(PackedRing.usedFlags(false), false));
        assertFalse(PackedRing.isUsed(PackedRing.usedFlags(true), false));
        // Used is never available, available never used; zeroed memory is neither available.
        for (boolean wrap : new boolean[] {true, false}) {
            assertFalse(PackedRing.isAvailable(PackedRing.usedFlags(true), wrap));
            assertFalse(PackedRing.isAvailable(PackedRing.usedFlags(false), wrap));
            assertFalse(PackedRing.isUsed(PackedRing.availFlags(true), wrap));
            assertFalse(PackedRing.isUsed(PackedRing.availFlags(false), wrap));
            assertFalse(PackedRing.isAvailable(0, wrap));
        }
    }

    @Test
    void lapPositionsAndEventWords() {
        assertEquals(5, PackedRing.lapPosition(5, true, 10));
        assertEquals(15, PackedRing.lapPosition(5, false, 10));
        assertEquals(0x8000 | 5, PackedRing.eventOffWrap(5, true));
        assertEquals(5, PackedRing.eventOffWrap(5, false));
        assertEquals(0xFFFF, PackedRing.eventOffWrap(0x7FFF, true));
    }

    @Test
    void needsEventIsTheHalfOpenRangeModuloTwoLaps() {
        int size = 10; // not a power of two: packed rings need not be
        int event = PackedRing.eventOffWrap(3, true); // lap position 3
        assertTrue(PackedRing.needsEvent(event, 4, 3, size));  // [3, 4)
        assertTrue(PackedRing.needsEvent(event, 9, 0, size));  // [0, 9)
        assertFalse(PackedRing.needsEvent(event, 3, 0, size)); // [0, 3)
        assertFalse(PackedRing.needsEvent(event, 9, 4, size)); // [4, 9)
        assertFalse(PackedRing.needsEvent(event, 4, 4, size)); // nothing moved
        // Same offset on the other lap: position 13.
        int other = PackedRing.eventOffWrap(3, false);
        assertFalse(PackedRing.needsEvent(other, 4, 3, size));
        assertTrue(PackedRing.needsEvent(other, 14, 12, size));
        // Ranges that cross lap position 2 * size back to 0.
        int late = PackedRing.eventOffWrap(9, false); // 19
        assertTrue(PackedRing.needsEvent(late, 2, 18, size));  // [18, 20 = 0, 2) covers 19
        int early = PackedRing.eventOffWrap(1, true); // 1
        assertTrue(PackedRing.needsEvent(early, 2, 18, size)); // covers 1
        assertFalse(PackedRing.needsEvent(PackedRing.eventOffWrap(2, true), 2, 18, size));
        // The largest queue: lap positions use all 16 bits.
        int big = 32768;
        assertTrue(PackedRing.needsEvent(PackedRing.eventOffWrap(32767, false), 1, 65534, big));
        assertTrue(PackedRing.needsEvent(PackedRing.eventOffWrap(0, true), 1, 65534, big));
        assertFalse(PackedRing.needsEvent(PackedRing.eventOffWrap(1, true), 1, 65534, big));
    }

    @Test
    void queueSizes() {
        PackedRing.checkQueueSize(1);
        PackedRing.checkQueueSize(3);
        PackedRing.checkQueueSize(32768);
        assertThrows(IllegalArgumentException.class, () -> PackedRing.checkQueueSize(0));
        assertThrows(IllegalArgumentException.class, () -> PackedRing.checkQueueSize(32769));
    }
}

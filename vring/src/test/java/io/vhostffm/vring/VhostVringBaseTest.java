package io.vhostffm.vring;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The vhost vring base, all three forms: round trips, boundaries, and what each refuses. */
class VhostVringBaseTest {
    private static final int[] SPLIT_INDICES = {0, 1, 0x7fff, 0x8000, 0xfffe, 0xffff};
    private static final int[] PACKED_INDICES = {0, 1, 0x4000, 0x7ffe, 0x7fff};
    private static final boolean[] WRAPS = {false, true};

    @Test
    void vringBaseEncodesBothFormatsBothWays() {
        assertEquals(0xfffe, VhostVringBase.encodeSplit(0xfffe));
        assertEquals(0xfffe, VhostVringBase.decodeSplit(0xfffe));
        assertThrows(IllegalArgumentException.class, () -> VhostVringBase.decodeSplit(0x1_0000));
        assertThrows(IllegalArgumentException.class, () -> VhostVringBase.encodeSplit(0x1_0000));

        int packed = VhostVringBase.encodeKernelPacked(0x1234, true, 0x7fff, true);
        assertEquals(0x1234 | 0x8000 | 0x7fff << 16 | 0x8000_0000, packed);
        assertEquals(QueuePosition.packed(0x1234, true, 0x7fff, true, 0), VhostVringBase.decodeKernelPacked(packed, 0));
        assertEquals(0x0005_0003, VhostVringBase.encodeKernelPacked(3, false, 5, false));
        assertEquals(QueuePosition.packed(3, false, 5, false, 2), VhostVringBase.decodeKernelPacked(0x0005_0003, 2));
        assertThrows(IllegalArgumentException.class, () -> VhostVringBase.encodeKernelPacked(0x8000, false, 0, false));
        for (int num : new int[] {0, 1, 0x8000, 0x7fff_ffff, 0x8000_0000, -1, 0x1234_5678}) {
            assertEquals(num, VhostVringBase.encodeKernel(VhostVringBase.decodeKernelPacked(num, 0)));
        }
        QueuePosition position = QueuePosition.packed(17, false, 9, true, 8);
        assertEquals(17 | 9 << 16 | 1 << 31, VhostVringBase.encodeKernel(position));
        assertEquals(17, VhostVringBase.encodeVhostUser(position));
    }

    @Test
    void splitRoundTripsAtTheBoundaries() {
        for (int idx : SPLIT_INDICES) {
            int num = VhostVringBase.encodeSplit(idx);
            assertEquals(idx, num, "the split form is the index itself");
            assertEquals(idx, VhostVringBase.decodeSplit(num));
            QueuePosition p = QueuePosition.split(idx, idx, 0);
            assertEquals(idx, VhostVringBase.encodeKernel(p));
            assertEquals(idx, VhostVringBase.encodeVhostUser(p), "kernel and vhost-user agree on split");
        }
    }

    @Test
    void splitRefusesOutOfRangeNamingTheField() {
        for (int bad : new int[] {-1, 0x1_0000, Integer.MIN_VALUE, Integer.MAX_VALUE}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> VhostVringBase.encodeSplit(bad));
            assertTrue(e.getMessage().contains("last_avail_idx"), e.getMessage());
        }
        for (int bad : new int[] {0x1_0000, 0x8000_0000, -1, 0xffff_ffff}) {
            assertThrows(IllegalArgumentException.class, () -> VhostVringBase.decodeSplit(bad));
        }
        assertThrows(IllegalArgumentException.class, () -> VhostVringBase.encodeKernel(QueuePosition.split(0x1_0000, 0, 0)));
    }

    @Test
    void kernelPackedRoundTripsEveryWrapCombinationAtTheBoundaries() {
        for (int last : PACKED_INDICES) {
            for (int used : PACKED_INDICES) {
                for (boolean availWrap : WRAPS) {
                    for (boolean usedWrap : WRAPS) {
                        int num = VhostVringBase.encodeKernelPacked(last, availWrap, used, usedWrap);
                        String what = last + "/" + availWrap + " " + used + "/" + usedWrap;
                        assertEquals(last, num & 0x7fff, what);
                        assertEquals(availWrap, (num & 0x8000) != 0, what);
                        assertEquals(used, (num >>> 16) & 0x7fff, what);
                        assertEquals(usedWrap, num < 0, what);
                        QueuePosition p = QueuePosition.packed(last, availWrap, used, usedWrap, 7);
                        assertEquals(p, VhostVringBase.decodeKernelPacked(num, 7), what);
                        assertEquals(num, VhostVringBase.encodeKernel(p), what);
                    }
                }
            }
        }
        assertEquals(0xffff_ffff, VhostVringBase.encodeKernelPacked(0x7fff, true, 0x7fff, true));
        assertEquals(0, VhostVringBase.encodeKernelPacked(0, false, 0, false));
    }

    @Test
    void kernelPackedRefusesOutOfRangeNamingTheField() {
        for (int bad : new int[] {-1, 0x8000, 0xffff, 0x1_0000, Integer.MIN_VALUE}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> VhostVringBase.encodeKernelPacked(bad, false, 0, false));
            assertTrue(e.getMessage().contains("last_avail_idx"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> VhostVringBase.encodeKernelPacked(0, true, bad, true));
            assertTrue(e.getMessage().contains("used_idx"), e.getMessage());
        }
    }

    @Test
    void vhostUserPackedRoundTripsBothWrapsAtTheBoundaries() {
        for (int last : PACKED_INDICES) {
            for (boolean wrap : WRAPS) {
                int num = VhostVringBase.encodeVhostUserPacked(last, wrap);
                assertEquals(last | (wrap ? 1 << 15 : 0), num, "(wrap << 15) | last_avail_idx");
                QueuePosition decoded = VhostVringBase.decodeVhostUserPacked(num);
                assertEquals(QueuePosition.packed(last, wrap, last, wrap, 0), decoded,
                        "the used position is the last avail one, nothing in use");
                assertEquals(num, VhostVringBase.encodeVhostUser(decoded));
                // The used position and inuse do not travel in this form.
                assertEquals(num, VhostVringBase.encodeVhostUser(QueuePosition.packed(last, wrap, 3, !wrap, 2)));
            }
        }
        assertEquals(0xffff, VhostVringBase.encodeVhostUserPacked(0x7fff, true));
    }

    @Test
    void vhostUserPackedRefusesOutOfRange() {
        for (int bad : new int[] {-1, 0x8000, 0xffff, 0x1_0000}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> VhostVringBase.encodeVhostUserPacked(bad, true));
            assertTrue(e.getMessage().contains("last_avail_idx"), e.getMessage());
        }
        for (int bad : new int[] {0x1_0000, 0x8000_0000, -1, 0x0001_8000}) {
            assertThrows(IllegalArgumentException.class, () -> VhostVringBase.decodeVhostUserPacked(bad));
        }
    }
}

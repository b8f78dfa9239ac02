package io.vhostffm.vring;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** {@link QueuePosition}'s checks: every field's range, named in the error with the queue. */
class QueuePositionTest {
    private static final int QUEUE = 11;

    private static void refused(String field, Runnable check) {
        VirtqueueException e = assertThrows(VirtqueueException.class, check::run);
        assertEquals(VirtqueueException.Rule.INVALID_STATE, e.rule());
        assertEquals(field, e.field(), e.getMessage());
        assertEquals(QUEUE, e.queueIndex());
        assertTrue(e.getMessage().startsWith("virtqueue " + QUEUE + ": invalid queue state: " + field), e.getMessage());
    }

    @Test
    void initialPositionsStartWhereTheSpecSays() {
        assertEquals(QueuePosition.split(0, 0, 0), QueuePosition.initial(false));
        assertEquals(QueuePosition.packed(0, true, 0, true, 0), QueuePosition.initial(true));
    }

    @Test
    void splitFormatChecksEveryField() {
        for (int ok : new int[] {0, 0x7fff, 0xffff}) {
            QueuePosition.split(ok, ok, 0).check(QUEUE);
        }
        QueuePosition.split(0, 0, QueuePosition.MAX_INUSE).check(QUEUE);
        refused("lastAvailIdx", () -> QueuePosition.split(0x1_0000, 0, 0).check(QUEUE));
        refused("lastAvailIdx", () -> QueuePosition.split(-1, 0, 0).check(QUEUE));
        refused("usedIdx", () -> QueuePosition.split(0, 0x1_0000, 0).check(QUEUE));
        refused("usedIdx", () -> QueuePosition.split(0, -1, 0).check(QUEUE));
        refused("inuse", () -> QueuePosition.split(0, 0, -1).check(QUEUE));
        refused("inuse", () -> QueuePosition.split(0, 0, QueuePosition.MAX_INUSE + 1).check(QUEUE));
        refused("lastAvailWrapCounter", () -> new QueuePosition(false, 0, true, 0, false, 0).check(QUEUE));
        refused("usedWrapCounter", () -> new QueuePosition(false, 0, false, 0, true, 0).check(QUEUE));
    }

    @Test
    void packedFormatChecksEveryField() {
        for (int ok : new int[] {0, 0x7fff}) {
            for (boolean wrap : new boolean[] {false, true}) {
                QueuePosition.packed(ok, wrap, ok, !wrap, 0).check(QUEUE);
            }
        }
        refused("lastAvailIdx", () -> QueuePosition.packed(0x8000, true, 0, true, 0).check(QUEUE));
        refused("lastAvailIdx", () -> QueuePosition.packed(-1, true, 0, true, 0).check(QUEUE));
        refused("usedIdx", () -> QueuePosition.packed(0, true, 0xffff, true, 0).check(QUEUE));
        refused("usedIdx", () -> QueuePosition.packed(0, true, -1, true, 0).check(QUEUE));
        refused("inuse", () -> QueuePosition.packed(0, true, 0, true, -1).check(QUEUE));
        refused("inuse", () -> QueuePosition.packed(0, true, 0, true, 32769).check(QUEUE));
    }

    @Test
    void splitAgainstAQueueSizeChecksEveryField() {
        int size = 256;
        QueuePosition.split(0xffff, 0xffff - size, size).check(QUEUE, size);
        QueuePosition.split(5, 0xfffb, 10).check(QUEUE, size); // used 10 behind, across 65535
        refused("lastAvailIdx", () -> QueuePosition.split(0x1_0000, 0, 0).check(QUEUE, size));
        refused("lastAvailIdx", () -> QueuePosition.split(-1, 0, 0).check(QUEUE, size));
        refused("usedIdx", () -> QueuePosition.split(0, 0x1_0000, 0).check(QUEUE, size));
        refused("usedIdx", () -> QueuePosition.split(0, -1, 0).check(QUEUE, size));
        refused("inuse", () -> QueuePosition.split(0, 0, size + 1).check(QUEUE, size));
        refused("inuse", () -> QueuePosition.split(0, 0, -1).check(QUEUE, size));
        refused("usedIdx", () -> QueuePosition.split(size + 1, 0, 0).check(QUEUE, size));
        refused("lastAvailWrapCounter", () -> new QueuePosition(false, 0, true, 0, false, 0).check(QUEUE, size));
        refused("usedWrapCounter", () -> new QueuePosition(false, 0, false, 0, true, 0).check(QUEUE, size));
    }

    @Test
    void packedAgainstAQueueSizeChecksEveryField() {
        int size = 16;
        QueuePosition.packed(15, false, 15, true, 16).check(QUEUE, size);
        QueuePosition.packed(0, true, 0, false, 0).check(QUEUE, size);
        refused("lastAvailIdx", () -> QueuePosition.packed(16, true, 0, true, 0).check(QUEUE, size));
        refused("lastAvailIdx", () -> QueuePosition.packed(-1, true, 0, true, 0).check(QUEUE, size));
        refused("usedIdx", () -> QueuePosition.packed(0, true, 16, true, 0).check(QUEUE, size));
        refused("usedIdx", () -> QueuePosition.packed(0, true, -1, true, 0).check(QUEUE, size));
        refused("inuse", () -> QueuePosition.packed(0, true, 0, true, 17).check(QUEUE, size));
        refused("inuse", () -> QueuePosition.packed(0, true, 0, true, -1).check(QUEUE, size));
        // The largest packed queue: positions up to 0x7fff.
        QueuePosition.packed(0x7fff, true, 0x7fff, true, 0).check(QUEUE, PackedRing.MAX_QUEUE_SIZE);
    }

    @Test
    void messagesNameTheFormat() {
        assertTrue(QueuePosition.packed(3, true, 2, false, 1).toString().contains("wrap 1"));
        assertFalse(QueuePosition.split(3, 2, 1).toString().contains("wrap"));
    }
}

package io.vhostffm.migration;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.migration.schema.StateDecodeException;
import io.vhostffm.migration.schema.StateSchema;
import io.vhostffm.vring.QueuePosition;
import io.vhostffm.vring.VhostVringBase;
import io.vhostffm.vring.VirtqueueException;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The QUEUE_INDICES section's payload: vring's queue positions by virtqueue, checked when decoded. */
class FinalPositionsTest {

    private static FinalPositions.Entry split(int queue, int last, int used, int inuse) {
        return new FinalPositions.Entry(queue, QueuePosition.split(last, used, inuse));
    }

    private static FinalPositions.Entry packed(int queue, int last, boolean availWrap, int used, boolean usedWrap,
            int inuse) {
        return new FinalPositions.Entry(queue, QueuePosition.packed(last, availWrap, used, usedWrap, inuse));
    }

    @Test
    void splitVringBaseIsLastAvailIdx() {
        assertEquals(0xfffe, VhostVringBase.encodeKernel(split(0, 0xfffe, 0xfff0, 14).position()));
    }

    @Test
    void packedVringBasePacksIndicesAndWrapCounters() {
        // bits 0-14 last avail idx, 15 avail wrap, 16-30 used idx, 31 used wrap
        FinalPositions.Entry q = packed(3, 0x1234, true, 0x0567, true, 2);
        assertEquals(0x1234 | 1 << 15 | 0x0567 << 16 | 1 << 31, VhostVringBase.encodeKernel(q.position()));
        assertEquals(0x7fff, VhostVringBase.encodeKernel(packed(0, 0x7fff, false, 0, false, 0).position()));
        assertEquals(0x7fff0000, VhostVringBase.encodeKernel(packed(0, 0, false, 0x7fff, false, 0).position()));
    }

    @Test
    void boundsAreCheckedNamingQueueAndField() {
        String[][] cases = {{"lastAvailIdx", "split 0x10000 0 0"}, {"usedIdx", "split 0 -1 0"},
                {"inuse", "split 0 0 32769"}, {"lastAvailIdx", "packed 0x8000 0 0"}, {"usedIdx", "packed 0 0x8000 0"},
                {"lastAvailWrapCounter", "split-wrap"}};
        for (String[] c : cases) {
            VirtqueueException e = assertThrows(VirtqueueException.class, () -> {
                switch (c[1]) {
                    case "split 0x10000 0 0" -> split(4, 0x10000, 0, 0);
                    case "split 0 -1 0" -> split(4, 0, -1, 0);
                    case "split 0 0 32769" -> split(4, 0, 0, 32769);
                    case "packed 0x8000 0 0" -> packed(4, 0x8000, false, 0, false, 0);
                    case "packed 0 0x8000 0" -> packed(4, 0, false, 0x8000, false, 0);
                    default -> new FinalPositions.Entry(4, new QueuePosition(false, 0, true, 0, false, 0));
                }
            }, c[1]);
            assertEquals(c[0], e.field(), c[1]);
            assertEquals(4, e.queueIndex(), c[1]);
        }
        assertThrows(IllegalArgumentException.class, () -> split(0x10000, 0, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> new FinalPositions.Entry(0, null));
        assertThrows(IllegalArgumentException.class, () -> new FinalPositions(List.of(
                split(1, 0, 0, 0), split(1, 2, 2, 0))));
        FinalPositions ok = new FinalPositions(List.of(split(1, 0, 0, 0), packed(3, 5, true, 5, true, 0)));
        assertEquals(QueuePosition.packed(5, true, 5, true, 0), ok.of(3));
        assertNull(ok.of(2));
    }

    @Test
    void outOfRangeIndicesFromTheWireAreADecodeErrorNamingTheQueue() {
        StateSchema<FinalPositions> schema = StateSchema.of(FinalPositions.class);
        byte[] bytes = schema.encode(new FinalPositions(List.of(split(0, 1, 1, 0), packed(1, 5, true, 6, false, 0))));
        // The wire format of the section before positions were vring's: the same 19 bytes per queue.
        assertEquals(4 + 2 * 19, bytes.length);
        // second queue's lastAvailIdx: count(4) + queue 0 (19 bytes) + queue(4) + packed(1)
        int at = 4 + 19 + 4 + 1;
        bytes[at + 2] = (byte) 0x80; // 0x8000 + 5: beyond 15 bits
        StateDecodeException e = assertThrows(StateDecodeException.class, () -> schema.decode(bytes));
        assertEquals("queues[1]", e.fieldPath());
        assertTrue(e.getMessage().contains("virtqueue 1: invalid queue state: lastAvailIdx = 32773"), e.getMessage());
    }
}

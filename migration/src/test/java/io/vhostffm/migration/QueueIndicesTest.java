package io.vhostffm.migration;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.migration.schema.StateDecodeException;
import io.vhostffm.migration.schema.StateSchema;
import java.util.List;
import org.junit.jupiter.api.Test;

class QueueIndicesTest {

    @Test
    void splitVringBaseIsLastAvailIdx() {
        assertEquals(0xfffe, QueueIndices.split(0, 0xfffe, 0xfff0, 14).vringBase());
    }

    @Test
    void packedVringBasePacksIndicesAndWrapCounters() {
        // bits 0-14 last avail idx, 15 avail wrap, 16-30 used idx, 31 used wrap
        QueueIndices q = QueueIndices.packed(3, 0x1234, true, 0x0567, true, 2);
        assertEquals(0x1234 | 1 << 15 | 0x0567 << 16 | 1 << 31, q.vringBase());
        assertEquals(0x7fff, QueueIndices.packed(0, 0x7fff, false, 0, false, 0).vringBase());
        assertEquals(0x7fff0000, QueueIndices.packed(0, 0, false, 0x7fff, false, 0).vringBase());
    }

    @Test
    void boundsAreChecked() {
        assertThrows(IllegalArgumentException.class, () -> QueueIndices.split(0, 0x10000, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> QueueIndices.split(0, 0, -1, 0));
        assertThrows(IllegalArgumentException.class, () -> QueueIndices.split(0x10000, 0, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> QueueIndices.split(0, 0, 0, 32769));
        assertThrows(IllegalArgumentException.class, () -> QueueIndices.packed(0, 0x8000, false, 0, false, 0));
        assertThrows(IllegalArgumentException.class, () -> QueueIndices.packed(0, 0, false, 0x8000, false, 0));
        assertThrows(IllegalArgumentException.class, () -> new QueueIndices(0, false, 0, true, 0, false, 0));
        assertThrows(IllegalArgumentException.class, () -> new FinalIndices(List.of(
                QueueIndices.split(1, 0, 0, 0), QueueIndices.split(1, 2, 2, 0))));
    }

    @Test
    void outOfRangeIndicesFromTheWireAreADecodeErrorNamingTheQueue() {
        StateSchema<FinalIndices> schema = StateSchema.of(FinalIndices.class);
        byte[] bytes = schema.encode(new FinalIndices(List.of(QueueIndices.split(0, 1, 1, 0),
                QueueIndices.packed(1, 5, true, 6, false, 0))));
        // second queue's lastAvailIdx: count(4) + queue 0 (19 bytes) + queue(4) + packed(1)
        int at = 4 + 19 + 4 + 1;
        bytes[at + 2] = (byte) 0x80; // 0x8000 + 5: beyond 15 bits
        StateDecodeException e = assertThrows(StateDecodeException.class, () -> schema.decode(bytes));
        assertEquals("queues[1]", e.fieldPath());
        assertTrue(e.getMessage().contains("queue 1: lastAvailIdx 32773 out of 0..32767"), e.getMessage());
    }
}

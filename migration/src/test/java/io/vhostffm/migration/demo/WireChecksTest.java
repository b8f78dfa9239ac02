package io.vhostffm.migration.demo;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.util.List;
import org.junit.jupiter.api.Test;

/** The traffic checks the migration tests and the demo judge a migration by. */
class WireChecksTest {

    @Test
    void aStreamInOrderIsAccepted() {
        assertNull(Wire.checkExactlyOnceInOrder("s", List.of(0L, 1L, 2L), 3));
        assertNull(Wire.checkExactlyOnceInOrderPerQueue("s", List.of(0L, 1L, 2L), List.of(0, 0, 0), 3));
    }

    @Test
    void aStreamSpreadOverTwoQueuesMayInterleaveButNotReorderWithinOne() {
        // frames 2 and 3 went to queue 1 and arrived before 1, which queue 0 delivered later
        assertNull(Wire.checkExactlyOnceInOrderPerQueue("s", List.of(0L, 2L, 3L, 1L, 4L), List.of(0, 1, 1, 0, 0), 5));
        assertEquals("s: frame 2 (number 2) came after number 3 on rx queue of pair 1 (out of order or duplicated within a queue)",
                Wire.checkExactlyOnceInOrderPerQueue("s", List.of(0L, 3L, 2L, 1L), List.of(0, 1, 1, 0), 4));
        // the strict check does not accept the interleaving
        assertEquals("s: frame 1 is number 2 (out of order, lost or duplicated)",
                Wire.checkExactlyOnceInOrder("s", List.of(0L, 2L, 1L), 3));
    }

    @Test
    void lossAndDuplicationAreFoundWhateverTheQueues() {
        assertEquals("s: 3 frames for 4 sent (1 missing, 0 duplicated)",
                Wire.checkExactlyOnceInOrderPerQueue("s", List.of(0L, 2L, 3L), List.of(0, 1, 0), 4));
        assertEquals("s: 4 frames for 4 sent (1 missing, 1 duplicated)",
                Wire.checkExactlyOnceInOrderPerQueue("s", List.of(0L, 1L, 1L, 3L), List.of(0, 0, 1, 0), 4));
        assertEquals("s: 2 frames but 1 rx queues recorded",
                Wire.checkExactlyOnceInOrderPerQueue("s", List.of(0L, 1L), List.of(0), 2));
    }
}

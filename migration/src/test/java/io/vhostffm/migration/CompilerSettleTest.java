package io.vhostffm.migration;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import org.junit.jupiter.api.Test;

class CompilerSettleTest {

    @Test
    void aZeroDeadlineTurnsTheWaitOff() {
        assertEquals(-1, CompilerSettle.await(Duration.ZERO));
    }

    @Test
    void settledMeansSeveralUnchangedReadingsInARow() {
        long waited = CompilerSettle.await(Duration.ofSeconds(30));
        long atLeast = CompilerSettle.QUIET * CompilerSettle.STEP.toMillis();
        assertTrue(waited >= atLeast, () -> "returned after " + waited + " ms, before " + CompilerSettle.QUIET
                + " readings " + CompilerSettle.STEP.toMillis() + " ms apart could have been taken");
    }
}

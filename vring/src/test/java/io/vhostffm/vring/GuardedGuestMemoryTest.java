package io.vhostffm.vring;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

/**
 * The fuzz targets' guarded memory, reused across inputs, still catches what it must: a byte
 * written into any guard (before, between, after the regions), and any byte of guest memory
 * changed since {@link GuardedGuestMemory#save}; a reset paints the guards again.
 */
class GuardedGuestMemoryTest {
    @Test
    void everyGuardByteWrittenIsCaughtAndAResetPaintsThemAgain() {
        try (GuardedGuestMemory guest = new GuardedGuestMemory()) {
            MemorySegment low = guest.memory.region(0).segment();
            MemorySegment high = guest.memory.region(1).segment();
            MemorySegment host = MemorySegment.ofAddress(low.address() - GuardedGuestMemory.GUARD)
                    .reinterpret(3 * GuardedGuestMemory.GUARD + GuardedGuestMemory.LOW_SIZE + GuardedGuestMemory.HIGH_SIZE);
            long[] guardBytes = {0, GuardedGuestMemory.GUARD - 1, // before region 0
                GuardedGuestMemory.GUARD + GuardedGuestMemory.LOW_SIZE, // first byte between
                high.address() - host.address() - 1, // last byte between
                high.address() - host.address() + GuardedGuestMemory.HIGH_SIZE, // first after
                host.byteSize() - 1};
            for (long at : guardBytes) {
                guest.reset(new byte[0], new byte[0]);
                guest.checkGuards();
                host.set(ValueLayout.JAVA_BYTE, at, (byte) 0);
                AssertionError e = assertThrows(AssertionError.class, guest::checkGuards, "guard byte " + at);
                assertTrue(e.getMessage().contains("host offset " + at), e.getMessage());
            }
            guest.reset(new byte[0], new byte[0]);
            guest.checkGuards();
        }
    }

    @Test
    void anyGuestByteChangedSinceTheSaveIsNamed() {
        try (GuardedGuestMemory guest = new GuardedGuestMemory()) {
            guest.reset(new byte[] {1, 2, 3}, new byte[] {4, 5});
            guest.save();
            assertEquals(-1, guest.changedSinceSave());
            long[] addresses = {GuardedGuestMemory.LOW, GuardedGuestMemory.LOW + GuardedGuestMemory.LOW_SIZE - 1,
                GuardedGuestMemory.HIGH, GuardedGuestMemory.HIGH + GuardedGuestMemory.HIGH_SIZE - 1};
            for (long address : addresses) {
                guest.save();
                MemorySegment byteAt = guest.memory.slice(address, 1);
                byteAt.set(ValueLayout.JAVA_BYTE, 0, (byte) (byteAt.get(ValueLayout.JAVA_BYTE, 0) + 1));
                assertEquals(address, guest.changedSinceSave());
            }
        }
    }
}

package io.vhostffm.vring;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The usage example of docs/vring.md, run as written (so the documentation cannot rot). */
class SplitUsageExampleTest {

    @Test
    void documentedExampleWorks() {
        try (Arena arena = Arena.ofConfined()) {
            GuestMemory memory = GuestMemory.of(List.of(
                    new GuestRegion(0, arena.allocate(1 << 20, 4096)),             // rings
                    new GuestRegion(0x100_0000, arena.allocate(1 << 20, 4096))));  // buffers
            memory.slice(0x100_0000, 8).set(ValueLayout.JAVA_LONG_UNALIGNED, 0, 41);

            SplitDriverQueue guest = new SplitDriverQueue(0, memory, 256, 0x1000, 0x2000, 0x3000, true, 0);
            int head = guest.add(new long[] {0x100_0000, 0x100_1000}, new int[] {512, 4096}, 1, 1);
            assertTrue(guest.needsKick());

            SplitDeviceQueue device = new SplitDeviceQueue(0, memory, guest.initialDeviceState(), RestoreMode.CLASSIC);
            DescriptorChain chain = device.newChain();
            int served = 0;
            while (device.take(chain)) {
                MemorySegment request = chain.regionSegment(0);
                long at = chain.regionOffset(0);
                long question = request.get(ValueLayout.JAVA_LONG_UNALIGNED, at);
                chain.regionSegment(1).set(ValueLayout.JAVA_LONG_UNALIGNED, chain.regionOffset(1), question + 1);
                device.publishUsed(chain, 8);
                served++;
            }
            assertEquals(1, served);
            assertTrue(device.needsNotification());

            int[] ids = new int[256];
            int[] lens = new int[256];
            assertEquals(1, guest.collectUsed(ids, lens, 256));
            assertEquals(head, ids[0]);
            assertEquals(8, lens[0]);
            assertEquals(42, memory.slice(0x100_1000, 8).get(ValueLayout.JAVA_LONG_UNALIGNED, 0));
            assertFalse(device.take(chain));
        }
    }
}

package io.vhostffm.vring;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The packed usage example of docs/vring.md, run as written there. */
class PackedUsageExampleTest {

    @Test
    void usageExampleRuns() {
        try (Arena arena = Arena.ofConfined()) {
            GuestMemory memory = GuestMemory.of(List.of(new GuestRegion(0, arena.allocate(16 << 20, 4096))));
            QueueState state = QueueState.fresh(QueueGeometry.packed(256, 0x1000, 0x800, 0x900, /* eventIdx */ true));
            PackedDriverQueue guest = new PackedDriverQueue(0, memory, state);          // formats the ring
            PackedDeviceQueue queue = new PackedDeviceQueue(0, memory, state, RestoreMode.CLASSIC);

            memory.slice(0x10000, 8).set(ValueLayout.JAVA_LONG_UNALIGNED, 0, 42);
            int id = guest.add(new long[] {0x10000, 0x20000}, new int[] {64, 1500}, 1, 1);  // 1 readable, 1 writable
            assertTrue(guest.needsKick());

            DescriptorChain chain = queue.newChain();                  // once; reused by every take
            int served = 0;
            while (queue.take(chain)) {
                MemorySegment in = chain.regionSegment(0);             // guest memory in place, no copy
                long at = chain.regionOffset(0);
                int written = serve(in, at, chain);
                queue.publishUsed(chain, written);                     // or collect ids and publishUsedBatch
                served++;
            }
            assertEquals(1, served);
            assertTrue(queue.needsNotification());

            int[] ids = new int[1];
            int[] lengths = new int[1];
            assertEquals(1, guest.collectUsed(ids, lengths, 1));
            assertEquals(id, ids[0]);
            assertEquals(8, lengths[0]);
            assertEquals(43, memory.slice(0x20000, 8).get(ValueLayout.JAVA_LONG_UNALIGNED, 0));
        }
    }

    /** Reads the request's first 8 bytes and answers with that number plus one. */
    private static int serve(MemorySegment in, long at, DescriptorChain chain) {
        long request = in.get(ValueLayout.JAVA_LONG_UNALIGNED, at);
        chain.regionSegment(1).set(ValueLayout.JAVA_LONG_UNALIGNED, chain.regionOffset(1), request + 1);
        return 8;
    }
}

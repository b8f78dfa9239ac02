package io.vhostffm.vhost;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.util.stream.LongStream;
import org.junit.jupiter.api.Test;

class DirtyLogTest {

    @Test
    void marksEveryPageARangeTouchesAndNoOther() {
        try (Arena arena = Arena.ofConfined()) {
            DirtyLog log = DirtyLog.allocate(arena, 1L << 30);
            assertEquals((1L << 30) / 4096, log.pages());
            log.mark(0x1000, 1);                       // page 1
            log.mark(63 * 4096L + 4095, 2);            // pages 63 and 64: across a word boundary
            log.mark(100 * 4096L, 4096);               // exactly page 100
            log.mark(200 * 4096L + 1, 3 * 4096L);      // pages 200..203
            log.mark(300 * 4096L, 0);                  // nothing
            log.mark(1000 * 4096L, 200 * 4096L);       // pages 1000..1199: whole words in the middle
            assertTrue(log.isDirty(64));
            assertFalse(log.isDirty(65));
            long[] expected = LongStream.concat(LongStream.of(1, 63, 64, 100, 200, 201, 202, 203),
                    LongStream.range(1000, 1200)).toArray();
            assertArrayEquals(expected, log.fetchAndClear());
            assertArrayEquals(new long[0], log.fetchAndClear(), "fetching clears");
        }
    }

    @Test
    void usesVhostsBitLayout() {
        try (Arena arena = Arena.ofConfined()) {
            DirtyLog log = DirtyLog.allocate(arena, 64 * 4096L * 2);
            log.mark(9 * 4096L, 1); // page 9: byte 1, bit 1, as the kernel's set_bit_to_user sets it
            assertEquals(0x2, log.bitmap().get(ValueLayout.JAVA_BYTE, 1));
            log.mark(70 * 4096L, 1); // page 70: byte 8, bit 6
            assertEquals(0x40, log.bitmap().get(ValueLayout.JAVA_BYTE, 8));
        }
    }

    @Test
    void refusesRangesBeyondTheLog() {
        try (Arena arena = Arena.ofConfined()) {
            DirtyLog log = DirtyLog.allocate(arena, 64 * 4096L);
            IndexOutOfBoundsException e = assertThrows(IndexOutOfBoundsException.class,
                    () -> log.mark(63 * 4096L, 4097));
            assertEquals("dirty log of 64 pages: cannot mark 0x3f000 + 4097", e.getMessage());
            assertThrows(IndexOutOfBoundsException.class, () -> log.mark(-4096, 10));
            assertThrows(IllegalArgumentException.class, () -> DirtyLog.over(arena.allocate(12, 8)));
            assertThrows(IllegalArgumentException.class, () -> DirtyLog.over(java.lang.foreign.MemorySegment.ofArray(new long[4])));
        }
    }

    @Test
    void concurrentMarksAreNeverLost() throws Exception {
        try (Arena arena = Arena.ofShared()) {
            DirtyLog log = DirtyLog.allocate(arena, 64 * 4096L * 16);
            int pages = (int) log.pages();
            // Two threads set interleaved bits of the same words while a third fetches and clears.
            java.util.concurrent.ConcurrentHashMap<Long, Boolean> fetched = new java.util.concurrent.ConcurrentHashMap<>();
            Thread even = Thread.ofPlatform().start(() -> {
                for (int p = 0; p < pages; p += 2) {
                    log.mark(p * 4096L, 1);
                }
            });
            Thread odd = Thread.ofPlatform().start(() -> {
                for (int p = 1; p < pages; p += 2) {
                    log.mark(p * 4096L, 1);
                }
            });
            while (even.isAlive() || odd.isAlive()) {
                for (long p : log.fetchAndClear()) {
                    fetched.put(p, true);
                }
            }
            even.join();
            odd.join();
            for (long p : log.fetchAndClear()) {
                fetched.put(p, true);
            }
            assertEquals(pages, fetched.size());
        }
    }
}

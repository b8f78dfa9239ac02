package io.vhostffm.vhost.device;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.MemfdGuestMemory.RegionSpec;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/** The bitmap: vhost's layout, ranges, bounds, and no bit lost between concurrent markers and a fetcher. */
class DirtyLogTest {

    @Test
    void marksPagesInVhostsLayoutAndFetchClears() throws Exception {
        try (DirtyLog log = DirtyLog.create(0x100_0000)) {  // 16 MiB: 4096 pages, 512 bytes of bitmap
            assertEquals(0x100_0000, log.coveredBytes());
            log.mark(0x1fff, 2);          // pages 1 and 2
            log.mark(0x3f000, 0x2000);    // pages 63, 64 (across a word)
            log.mark(0xfff000, 1);        // the last page
            // vhost's layout: page p is bit p % 8 of byte p / 8 at the log base
            var bytes = java.lang.foreign.MemorySegment.ofAddress(log.userspaceAddress()).reinterpret(512);
            assertEquals(0b110, bytes.get(ValueLayout.JAVA_BYTE, 0));
            assertEquals((byte) 0x80, bytes.get(ValueLayout.JAVA_BYTE, 7));
            assertEquals(1, bytes.get(ValueLayout.JAVA_BYTE, 8));
            assertEquals((byte) 0x80, bytes.get(ValueLayout.JAVA_BYTE, 511));
            assertTrue(log.isDirty(0x2000));
            assertFalse(log.isDirty(0x3000));
            assertArrayEquals(new long[] {0x1000, 0x2000, 0x3f000, 0x40000, 0xfff000}, log.fetchAndClear());
            assertArrayEquals(new long[0], log.fetchAndClear(), "fetching cleared the log");
        }
    }

    @Test
    void aLongRangeSetsWholeWords() throws Exception {
        try (DirtyLog log = DirtyLog.create(1L << 30)) {
            log.mark(0x10_0000 + 5, 300 * 4096);
            long[] pages = log.fetchAndClear();
            assertEquals(301, pages.length);
            for (int i = 0; i < pages.length; i++) {
                assertEquals(0x10_0000 + i * 4096L, pages[i]);
            }
        }
    }

    @Test
    void refusesRangesOutsideTheLog() throws Exception {
        try (DirtyLog log = DirtyLog.create(0x10000)) {
            assertThrows(IndexOutOfBoundsException.class, () -> log.mark(0x10000, 1));
            assertThrows(IndexOutOfBoundsException.class, () -> log.mark(0xffff, 2));
            assertThrows(IndexOutOfBoundsException.class, () -> log.mark(-1, 1));
            IndexOutOfBoundsException e = assertThrows(IndexOutOfBoundsException.class, () -> log.mark(Long.MAX_VALUE, 16));
            assertTrue(e.getMessage().contains("outside the logged guest range"), e.getMessage());
            log.mark(0x3000, 0);  // empty: nothing
            assertArrayEquals(new long[0], log.fetchAndClear());
        }
    }

    @Test
    void coversTheHighestRegionOfGuestMemory() throws Exception {
        try (MemfdGuestMemory memory = MemfdGuestMemory.create("dl", List.of(new RegionSpec(0, 0x10000),
                new RegionSpec(0x4000_0000L, 0x10000))); DirtyLog log = DirtyLog.covering(memory)) {
            assertEquals(0x4001_0000L, log.coveredBytes());
            log.mark(0x4000_f000L, 0x1000);
        }
    }

    @Test
    void concurrentMarksAreNeverLostByAFetcher() throws Exception {
        int pages = 4096;
        try (DirtyLog log = DirtyLog.create(pages * 4096L)) {
            int threads = 2;
            int rounds = 200;
            AtomicLong fetched = new AtomicLong();
            AtomicBoolean done = new AtomicBoolean();
            var seen = ConcurrentHashMap.<Long>newKeySet();
            Thread fetcher = Thread.ofPlatform().start(() -> {
                while (!done.get()) {
                    fetched.addAndGet(log.fetchAndClear(seen::add));
                }
            });
            Thread[] markers = new Thread[threads];
            for (int t = 0; t < threads; t++) {
                int me = t;
                markers[t] = Thread.ofPlatform().start(() -> {
                    for (int r = 0; r < rounds; r++) {
                        // each thread marks its own interleaved pages of the same words
                        for (int p = me; p < pages; p += threads) {
                            log.mark(p * 4096L, 1);
                        }
                    }
                });
            }
            for (Thread m : markers) {
                m.join();
            }
            done.set(true);
            fetcher.join();
            fetched.addAndGet(log.fetchAndClear(seen::add));
            assertEquals(pages, seen.size(), "every page marked was fetched at least once");
        }
    }
}

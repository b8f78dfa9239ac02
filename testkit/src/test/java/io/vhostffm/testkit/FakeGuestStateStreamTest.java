package io.vhostffm.testkit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Random;
import org.junit.jupiter.api.Test;

/** The run-length record of a stream: lossless, and small for traffic in order. */
class FakeGuestStateStreamTest {

    @Test
    void inOrderTrafficOnEachPairIsOneRunPerStretchOnAPair() {
        long[] seqs = new long[100_000];
        int[] on = new int[seqs.length];
        for (int i = 0; i < seqs.length; i++) {
            seqs[i] = i;
            on[i] = i < 60_000 ? 0 : 1; // the stream moved to pair 1 once
        }
        FakeGuestState.Stream s = FakeGuestState.Stream.of(seqs, on);
        assertArrayEquals(new long[] {0, 60_000}, s.runFirst());
        assertArrayEquals(new int[] {60_000, 40_000}, s.runLength());
        assertArrayEquals(new int[] {0, 1}, s.runPair());
        assertEquals(100_000, s.count());
        assertArrayEquals(seqs, s.seqs());
        assertArrayEquals(on, s.arrivedOn());
    }

    @Test
    void duplicatesGapsAndReorderingSurviveTheEncodingAndTheCheckSeesThem() {
        long[] seqs = {0, 1, 2, 2, 3, 5, 4, 6};
        int[] on = {0, 0, 0, 0, 0, 0, 0, 0};
        FakeGuestState.Stream s = FakeGuestState.Stream.of(seqs, on);
        assertArrayEquals(seqs, s.seqs());
        assertArrayEquals(on, s.arrivedOn());
        assertNotNull(StreamCheck.exactlyOnceInOrderPerQueue("dup", s, 7));
        long[] clean = {0, 1, 2, 3, 4, 5, 6};
        assertNull(StreamCheck.exactlyOnceInOrderPerQueue("clean", FakeGuestState.Stream.of(clean, new int[7]), 7));
    }

    @Test
    void randomArrivalsRoundTrip() {
        Random random = new Random(7);
        for (int round = 0; round < 200; round++) {
            int n = random.nextInt(200);
            long[] seqs = new long[n];
            int[] on = new int[n];
            long next = random.nextInt(10);
            for (int i = 0; i < n; i++) {
                next += random.nextInt(10) == 0 ? random.nextInt(5) - 2 : 1;
                seqs[i] = next;
                on[i] = random.nextInt(8) == 0 ? random.nextInt(4) : 0;
            }
            FakeGuestState.Stream back = FakeGuestState.Stream.of(seqs, on);
            assertEquals(n, back.count());
            assertArrayEquals(seqs, back.seqs());
            assertArrayEquals(on, back.arrivedOn());
        }
    }

    @Test
    void mismatchedArraysAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> FakeGuestState.Stream.of(new long[2], new int[1]));
    }

    @Test
    void aStateShapedLikeALayoutHasEveryQueueAndEverySlotFree() {
        GuestLayout layout = GuestLayout.of(4);
        FakeGuestState shaped = FakeGuestState.shapedLike(layout);
        assertEquals(layout.queueCount(), shaped.queues().size());
        for (int q = 0; q < layout.queueCount(); q++) {
            assertEquals(layout.queueSize(q), shaped.queues().get(q).size(), "queue " + q);
            assertEquals(layout.descAddress(q), shaped.queues().get(q).descTableAddress(), "queue " + q);
        }
        int size = layout.spec().queueSize();
        assertEquals(4, shaped.rxSlots().size());
        assertEquals(4, shaped.txSlots().size());
        for (FakeGuestState.Slots slots : shaped.rxSlots()) {
            assertEquals(size, slots.ofId().length);
            assertEquals(-1, java.util.Arrays.stream(slots.ofId()).max().orElseThrow(), "no chain in flight");
            assertEquals(size, slots.free().length, "every slot free");
        }
        assertEquals(4, shaped.received().size());
    }
}

package io.vhostffm.vring;

import static io.vhostffm.vring.PackedFixture.HIGH_BASE;
import static io.vhostffm.vring.PackedFixture.PAYLOAD;
import static io.vhostffm.vring.PackedFixture.TABLES;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayDeque;
import java.util.HashSet;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Driver and device of a packed ring working together. */
class PackedQueueTest {

    @Test
    void singleDescriptorRoundTripIsZeroCopy() {
        PackedFixture f = new PackedFixture(8, false);
        f.at(PAYLOAD, 4).set(ValueLayout.JAVA_INT_UNALIGNED, 0, 0xCAFEBABE);
        int id = f.driver.add(new long[] {PAYLOAD}, new int[] {4}, 1, 0);
        assertTrue(id >= 0);

        DescriptorChain chain = f.device.newChain();
        assertTrue(f.device.take(chain));
        assertEquals(id, chain.headId());
        assertEquals(7, chain.queueIndex());
        assertEquals(1, chain.descriptorCount());
        assertEquals(1, chain.bufferCount());
        assertEquals(1, chain.readableCount());
        assertEquals(PAYLOAD, chain.address(0));
        assertEquals(4, chain.length(0));
        assertEquals(4, chain.readableLength());
        // The buffer is the driver's bytes where they lie: a write through it shows in guest memory.
        MemorySegment buffer = chain.buffer(0);
        assertEquals(0xCAFEBABE, buffer.get(ValueLayout.JAVA_INT_UNALIGNED, 0));
        buffer.set(ValueLayout.JAVA_INT_UNALIGNED, 0, 0x12345678);
        assertEquals(0x12345678, f.at(PAYLOAD, 4).get(ValueLayout.JAVA_INT_UNALIGNED, 0));
        assertEquals(0x12345678, chain.regionSegment(0).get(ValueLayout.JAVA_INT_UNALIGNED, chain.regionOffset(0)));
        assertFalse(f.device.take(chain));

        assertEquals(-1, f.poll());
        f.device.publishUsed(chain, 0);
        assertEquals(id, f.poll());
        assertEquals(0, f.lastLength);
        assertEquals(-1, f.poll());
        assertEquals(8, f.driver.freeDescriptors());
        assertEquals(0, f.device.inuse());
    }

    @Test
    void nextChainTakesIdFromLastDescriptorAndSkipsItsLength() {
        PackedFixture f = new PackedFixture(8, false);
        long[] addrs = {PAYLOAD, PAYLOAD + 0x100, HIGH_BASE + 0x40};
        int[] lens = {16, 32, 64};
        int first = f.driver.add(addrs, lens, 2, 1);
        int second = f.driver.add(new long[] {PAYLOAD + 0x800}, new int[] {8}, 0, 1);
        assertTrue(first != second);

        DescriptorChain chain = f.device.newChain();
        assertTrue(f.device.take(chain));
        assertEquals(first, chain.headId());
        assertEquals(3, chain.descriptorCount());
        assertEquals(3, chain.bufferCount());
        assertEquals(2, chain.readableCount());
        assertEquals(1, chain.writableCount());
        assertEquals(48, chain.readableLength());
        assertEquals(64, chain.writableLength());
        assertFalse(chain.isWritable(1));
        assertTrue(chain.isWritable(2));
        assertEquals(HIGH_BASE + 0x40, chain.address(2));
        assertEquals(1, chain.regionIndex(2));
        assertEquals(0x40, chain.regionOffset(2));

        DescriptorChain other = f.device.newChain();
        assertTrue(f.device.take(other));
        assertEquals(second, other.headId());
        assertEquals(1, other.writableCount());
        assertEquals(4, f.device.lastAvailIdx());

        // Out of order: the second chain completes first and takes the first used slot.
        f.device.publishUsed(other, 8);
        f.device.publishUsed(chain, 64);
        assertEquals(second, f.poll());
        assertEquals(8, f.lastLength);
        assertEquals(first, f.poll());
        assertEquals(64, f.lastLength);
        assertEquals(4, f.driver.nextUsed());
        assertEquals(4, f.device.usedIdx());
    }

    @Test
    void indirectChainReadsTheTableInGuestMemory() {
        PackedFixture f = new PackedFixture(5, false);
        long[] addrs = {PAYLOAD, PAYLOAD + 0x10, PAYLOAD + 0x20, HIGH_BASE, HIGH_BASE + 0x1000};
        int[] lens = {16, 16, 16, 0x1000, 0x800};
        int id = f.driver.addIndirect(TABLES, addrs, lens, 3, 2);

        DescriptorChain chain = f.device.newChain();
        assertTrue(f.device.take(chain));
        assertEquals(id, chain.headId());
        assertEquals(1, chain.descriptorCount());
        assertEquals(5, chain.bufferCount()); // a table may hold as many buffers as the queue size
        assertEquals(3, chain.readableCount());
        assertEquals(0x1800, chain.writableLength());
        for (int i = 0; i < 5; i++) {
            assertEquals(addrs[i], chain.address(i));
            assertEquals(lens[i], chain.length(i));
        }
        f.device.publishUsed(chain, 0x1800);
        assertEquals(id, f.poll());
        assertEquals(0x1800, f.lastLength);
        assertEquals(1, f.driver.nextUsed());
    }

    @Test
    void directAndIndirectChainsMix() {
        PackedFixture f = new PackedFixture(16, true);
        DescriptorChain chain = f.device.newChain();
        for (int round = 0; round < 50; round++) {
            int a = f.driver.add(new long[] {PAYLOAD, PAYLOAD + 64}, new int[] {64, 64}, 1, 1);
            int b = f.driver.addIndirect(TABLES, new long[] {PAYLOAD + 128, PAYLOAD + 192}, new int[] {64, 64}, 1, 1);
            assertTrue(f.device.take(chain));
            assertEquals(a, chain.headId());
            assertEquals(2, chain.descriptorCount());
            f.device.publishUsed(chain, 64);
            assertTrue(f.device.take(chain));
            assertEquals(b, chain.headId());
            assertEquals(1, chain.descriptorCount());
            f.device.publishUsed(chain, 32);
            assertEquals(a, f.poll());
            assertEquals(b, f.poll());
            assertEquals(32, f.lastLength);
        }
    }

    @Test
    void batchBecomesVisibleAllAtOnce() {
        PackedFixture f = new PackedFixture(8, false);
        int[] ids = new int[4];
        for (int i = 0; i < 4; i++) {
            ids[i] = f.driver.add(new long[] {PAYLOAD + 0x100L * i}, new int[] {16}, 0, 1);
        }
        DescriptorChain chain = f.device.newChain();
        int[] batch = new int[4];
        int[] lengths = new int[4];
        for (int i = 0; i < 4; i++) {
            assertTrue(f.device.take(chain));
            batch[3 - i] = chain.headId();
            lengths[3 - i] = 16 + i;
        }
        // An id not in flight anywhere in the batch: nothing of the batch is written.
        int[] bad = {batch[0], batch[1], 7};
        assertThrows(IllegalStateException.class, () -> f.device.publishUsedBatch(bad, lengths, 3));
        assertThrows(IllegalStateException.class,
                () -> f.device.publishUsedBatch(new int[] {batch[0], batch[0]}, lengths, 2));
        assertFalse(PackedRing.isUsed(f.ringFlags(0), true));
        assertFalse(PackedRing.isUsed(f.ringFlags(1), true));

        f.device.publishUsedBatch(batch, lengths, 4);
        for (int i = 0; i < 4; i++) {
            assertTrue(PackedRing.isUsed(f.ringFlags(i), true), "slot " + i);
            assertEquals(ids[3 - i], f.poll());
            assertEquals(19 - i, f.lastLength);
        }
        assertEquals(-1, f.poll());
        assertEquals(0, f.device.inuse());
    }

    @Test
    void fullRingRefusesMoreAndRecovers() {
        PackedFixture f = new PackedFixture(5, false);
        assertTrue(f.driver.add(new long[] {PAYLOAD, PAYLOAD, PAYLOAD}, new int[] {1, 1, 1}, 3, 0) >= 0);
        assertTrue(f.driver.add(new long[] {PAYLOAD, PAYLOAD}, new int[] {1, 1}, 2, 0) >= 0);
        assertEquals(-1, f.driver.add(new long[] {PAYLOAD}, new int[] {1}, 1, 0));
        assertEquals(-1, f.driver.addIndirect(TABLES, new long[] {PAYLOAD}, new int[] {1}, 1, 0));
        DescriptorChain chain = f.device.newChain();
        assertTrue(f.device.take(chain));
        f.device.publishUsed(chain, 0);
        assertTrue(f.poll() >= 0);
        assertEquals(3, f.driver.freeDescriptors());
        // The next chain wraps: 3 descriptors from index 0 on the second lap.
        int id = f.driver.add(new long[] {PAYLOAD, PAYLOAD, PAYLOAD}, new int[] {1, 1, 1}, 3, 0);
        assertTrue(id >= 0);
        assertTrue(f.device.take(chain));
        assertTrue(f.device.take(chain));
        assertEquals(id, chain.headId());
        assertFalse(f.device.lastAvailWrapCounter());
        assertEquals(3, f.device.lastAvailIdx());
    }

    @Test
    void publishingWhatWasNotTakenIsRefused() {
        PackedFixture f = new PackedFixture(4, false);
        assertThrows(IllegalStateException.class, () -> f.device.publishUsed(0, 0));
        assertThrows(IllegalArgumentException.class, () -> f.device.publishUsed(4, 0));
        f.driver.add(new long[] {PAYLOAD}, new int[] {1}, 1, 0);
        DescriptorChain chain = f.device.newChain();
        assertTrue(f.device.take(chain));
        assertThrows(IllegalStateException.class, () -> f.device.publishUsed(chain.headId() ^ 1, 0));
        f.device.publishUsed(chain, 0);
        assertThrows(IllegalStateException.class, () -> f.device.publishUsed(chain, 0));
    }

    /**
     * Starting a few descriptors before the ring end, chains of 1 to 3 descriptors (direct and
     * indirect) cross the end many times; the wrap counters flip every lap, on both sides alike.
     * With size 32768 the lap positions use all 16 bits and wrap at 65536.
     */
    @ParameterizedTest
    @ValueSource(ints = {7, 256, 32768})
    void crossesTheRingEndManyTimes(int size) {
        PackedFixture f = new PackedFixture(size, true, size - 3, true);
        DescriptorChain chain = f.device.newChain();
        int flips = 0;
        boolean lastWrap = true;
        long[] addrs = new long[3];
        int[] lens = new int[3];
        int steps = size * 2 + 5000;
        for (int seq = 0; seq < steps; seq++) {
            int count = 1 + (seq % 3);
            for (int i = 0; i < count; i++) {
                addrs[i] = PAYLOAD + 16L * i;
                lens[i] = 16;
            }
            f.at(PAYLOAD, 4).set(ValueLayout.JAVA_INT_UNALIGNED, 0, seq);
            int id = seq % 5 == 4
                    ? f.driver.addIndirect(TABLES, addrs, lens, 1, count - 1)
                    : f.driver.add(addrs, lens, 1, count - 1);
            assertTrue(id >= 0);
            assertTrue(f.device.take(chain));
            assertEquals(id, chain.headId());
            assertEquals(seq, chain.regionSegment(0).get(ValueLayout.JAVA_INT_UNALIGNED, chain.regionOffset(0)));
            f.device.publishUsed(chain, 16 * (count - 1));
            assertEquals(id, f.poll());
            assertEquals(16 * (count - 1), f.lastLength);
            assertEquals(f.driver.nextAvail(), f.device.lastAvailIdx());
            assertEquals(f.driver.availWrapCounter(), f.device.lastAvailWrapCounter());
            assertEquals(f.driver.nextUsed(), f.device.usedIdx());
            assertEquals(f.driver.usedWrapCounter(), f.device.usedWrapCounter());
            if (f.device.usedWrapCounter() != lastWrap) {
                flips++;
                lastWrap = f.device.usedWrapCounter();
            }
        }
        assertTrue(flips >= 3, "wrap counter flipped " + flips + " times");
    }

    @Test
    void notificationsWithoutEventIdxFollowEnableAndDisable() {
        PackedFixture f = new PackedFixture(8, false);
        DescriptorChain chain = f.device.newChain();
        // Available-buffer notifications, asked for by the device.
        f.driver.add(new long[] {PAYLOAD}, new int[] {8}, 1, 0);
        assertTrue(f.driver.needsKick()); // zeroed device area = ENABLE
        f.device.disableNotifications();
        f.driver.add(new long[] {PAYLOAD}, new int[] {8}, 1, 0);
        assertFalse(f.driver.needsKick());
        assertTrue(f.device.enableNotifications()); // chains are waiting: the device must take them
        assertTrue(f.driver.needsKick());
        assertTrue(f.device.take(chain));
        int first = chain.headId();
        assertTrue(f.device.take(chain));
        int second = chain.headId();
        assertFalse(f.device.enableNotifications());

        // Used-buffer notifications, asked for by the driver.
        f.device.publishUsed(first, 0);
        assertTrue(f.device.needsNotification());
        f.driver.disableUsedNotifications();
        f.device.publishUsed(second, 0);
        assertFalse(f.device.needsNotification());
        assertTrue(f.driver.enableUsedNotifications()); // used entries wait: collect them
        assertEquals(first, f.poll());
        assertEquals(second, f.poll());
        assertFalse(f.driver.enableUsedNotifications());
    }

    @Test
    void eventIdxKicksOnlyWhenTheDevicesOffsetIsPassed() {
        PackedFixture f = new PackedFixture(8, true);
        DescriptorChain chain = f.device.newChain();
        ArrayDeque<Integer> taken = new ArrayDeque<>();
        // The device asks to hear about the descriptor at its last avail position (0, wrap 1).
        assertFalse(f.device.enableNotifications());
        f.driver.add(new long[] {PAYLOAD}, new int[] {8}, 1, 0);
        assertTrue(f.driver.needsKick()); // [0, 1) covers 0
        f.driver.add(new long[] {PAYLOAD}, new int[] {8}, 1, 0);
        assertFalse(f.driver.needsKick()); // [1, 2) does not, and the device has not re-armed
        for (int i = 0; i < 2; i++) {
            assertTrue(f.device.take(chain));
            taken.add(chain.headId());
        }
        assertFalse(f.device.enableNotifications()); // re-armed at 2
        for (int i = 0; i < 3; i++) {
            f.driver.add(new long[] {PAYLOAD, PAYLOAD}, new int[] {8, 8}, 2, 0);
        }
        assertTrue(f.driver.needsKick()); // [2, 8) covers 2
        for (int i = 0; i < 3; i++) {
            assertTrue(f.device.take(chain));
            taken.add(chain.headId());
        }
        // The device's next interest is on the second lap: (0, wrap 0).
        assertEquals(0, f.device.lastAvailIdx());
        assertFalse(f.device.lastAvailWrapCounter());
        assertFalse(f.device.enableNotifications());
        while (!taken.isEmpty()) {
            f.device.publishUsed(taken.poll(), 0);
        }
        while (f.poll() >= 0) {
            // drain, so the driver has room again
        }
        assertEquals(8, f.driver.freeDescriptors());
        f.driver.add(new long[] {PAYLOAD}, new int[] {8}, 1, 0);
        assertTrue(f.driver.needsKick()); // (0, wrap 0) reached
        assertTrue(f.device.take(chain));
        f.device.disableNotifications();
        f.driver.add(new long[] {PAYLOAD}, new int[] {8}, 1, 0);
        assertFalse(f.driver.needsKick());
    }

    @Test
    void eventIdxNotifiesTheDriverOnlyWhenItsOffsetIsPassed() {
        PackedFixture f = new PackedFixture(8, true);
        DescriptorChain chain = f.device.newChain();
        ArrayDeque<Integer> taken = new ArrayDeque<>();
        for (int i = 0; i < 7; i++) {
            f.driver.add(new long[] {PAYLOAD}, new int[] {8}, 0, 1);
            assertTrue(f.device.take(chain));
            taken.add(chain.headId());
        }
        // Fresh queue: the first decision has no history and notifies.
        f.device.publishUsed(taken.poll(), 8);
        assertTrue(f.device.needsNotification());
        // The driver wants to hear when the used position reaches index 3 (wrap 1).
        f.driver.requestUsedEventAt(3, true);
        f.device.publishUsed(taken.poll(), 8); // [1, 2)
        assertFalse(f.device.needsNotification());
        f.device.publishUsed(taken.poll(), 8); // [2, 3)
        assertFalse(f.device.needsNotification());
        f.device.publishUsed(taken.poll(), 8); // [3, 4) covers 3
        assertTrue(f.device.needsNotification());
        f.device.publishUsed(taken.poll(), 8); // [4, 5)
        assertFalse(f.device.needsNotification());
        // Publishing two and deciding once covers the range [5, 7).
        f.driver.requestUsedEventAt(5, true);
        f.device.publishUsed(taken.poll(), 8);
        f.device.publishUsed(taken.poll(), 8);
        assertTrue(f.device.needsNotification());
        // With nothing new published there is nothing to notify.
        assertFalse(f.device.needsNotification());
    }

    @Test
    void deviceMovingTwoLapsOrMoreBetweenDecisionsStillNotifies() {
        // A device that keeps taking while the driver keeps refilling decides only once it runs
        // dry: the used position can move 2 * size or more in between, past the period of a lap
        // position. Here the driver asks for the position 2 * size - 1 ahead, and the device
        // moves 2 * size + 1: a modular test alone sees a move of 1 and misses the offset.
        PackedFixture f = new PackedFixture(8, true);
        DescriptorChain chain = f.device.newChain();
        f.driver.disableUsedNotifications();
        assertFalse(f.device.needsNotification()); // records the position; the driver disabled
        for (int i = 0; i < 2 * 8 - 1; i++) {
            f.driver.add(new long[] {PAYLOAD}, new int[] {8}, 0, 1);
            assertTrue(f.device.take(chain));
            f.device.publishUsed(chain, 8);
            assertTrue(f.poll() >= 0);
        }
        assertFalse(f.driver.enableUsedNotifications()); // DESC at lap position 15
        for (int i = 0; i < 2; i++) {
            f.driver.add(new long[] {PAYLOAD}, new int[] {8}, 0, 1);
            assertTrue(f.device.take(chain));
            f.device.publishUsed(chain, 8);
        }
        assertTrue(f.device.needsNotification(), "used position crossed the driver's offset");
        assertFalse(f.device.needsNotification(), "nothing new since");
    }

    @Test
    void driverMovingTwoLapsOrMoreBetweenKickDecisionsStillKicks() {
        PackedFixture f = new PackedFixture(8, true);
        DescriptorChain chain = f.device.newChain();
        f.device.disableNotifications();
        f.driver.add(new long[] {PAYLOAD}, new int[] {8}, 0, 1);
        assertFalse(f.driver.needsKick()); // records the position; the device disabled
        assertTrue(f.device.take(chain));
        f.device.publishUsed(chain, 8);
        assertTrue(f.poll() >= 0);
        for (int i = 0; i < 2 * 8 - 2; i++) {
            f.driver.add(new long[] {PAYLOAD}, new int[] {8}, 0, 1);
            assertTrue(f.device.take(chain));
            f.device.publishUsed(chain, 8);
            assertTrue(f.poll() >= 0);
        }
        assertFalse(f.device.enableNotifications()); // DESC at lap position 15
        f.driver.add(new long[] {PAYLOAD}, new int[] {8}, 0, 1);
        f.driver.add(new long[] {PAYLOAD}, new int[] {8}, 0, 1);
        assertTrue(f.driver.needsKick(), "avail position crossed the device's offset");
    }

    @Test
    void resyncForgetsTheLastNotificationDecision() {
        PackedFixture f = new PackedFixture(8, true);
        DescriptorChain chain = f.device.newChain();
        f.driver.requestUsedEventAt(6, true);
        for (int i = 0; i < 2; i++) {
            f.driver.add(new long[] {PAYLOAD}, new int[] {8}, 0, 1);
            assertTrue(f.device.take(chain));
            f.device.publishUsed(chain, 8);
            assertEquals(i == 0, f.device.needsNotification()); // first: no history
        }
        f.device.resync(QueuePosition.packed(f.device.lastAvailIdx(), f.device.lastAvailWrapCounter(),
                f.device.usedIdx(), f.device.usedWrapCounter(), 0));
        assertFalse(f.device.signalledUsedValid());
        assertTrue(f.device.needsNotification()); // no history again: notify once
        assertFalse(f.device.needsNotification());
    }

    @Test
    void eventIdxWithWrapCounterAcrossTheRingEnd() {
        // size 32768: lap positions span the full 16 bits (0..65535) and wrap at 65536.
        int size = 32768;
        PackedFixture f = new PackedFixture(size, true, size - 2, false);
        DescriptorChain chain = f.device.newChain();
        ArrayDeque<Integer> taken = new ArrayDeque<>();
        assertFalse(f.device.enableNotifications()); // interest at (32766, wrap 0) = lap 65534
        for (int i = 0; i < 5; i++) {
            f.driver.add(new long[] {PAYLOAD}, new int[] {8}, 0, 1);
        }
        assertTrue(f.driver.needsKick()); // [65534, 65536 = 0, 3) covers 65534
        for (int i = 0; i < 5; i++) {
            assertTrue(f.device.take(chain));
            taken.add(chain.headId());
        }
        assertTrue(f.device.lastAvailWrapCounter()); // flipped back to 1 on crossing
        assertEquals(3, f.device.lastAvailIdx());

        f.driver.requestUsedEventAt(0, true); // the first descriptor after the ring end
        assertTrue(f.device.needsNotification()); // no history after restore; records (32766, wrap 0)
        f.device.publishUsed(taken.poll(), 8); // [32766, 32767)
        assertFalse(f.device.needsNotification());
        f.device.publishUsed(taken.poll(), 8); // [32767, 0 wrap 1)
        assertFalse(f.device.needsNotification());
        f.device.publishUsed(taken.poll(), 8); // [0, 1) on lap wrap 1: passes (0, wrap 1)
        assertTrue(f.device.needsNotification());
        // The same offset with the other wrap counter is a lap away: no notification.
        f.driver.requestUsedEventAt(1, false);
        f.device.publishUsed(taken.poll(), 8); // [1, 2) on lap wrap 1
        assertFalse(f.device.needsNotification());
        f.driver.requestUsedEventAt(2, true);
        f.device.publishUsed(taken.poll(), 8); // [2, 3)
        assertTrue(f.device.needsNotification());
        for (int i = 0; i < 5; i++) {
            assertTrue(f.poll() >= 0);
        }
        assertEquals(3, f.driver.nextUsed());
        assertTrue(f.driver.usedWrapCounter());
    }

    @Test
    void idsComeBackExactlyOnceUnderOutOfOrderCompletion() {
        PackedFixture f = new PackedFixture(16, false);
        DescriptorChain chain = f.device.newChain();
        int[] held = new int[16];
        int heldCount = 0;
        Set<Integer> outstanding = new HashSet<>();
        Random random = new Random(42);
        int[] batchIds = new int[16];
        int[] batchLengths = new int[16];
        for (int step = 0; step < 20000; step++) {
            int id = random.nextBoolean()
                    ? f.driver.add(new long[] {PAYLOAD, PAYLOAD + 64}, new int[] {8, 8}, 1, 1)
                    : f.driver.addIndirect(TABLES + 0x1000L * (step % 64), new long[] {PAYLOAD}, new int[] {8}, 0, 1);
            if (id >= 0) {
                assertTrue(outstanding.add(id), "id " + id + " handed out twice");
            }
            while (f.device.take(chain)) {
                held[heldCount++] = chain.headId();
            }
            if (heldCount > 0 && random.nextInt(3) > 0) {
                // Publish a random subset, in random order, one by one or as one batch.
                int n = 1 + random.nextInt(heldCount);
                for (int i = 0; i < n; i++) {
                    int pick = i + random.nextInt(heldCount - i);
                    int t = held[i];
                    held[i] = held[pick];
                    held[pick] = t;
                    batchIds[i] = held[i];
                    batchLengths[i] = 8;
                }
                if (random.nextBoolean()) {
                    f.device.publishUsedBatch(batchIds, batchLengths, n);
                } else {
                    for (int i = 0; i < n; i++) {
                        f.device.publishUsed(batchIds[i], 8);
                    }
                }
                System.arraycopy(held, n, held, 0, heldCount - n);
                heldCount -= n;
            }
            int used;
            while ((used = f.poll()) >= 0) {
                assertTrue(outstanding.remove(used), "id " + used + " returned but not outstanding");
            }
        }
        assertEquals(heldCount, outstanding.size());
        assertEquals(heldCount, f.device.inuse());
    }
}

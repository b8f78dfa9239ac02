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
import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Driver and device of a packed ring working together. */
class PackedQueueTest {

    @Test
    void singleDescriptorRoundTripIsZeroCopy() {
        PackedFixture f = new PackedFixture(8, false, false);
        f.at(PAYLOAD, 4).set(ValueLayout.JAVA_INT_UNALIGNED, 0, 0xCAFEBABE);
        int id = f.driver.add(new long[] {PAYLOAD}, new int[] {4}, 1, 1);
        assertTrue(id >= 0);

        DescriptorChain chain = new DescriptorChain(8);
        assertTrue(f.device.take(chain));
        assertEquals(id, chain.id());
        assertEquals(0, chain.head());
        assertEquals(1, chain.count());
        assertEquals(1, chain.readableCount());
        assertEquals(PAYLOAD, chain.address(0));
        assertEquals(4, chain.length(0));
        assertEquals(4, chain.readableBytes());
        // The element is the driver's bytes where they lie: a write through it shows in guest memory.
        MemorySegment element = chain.segment(f.memory, 0);
        assertEquals(0xCAFEBABE, element.get(ValueLayout.JAVA_INT_UNALIGNED, 0));
        element.set(ValueLayout.JAVA_INT_UNALIGNED, 0, 0x12345678);
        assertEquals(0x12345678, f.at(PAYLOAD, 4).get(ValueLayout.JAVA_INT_UNALIGNED, 0));
        assertFalse(f.device.take(chain));

        assertEquals(-1, f.driver.pollUsed());
        f.device.publishUsed(chain, 0);
        assertEquals(id, f.driver.pollUsed());
        assertEquals(0, f.driver.lastUsedLength());
        assertEquals(-1, f.driver.pollUsed());
        assertEquals(8, f.driver.freeDescriptors());
        assertEquals(0, f.device.inuse());
    }

    @Test
    void nextChainTakesIdFromLastDescriptorAndSkipsItsLength() {
        PackedFixture f = new PackedFixture(8, false, false);
        long[] addrs = {PAYLOAD, PAYLOAD + 0x100, HIGH_BASE + 0x40};
        int[] lens = {16, 32, 64};
        int first = f.driver.add(addrs, lens, 2, 3);
        int second = f.driver.add(new long[] {PAYLOAD + 0x800}, new int[] {8}, 0, 1);

        DescriptorChain chain = new DescriptorChain(8);
        assertTrue(f.device.take(chain));
        assertEquals(first, chain.id());
        assertEquals(3, chain.descriptorCount());
        assertEquals(3, chain.count());
        assertEquals(2, chain.readableCount());
        assertEquals(1, chain.writableCount());
        assertEquals(48, chain.readableBytes());
        assertEquals(64, chain.writableBytes());
        assertFalse(chain.isWritable(1));
        assertTrue(chain.isWritable(2));
        assertEquals(HIGH_BASE + 0x40, chain.address(2));
        assertEquals(1, chain.region(2));
        assertEquals(0x40, chain.regionOffset(2));

        DescriptorChain other = new DescriptorChain(8);
        assertTrue(f.device.take(other));
        assertEquals(second, other.id());
        assertEquals(3, other.head());
        assertEquals(1, other.writableCount());

        // Out of order: the second chain completes first and takes the first used slot.
        f.device.publishUsed(other, 8);
        f.device.publishUsed(chain, 64);
        assertEquals(second, f.driver.pollUsed());
        assertEquals(8, f.driver.lastUsedLength());
        assertEquals(first, f.driver.pollUsed());
        assertEquals(64, f.driver.lastUsedLength());
        assertEquals(4, f.driver.nextUsed());
        assertEquals(4, f.device.usedIdx());
    }

    @Test
    void indirectChainReadsTheTableInGuestMemory() {
        PackedFixture f = new PackedFixture(5, false, true);
        long[] addrs = {PAYLOAD, PAYLOAD + 0x10, PAYLOAD + 0x20, HIGH_BASE, HIGH_BASE + 0x1000};
        int[] lens = {16, 16, 16, 0x1000, 0x800};
        int id = f.driver.addIndirect(TABLES, addrs, lens, 3, 5);

        DescriptorChain chain = new DescriptorChain(5);
        assertTrue(f.device.take(chain));
        assertTrue(chain.isIndirect());
        assertEquals(id, chain.id());
        assertEquals(1, chain.descriptorCount());
        assertEquals(5, chain.count()); // a table may hold as many elements as the queue size
        assertEquals(3, chain.readableCount());
        assertEquals(0x1800, chain.writableBytes());
        for (int i = 0; i < 5; i++) {
            assertEquals(addrs[i], chain.address(i));
            assertEquals(lens[i], chain.length(i));
        }
        f.device.publishUsed(chain, 0x1800);
        assertEquals(id, f.driver.pollUsed());
        assertEquals(0x1800, f.driver.lastUsedLength());
        assertEquals(1, f.driver.nextUsed());
    }

    @Test
    void directAndIndirectChainsMix() {
        PackedFixture f = new PackedFixture(16, true, true);
        DescriptorChain chain = new DescriptorChain(16);
        for (int round = 0; round < 50; round++) {
            int a = f.driver.add(new long[] {PAYLOAD, PAYLOAD + 64}, new int[] {64, 64}, 1, 2);
            int b = f.driver.addIndirect(TABLES, new long[] {PAYLOAD + 128, PAYLOAD + 192}, new int[] {64, 64}, 1, 2);
            assertTrue(f.device.take(chain));
            assertEquals(a, chain.id());
            assertFalse(chain.isIndirect());
            f.device.publishUsed(chain, 64);
            assertTrue(f.device.take(chain));
            assertEquals(b, chain.id());
            assertTrue(chain.isIndirect());
            f.device.publishUsed(chain, 32);
            assertEquals(a, f.driver.pollUsed());
            assertEquals(b, f.driver.pollUsed());
            assertEquals(32, f.driver.lastUsedLength());
        }
    }

    @Test
    void batchBecomesVisibleOnlyWhenFlushed() {
        PackedFixture f = new PackedFixture(8, false, false);
        int[] ids = new int[4];
        for (int i = 0; i < 4; i++) {
            ids[i] = f.driver.add(new long[] {PAYLOAD + 0x100L * i}, new int[] {16}, 0, 1);
        }
        DescriptorChain[] chains = new DescriptorChain[4];
        for (int i = 0; i < 4; i++) {
            chains[i] = new DescriptorChain(8);
            assertTrue(f.device.take(chains[i]));
        }
        for (int i = 3; i >= 0; i--) {
            f.device.addUsed(chains[i], 16 + i);
        }
        // Later entries of the batch carry used flags already; the first does not: the driver sees nothing.
        assertTrue(PackedRing.isUsed(f.ringFlags(1), true));
        assertFalse(PackedRing.isUsed(f.ringFlags(0), true));
        assertEquals(-1, f.driver.pollUsed());
        assertThrows(IllegalStateException.class, f.device::needsNotification);
        assertThrows(IllegalStateException.class, () -> f.device.publishUsed(chains[0], 1));
        f.device.flushUsed();
        for (int i = 3; i >= 0; i--) {
            assertEquals(ids[i], f.driver.pollUsed());
            assertEquals(16 + i, f.driver.lastUsedLength());
        }
        assertEquals(-1, f.driver.pollUsed());
        f.device.flushUsed(); // no open batch: nothing happens
    }

    @Test
    void fullRingRefusesMoreAndRecovers() {
        PackedFixture f = new PackedFixture(5, false, false);
        assertTrue(f.driver.add(new long[] {PAYLOAD, PAYLOAD, PAYLOAD}, new int[] {1, 1, 1}, 3, 3) >= 0);
        assertTrue(f.driver.add(new long[] {PAYLOAD, PAYLOAD}, new int[] {1, 1}, 2, 2) >= 0);
        assertEquals(-1, f.driver.add(new long[] {PAYLOAD}, new int[] {1}, 1, 1));
        DescriptorChain chain = new DescriptorChain(5);
        assertTrue(f.device.take(chain));
        f.device.publishUsed(chain, 0);
        assertTrue(f.driver.pollUsed() >= 0);
        assertEquals(3, f.driver.freeDescriptors());
        // The next chain wraps: 3 descriptors from index 0 on the second lap.
        int id = f.driver.add(new long[] {PAYLOAD, PAYLOAD, PAYLOAD}, new int[] {1, 1, 1}, 3, 3);
        assertTrue(id >= 0);
        assertTrue(f.device.take(chain));
        assertTrue(f.device.take(chain));
        assertEquals(id, chain.id());
        assertEquals(0, chain.head());
        assertFalse(f.device.lastAvailWrapCounter());
        assertEquals(3, f.device.lastAvailIdx());
    }

    @Test
    void publishingMoreThanWasTakenIsRefused() {
        PackedFixture f = new PackedFixture(4, false, false);
        assertThrows(IllegalStateException.class, () -> f.device.publishUsed(0, 1, 0));
        f.driver.add(new long[] {PAYLOAD}, new int[] {1}, 1, 1);
        DescriptorChain chain = new DescriptorChain(4);
        assertTrue(f.device.take(chain));
        assertThrows(IllegalStateException.class, () -> f.device.publishUsed(chain.id(), 2, 0));
        f.device.publishUsed(chain, 0);
    }

    /**
     * Starting a few descriptors before the ring end, chains of 1 to 3 descriptors (direct and
     * indirect) cross the end many times; the wrap counters flip every lap, on both sides alike.
     */
    @ParameterizedTest
    @ValueSource(ints = {7, 256, 32768})
    void crossesTheRingEndManyTimes(int size) {
        int start = size - 3;
        PackedFixture f = new PackedFixture(size, true, true, start, true);
        DescriptorChain chain = new DescriptorChain(size);
        long laps = 0;
        boolean lastWrap = true;
        long total = (long) size * 2 + 5000;
        long[] addrs = new long[3];
        int[] lens = new int[3];
        int seq = 0;
        for (long n = 0; n < total; n += 1) {
            int count = 1 + (seq % 3);
            for (int i = 0; i < count; i++) {
                addrs[i] = PAYLOAD + 16L * i;
                lens[i] = 16;
            }
            f.at(PAYLOAD, 4).set(ValueLayout.JAVA_INT_UNALIGNED, 0, seq);
            int id = seq % 5 == 4
                    ? f.driver.addIndirect(TABLES, addrs, lens, 1, count)
                    : f.driver.add(addrs, lens, 1, count);
            assertTrue(id >= 0);
            assertTrue(f.device.take(chain));
            assertEquals(id, chain.id());
            assertEquals(seq, chain.segment(f.memory, 0).get(ValueLayout.JAVA_INT_UNALIGNED, 0));
            f.device.publishUsed(chain, 16 * (count - 1));
            assertEquals(id, f.driver.pollUsed());
            assertEquals(16 * (count - 1), f.driver.lastUsedLength());
            assertEquals(f.driver.nextAvail(), f.device.lastAvailIdx());
            assertEquals(f.driver.availWrapCounter(), f.device.lastAvailWrapCounter());
            assertEquals(f.driver.nextUsed(), f.device.usedIdx());
            assertEquals(f.driver.usedWrapCounter(), f.device.usedWrapCounter());
            if (f.device.usedWrapCounter() != lastWrap) {
                laps++;
                lastWrap = f.device.usedWrapCounter();
            }
            seq++;
        }
        assertTrue(laps >= 2, "laps " + laps);
    }

    @Test
    void notificationsWithoutEventIdxFollowEnableAndDisable() {
        PackedFixture f = new PackedFixture(8, false, false);
        DescriptorChain chain = new DescriptorChain(8);
        // Device side: available-buffer notifications.
        f.driver.add(new long[] {PAYLOAD}, new int[] {8}, 1, 1);
        assertTrue(f.driver.kickNeeded()); // zeroed device area = ENABLE
        f.device.disableNotifications();
        f.driver.add(new long[] {PAYLOAD}, new int[] {8}, 1, 1);
        assertFalse(f.driver.kickNeeded());
        assertTrue(f.device.enableNotifications()); // chains are waiting: the device must take them
        assertTrue(f.driver.kickNeeded());
        assertTrue(f.device.take(chain));
        assertTrue(f.device.take(chain));
        assertFalse(f.device.enableNotifications());

        // Driver side: used-buffer notifications.
        f.device.publishUsed(chain.id(), 1, 0);
        assertTrue(f.device.needsNotification());
        f.driver.disableUsedNotifications();
        f.device.publishUsed(chain.id() ^ 1, 1, 0);
        assertFalse(f.device.needsNotification());
        assertTrue(f.driver.enableUsedNotifications()); // used entries wait
        assertTrue(f.driver.pollUsed() >= 0);
        assertTrue(f.driver.pollUsed() >= 0);
        assertFalse(f.driver.enableUsedNotifications());
    }

    @Test
    void eventIdxKicksOnlyWhenTheDevicesOffsetIsPassed() {
        PackedFixture f = new PackedFixture(8, true, false);
        DescriptorChain chain = new DescriptorChain(8);
        // The device asks to hear about the descriptor at its last avail index (0, wrap 1).
        assertFalse(f.device.enableNotifications());
        f.driver.add(new long[] {PAYLOAD}, new int[] {8}, 1, 1);
        assertTrue(f.driver.kickNeeded()); // [0, 1) covers 0
        f.driver.add(new long[] {PAYLOAD}, new int[] {8}, 1, 1);
        assertFalse(f.driver.kickNeeded()); // [1, 2) does not: the device has not re-armed
        assertTrue(f.device.take(chain));
        assertTrue(f.device.take(chain));
        assertFalse(f.device.enableNotifications()); // re-arm at 2
        for (int i = 0; i < 3; i++) {
            f.driver.add(new long[] {PAYLOAD, PAYLOAD}, new int[] {8, 8}, 2, 2);
        }
        assertTrue(f.driver.kickNeeded()); // [2, 8) covers 2
        f.device.take(chain);
        f.device.take(chain);
        f.device.take(chain);
        // The device's next interest is (0, wrap 0): on the second lap. Re-arm there.
        assertEquals(0, f.device.lastAvailIdx());
        assertFalse(f.device.lastAvailWrapCounter());
        f.device.enableNotifications();
        // Return every buffer (ids 0 and 1 took one descriptor, 2 to 4 two) so the driver has room.
        int[] descriptors = {1, 1, 2, 2, 2};
        for (int id = 0; id < 5; id++) {
            f.device.publishUsed(id, descriptors[id], 0);
        }
        for (int id = 0; id < 5; id++) {
            assertEquals(id, f.driver.pollUsed());
        }
        assertEquals(8, f.driver.freeDescriptors());
        f.driver.add(new long[] {PAYLOAD}, new int[] {8}, 1, 1);
        assertTrue(f.driver.kickNeeded()); // (0, wrap 0) reached
        f.device.take(chain);
        f.device.disableNotifications();
        f.driver.add(new long[] {PAYLOAD}, new int[] {8}, 1, 1);
        assertFalse(f.driver.kickNeeded());
    }

    @Test
    void eventIdxNotifiesTheDriverOnlyWhenItsOffsetIsPassed() {
        PackedFixture f = new PackedFixture(8, true, false);
        DescriptorChain chain = new DescriptorChain(8);
        for (int i = 0; i < 6; i++) {
            f.driver.add(new long[] {PAYLOAD}, new int[] {8}, 0, 1);
            f.device.take(chain);
        }
        // Fresh queue: the first decision has no history and notifies.
        f.device.publishUsed(chain.id(), 1, 8);
        assertTrue(f.device.needsNotification());
        // The driver wants to hear when the used position reaches index 3 (wrap 1).
        f.driver.requestUsedEventAt(3, true);
        f.device.publishUsed(chain.id(), 1, 8); // [1, 2)
        assertFalse(f.device.needsNotification());
        f.device.publishUsed(chain.id(), 1, 8); // [2, 3)
        assertFalse(f.device.needsNotification());
        f.device.publishUsed(chain.id(), 1, 8); // [3, 4) covers 3
        assertTrue(f.device.needsNotification());
        f.device.publishUsed(chain.id(), 1, 8); // [4, 5)
        assertFalse(f.device.needsNotification());
        // After a resync the next decision has no history: it notifies.
        f.device.resync();
        assertFalse(f.device.signalledUsedValid());
        f.device.publishUsed(chain.id(), 1, 8);
        assertTrue(f.device.needsNotification());
        // With nothing new published there is nothing to notify.
        assertFalse(f.device.needsNotification());
    }

    @Test
    void eventIdxWithWrapCounterAcrossTheRingEnd() {
        // size 32768: lap positions span the full 16 bits (0..65535) and wrap around 65536.
        int size = 32768;
        PackedFixture f = new PackedFixture(size, true, false, size - 2, false);
        DescriptorChain chain = new DescriptorChain(size);
        assertFalse(f.device.enableNotifications()); // interest at (32766, wrap 0) = lap 65534
        for (int i = 0; i < 4; i++) {
            f.driver.add(new long[] {PAYLOAD}, new int[] {8}, 0, 1);
        }
        assertTrue(f.driver.kickNeeded()); // [65534, 65536 -> 2) covers 65534
        for (int i = 0; i < 4; i++) {
            assertTrue(f.device.take(chain));
        }
        assertTrue(f.device.lastAvailWrapCounter()); // flipped back to 1 on crossing
        assertEquals(2, f.device.lastAvailIdx());

        f.driver.requestUsedEventAt(0, true); // the first descriptor after the ring end
        f.device.needsNotification(); // establish history at (32766, wrap 0)
        f.device.publishUsed(chain.id(), 1, 8); // [32766, 32767)
        assertFalse(f.device.needsNotification());
        f.device.publishUsed(chain.id(), 1, 8); // [32767, 0 wrap 1)
        assertFalse(f.device.needsNotification());
        f.device.publishUsed(chain.id(), 1, 8); // [0 wrap 1, 1): passes (0, wrap 1)
        assertTrue(f.device.needsNotification());
        // The same offset with the other wrap counter is a lap away: no notification.
        f.driver.requestUsedEventAt(1, false);
        f.device.publishUsed(chain.id(), 1, 8); // [1, 2) on lap wrap 1
        assertFalse(f.device.needsNotification());
    }

    @Test
    void idsComeBackExactlyOnceUnderOutOfOrderCompletion() {
        PackedFixture f = new PackedFixture(16, false, true);
        DescriptorChain[] held = new DescriptorChain[16];
        for (int i = 0; i < 16; i++) {
            held[i] = new DescriptorChain(16);
        }
        Set<Integer> outstanding = new HashSet<>();
        java.util.Random random = new java.util.Random(42);
        int heldCount = 0;
        for (int step = 0; step < 20000; step++) {
            int id = random.nextBoolean()
                    ? f.driver.add(new long[] {PAYLOAD, PAYLOAD + 64}, new int[] {8, 8}, 1, 2)
                    : f.driver.addIndirect(TABLES + 0x1000L * (step % 64), new long[] {PAYLOAD}, new int[] {8}, 0, 1);
            if (id >= 0) {
                assertTrue(outstanding.add(id), "id " + id + " handed out twice");
            }
            while (heldCount < 16 && f.device.take(held[heldCount])) {
                heldCount++;
            }
            if (heldCount > 0 && random.nextInt(3) > 0) {
                int pick = random.nextInt(heldCount);
                f.device.publishUsed(held[pick], 8);
                DescriptorChain t = held[pick];
                held[pick] = held[heldCount - 1];
                held[heldCount - 1] = t;
                heldCount--;
            }
            int used;
            while ((used = f.driver.pollUsed()) >= 0) {
                assertTrue(outstanding.remove(used), "id " + used + " returned but not outstanding");
            }
        }
        assertEquals(heldCount, outstanding.size());
        assertEquals(heldCount, f.device.inuse());
    }
}

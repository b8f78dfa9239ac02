package io.vhostffm.vring;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Driver and device side of the split ring working together. */
class SplitQueueTest {
    private SplitRig rig;

    @AfterEach
    void closeRig() {
        if (rig != null) {
            rig.close();
        }
    }

    @ParameterizedTest(name = "indirect={0}")
    @ValueSource(booleans = {false, true})
    void chainRoundTripsWithPayloadInPlace(boolean indirect) {
        rig = new SplitRig(3, 16, false);
        SplitDriverQueue driver = rig.driver(0);
        SplitDeviceQueue device = rig.device(driver);
        long request = SplitRig.BUFFERS;
        long header = SplitRig.BUFFERS + 0x100;
        long response = SplitRig.BUFFERS + 0x200;
        rig.slice(request, 5).copyFrom(MemorySegment.ofArray("hello".getBytes()));
        rig.slice(header, 3).copyFrom(MemorySegment.ofArray(new byte[] {1, 2, 3}));
        long[] addresses = {request, header, response};
        int[] lengths = {5, 3, 64};
        int head = indirect
                ? driver.addIndirect(SplitRig.BUFFERS + 0x1000, addresses, lengths, 2, 1)
                : driver.add(addresses, lengths, 2, 1);
        assertEquals(indirect ? 15 : 13, driver.freeDescriptors());
        assertTrue(driver.needsKick(), "no event idx and no NO_NOTIFY flag: kick");

        DescriptorChain chain = device.newChain();
        assertTrue(device.take(chain));
        assertEquals(head, chain.headId());
        assertEquals(3, chain.queueIndex());
        assertEquals(2, chain.readableCount());
        assertEquals(1, chain.writableCount());
        assertEquals(8, chain.readableLength());
        assertEquals(64, chain.writableLength());
        assertEquals(indirect ? 1 : 3, chain.descriptorCount());
        assertEquals(header, chain.address(1));
        assertFalse(chain.isWritable(1));
        assertTrue(chain.isWritable(2));
        assertEquals("hello", new String(chain.buffer(0).toArray(ValueLayout.JAVA_BYTE)));
        // Allocation-free access: region segment plus offset is the same memory.
        assertEquals(1, chain.regionIndex(1));
        assertEquals(3, chain.regionSegment(1).get(ValueLayout.JAVA_BYTE, chain.regionOffset(1) + 2));
        chain.buffer(2).copyFrom(MemorySegment.ofArray("world".getBytes()));
        assertFalse(device.take(chain), "only one chain was made available");

        assertThrows(IllegalArgumentException.class, () -> device.publishUsed(chain, 65),
                "more than the 64 writable bytes");
        device.publishUsed(chain, 5);
        assertTrue(device.needsNotification());
        int[] ids = new int[4];
        int[] lens = new int[4];
        assertEquals(1, driver.collectUsed(ids, lens, 4));
        assertEquals(head, ids[0]);
        assertEquals(5, lens[0]);
        assertEquals("world", new String(rig.slice(response, 5).toArray(ValueLayout.JAVA_BYTE)));
        assertEquals(16, driver.freeDescriptors());
        assertEquals(0, driver.collectUsed(ids, lens, 4));
    }

    @Test
    void batchesFillTheRingAndComeBackInOrder() {
        rig = new SplitRig(0, 8, true);
        SplitDriverQueue driver = rig.driver(0);
        SplitDeviceQueue device = rig.device(driver);
        DescriptorChain chain = device.newChain();
        for (int round = 0; round < 5; round++) {
            int[] heads = new int[8];
            int added = 0;
            while (true) {
                int head = driver.add(new long[] {SplitRig.BUFFERS + added * 64L}, new int[] {64}, 0, 1);
                if (head < 0) {
                    break;
                }
                heads[added++] = head;
            }
            assertEquals(8, added, "a ring of 8 holds 8 one-descriptor chains");
            assertEquals(0, driver.freeDescriptors());
            int[] ids = new int[8];
            int[] lens = new int[8];
            int taken = 0;
            while (device.take(chain)) {
                assertEquals(heads[taken], chain.headId());
                ids[taken] = chain.headId();
                lens[taken] = 10 + taken;
                taken++;
            }
            assertEquals(8, taken);
            device.publishUsedBatch(ids, lens, 3);
            device.publishUsedBatch(new int[] {ids[3], ids[4], ids[5], ids[6], ids[7]},
                    new int[] {lens[3], lens[4], lens[5], lens[6], lens[7]}, 5);
            int[] gotIds = new int[8];
            int[] gotLens = new int[8];
            assertEquals(8, driver.collectUsed(gotIds, gotLens, 8));
            assertArrayEquals(ids, gotIds);
            assertArrayEquals(lens, gotLens);
            assertEquals(8, driver.freeDescriptors());
        }
        assertEquals(40, device.saveState().position().lastAvailIdx());
        assertEquals(40, device.saveState().position().usedIdx());
        assertEquals(0, device.saveState().position().inuse());
    }

    @Test
    void batchWithABadIdPublishesNothing() {
        rig = new SplitRig(0, 8, false);
        SplitDriverQueue driver = rig.driver(0);
        SplitDeviceQueue device = rig.device(driver);
        int first = driver.add(new long[] {SplitRig.BUFFERS}, new int[] {8}, 1, 0);
        int second = driver.add(new long[] {SplitRig.BUFFERS}, new int[] {8}, 1, 0);
        DescriptorChain chain = device.newChain();
        assertTrue(device.take(chain));
        assertTrue(device.take(chain));
        assertThrows(IllegalArgumentException.class,
                () -> device.publishUsedBatch(new int[] {first, 99}, new int[] {0, 0}, 2));
        assertThrows(IllegalStateException.class,
                () -> device.publishUsedBatch(new int[] {first, second, first}, new int[] {0, 0, 0}, 3));
        assertEquals(0, rig.usedIdx(), "a refused batch publishes nothing");
        device.publishUsedBatch(new int[] {first, second}, new int[] {1, 2}, 2);
        assertThrows(IllegalStateException.class, () -> device.publishUsed(first, 0),
                "publishing more than was taken");
        assertEquals(2, rig.usedIdx());
    }

    @ParameterizedTest(name = "eventIdx={0}")
    @ValueSource(booleans = {false, true})
    void indicesStartingNear65535CrossTheWrap(boolean eventIdx) {
        rig = new SplitRig(1, 16, eventIdx);
        SplitDriverQueue driver = rig.driver(65530);
        SplitDeviceQueue device = rig.device(driver);
        DescriptorChain chain = device.newChain();
        int[] ids = new int[16];
        int[] lens = new int[16];
        long sequence = 0;
        for (int round = 0; round < 6; round++) {
            // Two readable + one writable buffer per chain; indirect every other round.
            int chains = 1 + round;
            for (int c = 0; c < chains; c++) {
                long buffer = SplitRig.BUFFERS + 0x100L * c;
                rig.slice(buffer, 8).set(ValueLayout.JAVA_LONG_UNALIGNED, 0, sequence + c);
                long[] addresses = {buffer, buffer + 8, buffer + 16};
                int[] lengths = {8, 8, 8};
                int head = round % 2 == 0
                        ? driver.add(addresses, lengths, 2, 1)
                        : driver.addIndirect(SplitRig.BUFFERS + 0x8000 + 0x100L * c, addresses, lengths, 2, 1);
                assertTrue(head >= 0);
            }
            for (int c = 0; c < chains; c++) {
                assertTrue(device.take(chain));
                assertEquals(sequence + c, chain.buffer(0).get(ValueLayout.JAVA_LONG_UNALIGNED, 0));
                ids[c] = chain.headId();
                lens[c] = c;
            }
            assertFalse(device.take(chain));
            device.publishUsedBatch(ids, lens, chains);
            int[] got = new int[16];
            int[] gotLens = new int[16];
            assertEquals(chains, driver.collectUsed(got, gotLens, 16));
            for (int c = 0; c < chains; c++) {
                assertEquals(ids[c], got[c]);
                assertEquals(c, gotLens[c]);
            }
            sequence += chains;
        }
        // 65530 + 21 chains: both indices wrapped past 65535.
        assertEquals((65530 + 21) & 0xffff, device.saveState().position().lastAvailIdx());
        assertEquals((65530 + 21) & 0xffff, device.saveState().position().usedIdx());
        assertEquals((65530 + 21) & 0xffff, rig.usedIdx());
        assertEquals(16, driver.freeDescriptors());
    }

    @Test
    void notificationsWithoutEventIdxFollowTheFlags() {
        rig = new SplitRig(0, 8, false);
        SplitDriverQueue driver = rig.driver(0);
        SplitDeviceQueue device = rig.device(driver);
        DescriptorChain chain = device.newChain();
        long[] a = {SplitRig.BUFFERS};
        int[] l = {8};

        assertFalse(driver.needsKick(), "nothing added, nothing to kick for");
        device.disableNotifications();
        assertEquals(VirtqFlags.VIRTQ_USED_F_NO_NOTIFY, rig.usedFlags());
        driver.add(a, l, 1, 0);
        assertFalse(driver.needsKick(), "device set VIRTQ_USED_F_NO_NOTIFY");
        assertTrue(device.enableNotifications(), "a chain arrived while notifications were off");
        assertEquals(0, rig.usedFlags());
        driver.add(a, l, 1, 0);
        assertTrue(driver.needsKick());
        assertTrue(device.take(chain));
        assertTrue(device.take(chain));
        assertFalse(device.enableNotifications(), "ring drained");

        driver.disableUsedNotifications();
        assertEquals(VirtqFlags.VIRTQ_AVAIL_F_NO_INTERRUPT, rig.availFlags());
        device.publishUsed(chain.headId(), 0);
        assertFalse(device.needsNotification(), "driver set VIRTQ_AVAIL_F_NO_INTERRUPT");
        assertTrue(driver.enableUsedNotifications(), "a used element arrived meanwhile");
        int[] ids = new int[8];
        int[] lens = new int[8];
        assertEquals(1, driver.collectUsed(ids, lens, 8));
        assertFalse(driver.enableUsedNotifications());
        device.publishUsed(0, 0);
        assertTrue(device.needsNotification());
    }

    @Test
    void eventIdxNotificationsFollowVringNeedEvent() {
        rig = new SplitRig(0, 8, true);
        SplitDriverQueue driver = rig.driver(0);
        SplitDeviceQueue device = rig.device(driver);
        DescriptorChain chain = device.newChain();
        long[] a = {SplitRig.BUFFERS};
        int[] l = {8};
        int[] ids = new int[8];
        int[] lens = new int[8];

        // Kicks: avail_event starts at 0, so the chain that fills slot 0 needs a kick ...
        driver.add(a, l, 1, 0);
        assertTrue(driver.needsKick());
        // ... the next one does not: the device has not moved avail_event yet.
        driver.add(a, l, 1, 0);
        assertFalse(driver.needsKick());
        // Taking with notifications on moves avail_event to the next slot to fill (2).
        assertTrue(device.take(chain));
        assertTrue(device.take(chain));
        assertEquals(2, rig.availEvent());
        driver.add(a, l, 1, 0);
        driver.add(a, l, 1, 0);
        assertTrue(driver.needsKick(), "avail_event 2 lies in [2, 4)");
        // With notifications disabled avail_event stays where it was.
        device.disableNotifications();
        assertTrue(device.take(chain));
        assertTrue(device.take(chain));
        assertEquals(2, rig.availEvent());
        driver.add(a, l, 1, 0);
        assertFalse(driver.needsKick(), "avail_event 2 not in [4, 5)");
        assertTrue(device.enableNotifications(), "the chain at 4 is pending");
        assertEquals(4, rig.availEvent());
        assertTrue(device.take(chain));
        assertFalse(device.enableNotifications());
        assertEquals(5, rig.availEvent());

        // Used notifications: used_event starts at 0. The first decision always notifies
        // (signalled_used not valid yet).
        device.publishUsed(0, 0);
        assertTrue(device.needsNotification());
        assertFalse(device.needsNotification(), "nothing new published");
        device.publishUsed(1, 0);
        assertFalse(device.needsNotification(), "used_event 0 not in [1, 2)");
        assertEquals(2, driver.collectUsed(ids, lens, 8));
        assertEquals(2, rig.usedEvent(), "collecting moves used_event to the next element wanted");
        device.publishUsed(2, 0);
        device.publishUsed(3, 0);
        assertTrue(device.needsNotification(), "used_event 2 in [2, 4)");
        driver.disableUsedNotifications();
        assertEquals(2, driver.collectUsed(ids, lens, 8));
        device.publishUsed(4, 0);
        assertFalse(device.needsNotification(), "used_event left behind by disableUsedNotifications");
        assertTrue(driver.enableUsedNotifications(), "element 4 is waiting");
        assertEquals(4, rig.usedEvent());
        assertEquals(1, driver.collectUsed(ids, lens, 8));
        assertFalse(driver.enableUsedNotifications());
    }

    @Test
    void deviceMoving65536OrMoreBetweenDecisionsStillNotifies() {
        // used.idx is 16 bits: a device that publishes 65536 or more elements between two
        // decisions cannot tell from the indices whether it crossed used_event. Here the driver
        // asks for the element 65535 ahead and the device moves 65537: vring_need_event alone
        // sees a move of 1 and misses it.
        rig = new SplitRig(0, 8, true);
        SplitDriverQueue driver = rig.driver(0);
        SplitDeviceQueue device = rig.device(driver);
        DescriptorChain chain = device.newChain();
        long[] a = {SplitRig.BUFFERS};
        int[] l = {8};
        int[] ids = new int[1];
        int[] lens = new int[1];
        driver.disableUsedNotifications();
        device.publishUsed(pass(driver, device, chain, a, l), 0);
        assertEquals(1, driver.collectUsed(ids, lens, 1));
        assertTrue(device.needsNotification()); // the first decision; records used.idx 1
        for (int i = 0; i < 0xffff; i++) {
            device.publishUsed(pass(driver, device, chain, a, l), 0);
            assertEquals(1, driver.collectUsed(ids, lens, 1));
        }
        assertFalse(driver.enableUsedNotifications()); // used_event = 0 (65536 & 0xffff)
        for (int i = 0; i < 2; i++) {
            device.publishUsed(pass(driver, device, chain, a, l), 0);
        }
        assertTrue(device.needsNotification(), "used.idx crossed used_event");
        assertFalse(device.needsNotification(), "nothing new since");
    }

    private static int pass(SplitDriverQueue driver, SplitDeviceQueue device, DescriptorChain chain, long[] a, int[] l) {
        driver.add(a, l, 1, 0);
        assertTrue(device.take(chain));
        return chain.headId();
    }

    @Test
    void needEventHandles16BitWrap() {
        assertTrue(VirtqFlags.needEvent(0xffff, 0x0001, 0xfffe), "event in [0xfffe, 0x0001)");
        assertTrue(VirtqFlags.needEvent(0x0000, 0x0001, 0xfffe));
        assertFalse(VirtqFlags.needEvent(0x0001, 0x0001, 0xfffe), "new itself is not passed yet");
        assertFalse(VirtqFlags.needEvent(0xfffd, 0x0001, 0xfffe));
        assertFalse(VirtqFlags.needEvent(5, 7, 7), "no movement, no event");
    }

    @Test
    void stateSavesRestoresAndCarriesDriverAndDeviceAcrossAMigration() {
        rig = new SplitRig(2, 8, true);
        SplitDriverQueue driver = rig.driver(65534);
        SplitDeviceQueue device = rig.device(driver);
        DescriptorChain chain = device.newChain();
        int h0 = driver.add(new long[] {SplitRig.BUFFERS, SplitRig.BUFFERS + 8}, new int[] {8, 8}, 1, 1);
        int h1 = driver.add(new long[] {SplitRig.BUFFERS + 16}, new int[] {8}, 1, 0);
        int h2 = driver.add(new long[] {SplitRig.BUFFERS + 24}, new int[] {8}, 0, 1);
        assertTrue(device.take(chain));
        assertEquals(h0, chain.headId());
        assertTrue(device.take(chain));
        device.publishUsed(h0, 8);

        // "Migrate": both sides saved as plain data, new objects over the same guest memory.
        QueueState saved = device.saveState();
        assertEquals(0, saved.position().lastAvailIdx(), "65534 + 2 wrapped");
        assertEquals(65535, saved.position().usedIdx());
        assertEquals(1, saved.position().inuse());
        DriverState driverSaved = driver.saveState();
        SplitDriverQueue driver2 = new SplitDriverQueue(2, rig.memory, driverSaved);
        SplitDeviceQueue device2 = new SplitDeviceQueue(2, rig.memory, saved, RestoreMode.CLASSIC);
        QueueState restored = device2.saveState();
        assertEquals(saved.position().lastAvailIdx(), restored.position().lastAvailIdx());
        assertEquals(saved.position().usedIdx(), restored.position().usedIdx(), "derived from used.idx in guest memory");
        assertEquals(1, restored.position().inuse(), "derived: last_avail_idx - used.idx");
        assertEquals(1, restored.shadowAvailIdx(), "derived from avail.idx");
        assertFalse(restored.signalledUsedValid());

        device2.publishUsed(h1, 0);
        assertTrue(device2.take(chain));
        assertEquals(h2, chain.headId());
        device2.publishUsed(chain, 4);
        int[] ids = new int[8];
        int[] lens = new int[8];
        assertEquals(3, driver2.collectUsed(ids, lens, 8));
        assertArrayEquals(new int[] {h0, h1, h2}, java.util.Arrays.copyOf(ids, 3));
        assertEquals(8, driver2.freeDescriptors());
        int h3 = driver2.add(new long[] {SplitRig.BUFFERS}, new int[] {8}, 1, 0);
        assertTrue(device2.take(chain));
        assertEquals(h3, chain.headId());
    }

    @Test
    void classicRestoreRefusesAnAvailIndexJumpThatEarlyRestoreAccepts() {
        rig = new SplitRig(5, 8, false);
        SplitDriverQueue driver = rig.driver(0);
        SplitDeviceQueue device = rig.device(driver);
        rig.setAvailIdx(100); // the guest ran on while its memory was being copied
        QueueState state = rig.state().withPosition(QueuePosition.split(10, 10, 0));
        VirtqueueException e = assertThrows(VirtqueueException.class,
                () -> new SplitDeviceQueue(5, rig.memory, state, RestoreMode.CLASSIC));
        assertEquals(VirtqueueException.Rule.INDEX_JUMP, e.rule());
        assertEquals("avail.idx", e.field());
        assertTrue(e.getMessage().contains("virtqueue 5") && e.getMessage().contains("avail.idx 100")
                && e.getMessage().contains("90 ahead of our 10"), e.getMessage());
        assertThrows(VirtqueueException.class, () -> device.restoreState(state, RestoreMode.CLASSIC));
        assertTrue(device.isBroken());

        // Early: accepted, derived fields reset from last_avail_idx alone.
        device.restoreState(state.withPosition(QueuePosition.split(10, 3, 5)), RestoreMode.EARLY);
        assertFalse(device.isBroken());
        QueueState early = device.saveState();
        assertEquals(10, early.position().lastAvailIdx());
        assertEquals(10, early.position().usedIdx());
        assertEquals(10, early.shadowAvailIdx());
        assertEquals(0, early.position().inuse());
        // The final indices arrive: resync.
        device.resync(QueuePosition.split(98, 97, 1));
        QueueState synced = device.saveState();
        assertEquals(98, synced.position().lastAvailIdx());
        assertEquals(98, synced.shadowAvailIdx());
        assertEquals(97, synced.position().usedIdx());
        assertEquals(1, synced.position().inuse());
        assertFalse(synced.signalledUsedValid());
        // The next take refreshes from avail.idx 100: two chains pending, within the size.
        rig.writeDescriptor(rig.desc, 0, SplitRig.BUFFERS, 8, 0, 0);
        for (int slot = 98; slot < 100; slot++) {
            rig.slice(rig.avail + 4 + 2L * (slot & 7), 2).set(SplitRig.LE16, 0, (short) 0);
        }
        DescriptorChain chain = device.newChain();
        assertTrue(device.take(chain));
        assertTrue(device.take(chain));
        assertFalse(device.take(chain));
    }

    @Test
    void resyncChecksRangesAndManyQueuesResyncAtOnce() {
        rig = new SplitRig(0, 8, false);
        SplitDriverQueue driver = rig.driver(0);
        DeviceQueue[] queues = {rig.device(driver), rig.device(driver)};
        QueueResync resync = QueueResync.of(List.of(queues));
        resync.resync(List.of(QueuePosition.split(7, 5, 2), QueuePosition.split(1, 1, 0)));
        assertEquals(7, queues[0].saveState().position().lastAvailIdx());
        assertEquals(1, queues[1].saveState().position().usedIdx());
        VirtqueueException e = assertThrows(VirtqueueException.class,
                () -> queues[0].resync(QueuePosition.split(70000, 0, 0)));
        assertEquals("lastAvailIdx", e.field());
        e = assertThrows(VirtqueueException.class, () -> queues[1].resync(QueuePosition.split(100, 0, 0)));
        assertEquals("usedIdx", e.field());
        e = assertThrows(VirtqueueException.class, () -> queues[1].resync(QueuePosition.split(1, 0, 9)));
        assertEquals("inuse", e.field());
        assertThrows(IllegalArgumentException.class,
                () -> resync.resync(List.of(QueuePosition.split(0, 0, 0))));
    }

    @Test
    void restoreValidatesEveryFieldByName() {
        rig = new SplitRig(4, 8, true);
        rig.driver(0);
        QueueState good = rig.state();
        QueueGeometry g = good.geometry();
        assertField("size", QueueState.fresh(new QueueGeometry(12, g.descTableAddress(), g.driverAreaAddress(),
                g.deviceAreaAddress(), true, false)));
        assertField("size", QueueState.fresh(new QueueGeometry(65536, g.descTableAddress(), g.driverAreaAddress(),
                g.deviceAreaAddress(), true, false)));
        assertField("descTableAddress", split(8, 0x1008, rig.avail, rig.used));
        assertField("driverAreaAddress", split(8, rig.desc, rig.avail + 1, rig.used));
        assertField("deviceAreaAddress", split(8, rig.desc, rig.avail, rig.used + 2));
        assertField("descTableAddress", split(8, SplitRig.HOLE, rig.avail, rig.used));
        assertField("deviceAreaAddress", split(8, rig.desc, rig.avail, rig.ringRegionSize - 16));
        assertField("lastAvailIdx", good.withPosition(QueuePosition.split(65536, 0, 0)));
        assertField("usedIdx", good.withPosition(QueuePosition.split(0, -1, 0)));
        assertField("inuse", good.withPosition(QueuePosition.split(0, 0, 9)));
        assertField("lastAvailWrapCounter", good.withPosition(new QueuePosition(false, 0, true, 0, false, 0)));
        assertField("usedIdx", good.withPosition(QueuePosition.split(40, 0, 0)));
        assertField("packed", QueueState.fresh(QueueGeometry.packed(8, rig.desc, rig.avail, rig.used, true)));
        assertField("position.packed", new QueueState(g, QueuePosition.initial(true), 0, false));
        // Derived inuse too big: used.idx in memory (0) far behind last_avail_idx, whatever the state says.
        rig.setAvailIdx(40);
        assertField("inuse", good.withPosition(QueuePosition.split(40, 40, 0)));
    }

    private static QueueState split(int size, long desc, long avail, long used) {
        return QueueState.fresh(QueueGeometry.split(size, desc, avail, used, true));
    }

    private void assertField(String field, QueueState state) {
        VirtqueueException e = assertThrows(VirtqueueException.class,
                () -> new SplitDeviceQueue(4, rig.memory, state, RestoreMode.CLASSIC));
        assertEquals(VirtqueueException.Rule.INVALID_STATE, e.rule());
        assertEquals(field, e.field(), e.getMessage());
        assertTrue(e.getMessage().startsWith("virtqueue 4: invalid queue state: " + field), e.getMessage());
    }

    @Test
    void hostMemoryThatCannotBeAccessedAtomicallyIsRefused() {
        byte[] heap = new byte[0x10000];
        GuestMemory heapMemory = GuestMemory.of(java.util.List.of(new GuestRegion(0, MemorySegment.ofArray(heap))));
        VirtqueueException e = assertThrows(VirtqueueException.class, () -> new SplitDeviceQueue(0, heapMemory,
                QueueState.fresh(QueueGeometry.split(8, 0x1000, 0x2000, 0x3000, false)), RestoreMode.CLASSIC));
        assertEquals("driverAreaAddress", e.field());
        assertNotEquals(-1, e.getMessage().indexOf("aligned"));
    }
}

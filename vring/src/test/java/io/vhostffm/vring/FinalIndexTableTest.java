package io.vhostffm.vring;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** The many-queue resync over a {@link FinalIndexTable}: same result as one resync per queue, same checks. */
class FinalIndexTableTest {
    private SplitRig rig;
    private final java.util.List<PackedFixture> fixtures = new java.util.ArrayList<>();

    @AfterEach
    void close() {
        if (rig != null) {
            rig.close();
        }
        fixtures.forEach(PackedFixture::close);
    }

    private PackedFixture packed(int size, boolean eventIdx) {
        PackedFixture f = new PackedFixture(size, eventIdx);
        fixtures.add(f);
        return f;
    }

    @Test
    void tableKeepsEveryField() {
        FinalIndices a = new FinalIndices(3, true, 2, false, 1);
        FinalIndices b = new FinalIndices(9, false, 8, true, 0);
        FinalIndexTable table = FinalIndexTable.of(a, b);
        assertEquals(2, table.queues());
        assertEquals(a, table.get(0));
        assertEquals(b, table.get(1));
    }

    @Test
    void splitResyncAllMatchesOneResyncPerQueueAndEncodesTheBases() {
        rig = new SplitRig(0, 8, true);
        SplitDriverQueue driver = rig.driver(0);
        SplitDeviceQueue[] batch = {rig.device(driver), rig.device(driver), rig.device(driver)};
        SplitDeviceQueue[] single = {rig.device(driver), rig.device(driver), rig.device(driver)};
        FinalIndices[] finals = {FinalIndices.split(7, 5, 2), FinalIndices.split(65535, 65530, 5),
                FinalIndices.split(3, 65533, 8)}; // the last one wraps: 6 behind
        int[] bases = new int[3];
        SplitDeviceQueue.resyncAll(batch, FinalIndexTable.of(finals), bases);
        for (int q = 0; q < 3; q++) {
            single[q].resync(finals[q]);
            assertEquals(single[q].saveState(), batch[q].saveState(), "queue " + q);
        }
        assertArrayEquals(new int[] {7, 65535, 3}, bases);
    }

    @Test
    void splitResyncAllRejectsABadIndexNamingQueueAndField() {
        rig = new SplitRig(0, 8, false);
        SplitDriverQueue driver = rig.driver(0);
        SplitDeviceQueue[] queues = {rig.device(driver), rig.device(driver)};
        int[] bases = new int[2];
        String[][] cases = {{"70000", "0", "0", "lastAvailIdx"}, {"5", "-1", "0", "usedIdx"},
                {"1", "0", "9", "inuse"}, {"100", "0", "0", "usedIdx"}, {"0", "0", "-1", "inuse"}};
        for (String[] c : cases) {
            FinalIndexTable table = FinalIndexTable.of(FinalIndices.split(4, 4, 0),
                    FinalIndices.split(Integer.parseInt(c[0]), Integer.parseInt(c[1]), Integer.parseInt(c[2])));
            VirtqueueException e = assertThrows(VirtqueueException.class,
                    () -> SplitDeviceQueue.resyncAll(queues, table, bases));
            assertEquals(c[3], e.field(), String.join(",", c));
            assertEquals(queues[1].queueIndex(), e.queueIndex());
            assertEquals(4, queues[0].saveState().lastAvailIdx(), "the queue before the bad one is resynced");
        }
        assertThrows(IllegalArgumentException.class,
                () -> SplitDeviceQueue.resyncAll(queues, new FinalIndexTable(1), bases));
        assertThrows(IllegalArgumentException.class,
                () -> SplitDeviceQueue.resyncAll(queues, new FinalIndexTable(2), new int[1]));
    }

    @Test
    void packedResyncAllMatchesOneResyncPerQueueAndEncodesTheBases() {
        PackedFixture[] batch = {packed(16, true), packed(16, true)};
        PackedFixture[] single = {packed(16, true), packed(16, true)};
        FinalIndices[] finals = {new FinalIndices(4, false, 2, true, 1), new FinalIndices(15, true, 15, false, 16)};
        int[] bases = new int[2];
        PackedDeviceQueue.resyncAll(new PackedDeviceQueue[] {batch[0].device, batch[1].device},
                FinalIndexTable.of(finals), bases);
        for (int q = 0; q < 2; q++) {
            single[q].device.resync(finals[q]);
            assertEquals(single[q].device.saveState(), batch[q].device.saveState(), "queue " + q);
            FinalIndices f = finals[q];
            assertEquals(VringBase.encodePacked(f.lastAvailIdx(), f.lastAvailWrapCounter(), f.usedIdx(),
                    f.usedWrapCounter()), bases[q], "queue " + q + " base");
        }
        assertTrue(batch[1].device.lastAvailWrapCounter());
    }

    @Test
    void packedResyncAllRejectsABadIndexNamingQueueAndField() {
        PackedFixture f = packed(16, false);
        PackedDeviceQueue[] queues = {f.device};
        int[] bases = new int[1];
        FinalIndices[] bad = {new FinalIndices(16, true, 0, true, 0), new FinalIndices(-1, true, 0, true, 0),
                new FinalIndices(0, true, -1, true, 0), new FinalIndices(0, true, 16, true, 0),
                new FinalIndices(0, true, 0, true, 17), new FinalIndices(0, true, 0, true, -1)};
        String[] fields = {"lastAvailIdx", "lastAvailIdx", "usedIdx", "usedIdx", "inuse", "inuse"};
        for (int i = 0; i < bad.length; i++) {
            FinalIndexTable table = FinalIndexTable.of(bad[i]);
            VirtqueueException e = assertThrows(VirtqueueException.class,
                    () -> PackedDeviceQueue.resyncAll(queues, table, bases));
            assertEquals(fields[i], e.field(), bad[i].toString());
            assertEquals(f.device.queueIndex(), e.queueIndex());
        }
    }
}

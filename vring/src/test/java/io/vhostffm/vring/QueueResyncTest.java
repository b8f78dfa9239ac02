package io.vhostffm.vring;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The many-queue resync ({@link QueueResync}, straight over the decoded positions): same result as one
 * resync per queue, same checks, and the vhost vring bases of {@link VhostVringBase#encodeKernel}.
 */
class QueueResyncTest {
    private SplitRig rig;
    private final List<PackedFixture> fixtures = new ArrayList<>();

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
    void splitResyncMatchesOneResyncPerQueueAndEncodesTheBases() {
        rig = new SplitRig(0, 8, true);
        SplitDriverQueue driver = rig.driver(0);
        List<SplitDeviceQueue> batch = List.of(rig.device(driver), rig.device(driver), rig.device(driver));
        SplitDeviceQueue[] single = {rig.device(driver), rig.device(driver), rig.device(driver)};
        List<QueuePosition> finals = List.of(QueuePosition.split(7, 5, 2), QueuePosition.split(65535, 65530, 5),
                QueuePosition.split(3, 65533, 8)); // the last one wraps: 6 behind
        QueueResync resync = QueueResync.of(batch);
        int[] bases = resync.resync(finals);
        for (int q = 0; q < 3; q++) {
            single[q].resync(finals.get(q));
            assertEquals(single[q].saveState(), batch.get(q).saveState(), "queue " + q);
            assertEquals(finals.get(q), batch.get(q).saveState().position(), "queue " + q);
            assertEquals(VhostVringBase.encodeKernel(finals.get(q)), bases[q], "queue " + q + " base");
        }
        assertArrayEquals(new int[] {7, 65535, 3}, bases);
        assertSame(bases, resync.resync(finals), "the bases array is reused: nothing allocated per resync");
    }

    @Test
    void splitResyncRejectsABadIndexNamingQueueAndField() {
        rig = new SplitRig(0, 8, false);
        SplitDriverQueue driver = rig.driver(0);
        List<SplitDeviceQueue> queues = List.of(rig.device(driver), rig.device(driver));
        QueueResync resync = QueueResync.of(queues);
        String[][] cases = {{"70000", "0", "0", "lastAvailIdx"}, {"5", "-1", "0", "usedIdx"},
                {"1", "0", "9", "inuse"}, {"100", "0", "0", "usedIdx"}, {"0", "0", "-1", "inuse"}};
        for (String[] c : cases) {
            List<QueuePosition> finals = List.of(QueuePosition.split(4, 4, 0),
                    QueuePosition.split(Integer.parseInt(c[0]), Integer.parseInt(c[1]), Integer.parseInt(c[2])));
            VirtqueueException e = assertThrows(VirtqueueException.class, () -> resync.resync(finals));
            assertEquals(c[3], e.field(), String.join(",", c));
            assertEquals(queues.get(1).queueIndex(), e.queueIndex());
            VirtqueueException checked = assertThrows(VirtqueueException.class,
                    () -> finals.get(1).check(queues.get(1).queueIndex(), queues.get(1).size()));
            assertEquals(checked.getMessage(), e.getMessage(), "the words of QueuePosition.check");
            assertEquals(4, queues.get(0).saveState().position().lastAvailIdx(),
                    "the queue before the bad one is resynced");
        }
        VirtqueueException wrap = assertThrows(VirtqueueException.class, () -> resync.resync(List.of(
                QueuePosition.split(4, 4, 0), new QueuePosition(false, 1, true, 1, false, 0))));
        assertEquals("lastAvailWrapCounter", wrap.field());
        VirtqueueException format = assertThrows(VirtqueueException.class, () -> resync.resync(List.of(
                QueuePosition.split(4, 4, 0), QueuePosition.packed(1, true, 1, true, 0))));
        assertEquals("position.packed", format.field());
        assertThrows(IllegalArgumentException.class, () -> resync.resync(List.of(QueuePosition.split(0, 0, 0))));
    }

    @Test
    void packedResyncMatchesOneResyncPerQueueAndEncodesTheBases() {
        PackedFixture[] batch = {packed(16, true), packed(16, true)};
        PackedFixture[] single = {packed(16, true), packed(16, true)};
        List<QueuePosition> finals = List.of(QueuePosition.packed(4, false, 2, true, 1),
                QueuePosition.packed(15, true, 15, false, 16));
        QueueResync resync = QueueResync.of(List.of(batch[0].device, batch[1].device));
        assertTrue(resync.isPacked());
        int[] bases = resync.resync(finals);
        for (int q = 0; q < 2; q++) {
            single[q].device.resync(finals.get(q));
            assertEquals(single[q].device.saveState(), batch[q].device.saveState(), "queue " + q);
            QueuePosition f = finals.get(q);
            assertEquals(VhostVringBase.encodeKernelPacked(f.lastAvailIdx(), f.lastAvailWrapCounter(), f.usedIdx(),
                    f.usedWrapCounter()), bases[q], "queue " + q + " base");
        }
        assertTrue(batch[1].device.lastAvailWrapCounter());
    }

    @Test
    void packedResyncRejectsABadIndexNamingQueueAndField() {
        PackedFixture f = packed(16, false);
        QueueResync resync = QueueResync.of(List.of(f.device));
        QueuePosition[] bad = {QueuePosition.packed(16, true, 0, true, 0), QueuePosition.packed(-1, true, 0, true, 0),
                QueuePosition.packed(0, true, -1, true, 0), QueuePosition.packed(0, true, 16, true, 0),
                QueuePosition.packed(0, true, 0, true, 17), QueuePosition.packed(0, true, 0, true, -1),
                QueuePosition.split(0, 0, 0)};
        String[] fields = {"lastAvailIdx", "lastAvailIdx", "usedIdx", "usedIdx", "inuse", "inuse", "position.packed"};
        for (int i = 0; i < bad.length; i++) {
            List<QueuePosition> finals = List.of(bad[i]);
            VirtqueueException e = assertThrows(VirtqueueException.class, () -> resync.resync(finals));
            assertEquals(fields[i], e.field(), bad[i].toString());
            assertEquals(f.device.queueIndex(), e.queueIndex());
            if (bad[i].packed()) {
                QueuePosition position = bad[i];
                VirtqueueException checked = assertThrows(VirtqueueException.class,
                        () -> position.check(f.device.queueIndex(), f.device.size()));
                assertEquals(checked.getMessage(), e.getMessage(), "the words of QueuePosition.check");
            }
        }
    }

    @Test
    void aResyncCoversOneRingFormat() {
        rig = new SplitRig(0, 8, false);
        PackedFixture f = packed(16, false);
        List<DeviceQueue> mixed = List.of(rig.device(rig.driver(0)), f.device);
        assertThrows(IllegalArgumentException.class, () -> QueueResync.of(mixed));
        assertEquals(0, QueueResync.of(List.of()).resync(List.of()).length);
    }
}

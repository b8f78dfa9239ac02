package io.vhostffm.vring;

import static io.vhostffm.vring.PackedFixture.DEVICE_AREA;
import static io.vhostffm.vring.PackedFixture.DRIVER_AREA;
import static io.vhostffm.vring.PackedFixture.HOLE;
import static io.vhostffm.vring.PackedFixture.PAYLOAD;
import static io.vhostffm.vring.PackedFixture.RING;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.vring.VirtqueueException.Rule;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Packed queue state: save, restore (classic and early), vring base, resync, and the driver's state. */
class PackedStateTest {

    /** Drives {@code n} single-descriptor buffers through the ring, all returned. */
    private static void traffic(PackedFixture f, PackedDeviceQueue device, int n) {
        DescriptorChain chain = device.newChain();
        for (int i = 0; i < n; i++) {
            int id = f.driver.add(new long[] {PAYLOAD, PAYLOAD + 64}, new int[] {8, 8}, 1, i % 2);
            assertTrue(id >= 0);
            assertTrue(device.take(chain));
            device.publishUsed(chain, 0);
            assertEquals(id, f.poll());
        }
    }

    @Test
    void saveAndRestoreWithAChainInFlight() {
        PackedFixture f = new PackedFixture(16, true);
        traffic(f, f.device, 21);
        int id = f.driver.add(new long[] {PAYLOAD, PAYLOAD + 64, PAYLOAD + 128}, new int[] {8, 8, 8}, 1, 2);
        DescriptorChain chain = f.device.newChain();
        assertTrue(f.device.take(chain));
        QueueState saved = f.device.saveState();
        assertTrue(saved.geometry().packed());
        assertEquals(1, saved.position().inuse());
        assertEquals(f.device.lastAvailIdx(), saved.position().lastAvailIdx());
        assertEquals(f.device.lastAvailWrapCounter(), saved.position().lastAvailWrapCounter());
        assertEquals(f.device.usedIdx(), saved.position().usedIdx());
        assertEquals(f.device.usedWrapCounter(), saved.position().usedWrapCounter());

        PackedDeviceQueue restored = new PackedDeviceQueue(7, f.memory, saved, RestoreMode.CLASSIC);
        assertEquals(1, restored.inuse());
        assertFalse(restored.signalledUsedValid());
        // The restored queue does not know the chain's length; the device that owns it says.
        assertThrows(IllegalStateException.class, () -> restored.publishUsed(id, 8));
        restored.publishUsedRestored(id, 3, 16);
        assertEquals(id, f.poll());
        assertEquals(16, f.lastLength);
        assertTrue(restored.needsNotification()); // first decision after restore
        traffic(f, restored, 40);
    }

    @Test
    void earlyRestoreThenResyncFromTheVringBase() {
        PackedFixture f = new PackedFixture(16, true);
        traffic(f, f.device, 5);
        QueueState early = f.device.saveState(); // sent during pre-copy
        traffic(f, f.device, 30); // the guest keeps running on the source: two laps more
        QueueState last = f.device.saveState();

        // vhost's encoding of the final positions, as GET_VRING_BASE returns it.
        int num = VhostVringBase.encodeKernel(last.position());
        assertEquals(last.position().lastAvailIdx() | (last.position().lastAvailWrapCounter() ? 1 << 15 : 0)
                | last.position().usedIdx() << 16 | (last.position().usedWrapCounter() ? 1 << 31 : 0), num);
        assertEquals(last.position(), VhostVringBase.decodeKernelPacked(num, last.position().inuse()));

        PackedDeviceQueue destination = new PackedDeviceQueue(7, f.memory, early, RestoreMode.EARLY);
        assertEquals(early.position().lastAvailIdx(), destination.lastAvailIdx());
        destination.resync(VhostVringBase.decodeKernelPacked(num, 0));
        assertEquals(last.position().lastAvailIdx(), destination.lastAvailIdx());
        assertEquals(last.position().lastAvailWrapCounter(), destination.lastAvailWrapCounter());
        assertEquals(last.position().usedIdx(), destination.usedIdx());
        assertEquals(last.position().usedWrapCounter(), destination.usedWrapCounter());
        QueueState after = destination.saveState();
        assertEquals(after.position().lastAvailIdx(), after.shadowAvailIdx());
        assertFalse(after.signalledUsedValid());
        // The destination carries on with the same guest.
        traffic(f, destination, 40);
    }

    @Test
    void earlyRestoreResetsDerivedFields() {
        PackedFixture f = new PackedFixture(16, false);
        // Used 3 positions behind last avail with inuse 0: inconsistent, as early loads see it.
        QueueState stale = f.state.withPosition(QueuePosition.packed(5, false, 2, false, 0));
        assertEquals(Rule.INVALID_STATE, assertThrows(VirtqueueException.class,
                () -> new PackedDeviceQueue(7, f.memory, stale, RestoreMode.CLASSIC)).rule());
        PackedDeviceQueue q = new PackedDeviceQueue(7, f.memory, stale, RestoreMode.EARLY);
        assertEquals(5, q.usedIdx());
        assertFalse(q.usedWrapCounter());
        assertEquals(0, q.inuse());
        assertEquals(5, q.saveState().shadowAvailIdx());
    }

    private static VirtqueueException refused(PackedFixture f, QueueState state, String field) {
        PackedDeviceQueue q = new PackedDeviceQueue(7, f.memory, f.state, RestoreMode.CLASSIC);
        VirtqueueException e = assertThrows(VirtqueueException.class, () -> q.restoreState(state, RestoreMode.CLASSIC));
        assertEquals(Rule.INVALID_STATE, e.rule(), e.getMessage());
        assertEquals(field, e.field(), e.getMessage());
        assertTrue(e.getMessage().contains("virtqueue 7"), e.getMessage());
        assertTrue(q.isBroken());
        assertEquals(Rule.QUEUE_BROKEN, assertThrows(VirtqueueException.class, () -> q.take(q.newChain())).rule());
        return e;
    }

    private static QueueState packed(int size, long desc, long driver, long device) {
        return QueueState.fresh(QueueGeometry.packed(size, desc, driver, device, false));
    }

    @Test
    void restoreRefusesStatesThatDoNotHoldUp() {
        PackedFixture f = new PackedFixture(16, false);
        refused(f, QueueState.fresh(QueueGeometry.split(16, RING, DRIVER_AREA, DEVICE_AREA, false)), "packed");
        refused(f, packed(0, RING, DRIVER_AREA, DEVICE_AREA), "size");
        refused(f, packed(32769, RING, DRIVER_AREA, DEVICE_AREA), "size");
        refused(f, packed(16, RING + 8, DRIVER_AREA, DEVICE_AREA), "descTableAddress");
        refused(f, packed(16, RING, DRIVER_AREA + 2, DEVICE_AREA), "driverAreaAddress");
        refused(f, packed(16, RING, DRIVER_AREA, DEVICE_AREA + 1), "deviceAreaAddress");
        refused(f, packed(16, HOLE, DRIVER_AREA, DEVICE_AREA), "descTableAddress");
        refused(f, packed(16, PackedFixture.LOW_SIZE - 16 * 8, DRIVER_AREA, DEVICE_AREA), "descTableAddress");
        refused(f, f.state.withPosition(QueuePosition.packed(16, true, 0, true, 0)), "lastAvailIdx");
        refused(f, f.state.withPosition(QueuePosition.packed(0, true, 16, true, 0)), "usedIdx");
        // Used ahead of last avail (it may only trail, by at most the size).
        refused(f, f.state.withPosition(QueuePosition.packed(2, true, 3, true, 1)), "usedIdx");
        refused(f, f.state.withPosition(QueuePosition.packed(2, false, 3, false, 1)), "usedIdx");
        // More chains in use than descriptors between used and last avail, or none for them.
        refused(f, f.state.withPosition(QueuePosition.packed(3, true, 1, true, 3)), "inuse");
        refused(f, f.state.withPosition(QueuePosition.packed(3, true, 1, true, 0)), "inuse");
        // Fine: a full ring in flight across the ring end.
        new PackedDeviceQueue(7, f.memory, f.state.withPosition(QueuePosition.packed(3, false, 3, true, 16)), RestoreMode.CLASSIC);
    }

    @Test
    void restoreRefusesARingMappedAtAMisalignedHostAddress() {
        Arena arena = Arena.ofAuto();
        MemorySegment backing = arena.allocate(0x10000 + 8, 4096);
        // Guest address 0 maps to a host address 8 bytes past a page: guest-aligned, host-misaligned by 8.
        GuestMemory memory = GuestMemory.of(List.of(new GuestRegion(0, backing.asSlice(8))));
        QueueState state = QueueState.fresh(QueueGeometry.packed(16, 0x1000, 0x800, 0x900, false));
        PackedDeviceQueue ok = new PackedDeviceQueue(0, GuestMemory.of(List.of(new GuestRegion(0, backing))), state,
                RestoreMode.CLASSIC);
        assertFalse(ok.isBroken());
        VirtqueueException e = assertThrows(VirtqueueException.class,
                () -> new PackedDeviceQueue(0, memory, state, RestoreMode.CLASSIC));
        assertEquals("descTableAddress", e.field());
        assertTrue(e.getMessage().contains("host"), e.getMessage());
    }

    @Test
    void resyncChecksRanges() {
        PackedFixture f = new PackedFixture(16, false);
        assertEquals("lastAvailIdx", assertThrows(VirtqueueException.class,
                () -> f.device.resync(QueuePosition.packed(16, true, 0, true, 0))).field());
        assertEquals("usedIdx", assertThrows(VirtqueueException.class,
                () -> f.device.resync(QueuePosition.packed(0, true, -1, true, 0))).field());
        assertEquals("inuse", assertThrows(VirtqueueException.class,
                () -> f.device.resync(QueuePosition.packed(0, true, 0, true, 17))).field());
        // Many queues at once.
        PackedFixture g = new PackedFixture(16, false);
        QueueResync.of(List.of(f.device, g.device)).resync(
                List.of(QueuePosition.packed(4, false, 4, false, 0), QueuePosition.packed(9, true, 9, true, 0)));
        assertEquals(4, f.device.lastAvailIdx());
        assertFalse(f.device.usedWrapCounter());
        assertEquals(9, g.device.usedIdx());
    }

    @Test
    void driverStateCarriesAGuestAcrossARestore() {
        PackedFixture f = new PackedFixture(8, false, 6, true);
        DescriptorChain chain = f.device.newChain();
        int a = f.driver.add(new long[] {PAYLOAD, PAYLOAD}, new int[] {8, 8}, 1, 1);
        int b = f.driver.addIndirect(PackedFixture.TABLES, new long[] {PAYLOAD}, new int[] {8}, 0, 1);
        int c = f.driver.add(new long[] {PAYLOAD, PAYLOAD, PAYLOAD}, new int[] {8, 8, 8}, 0, 3);
        DriverState saved = f.driver.saveState();
        assertTrue(saved.packed());
        assertEquals(2, saved.freeCount());
        assertEquals(2, saved.descriptorsPerId()[a]);
        assertEquals(1, saved.descriptorsPerId()[b]);
        assertEquals(3, saved.descriptorsPerId()[c]);

        PackedDriverQueue moved = new PackedDriverQueue(7, f.memory, saved);
        assertEquals(2, moved.freeDescriptors());
        for (int i = 0; i < 3; i++) {
            assertTrue(f.device.take(chain));
        }
        f.device.publishUsed(c, 24);
        f.device.publishUsed(a, 8);
        f.device.publishUsed(b, 8);
        int[] ids = new int[4];
        int[] lens = new int[4];
        assertEquals(3, moved.collectUsed(ids, lens, 4));
        assertEquals(c, ids[0]);
        assertEquals(a, ids[1]);
        assertEquals(b, ids[2]);
        assertEquals(8, moved.freeDescriptors());
        // The next id handed out is the one the saved state named.
        PackedDriverQueue again = new PackedDriverQueue(7, f.memory, moved.saveState());
        int next = again.saveState().freeHead();
        assertEquals(next, again.add(new long[] {PAYLOAD}, new int[] {8}, 1, 0));
    }

    @Test
    void driverRestoreRefusesInconsistentState() {
        PackedFixture f = new PackedFixture(8, false);
        f.driver.add(new long[] {PAYLOAD}, new int[] {8}, 1, 0);
        DriverState s = f.driver.saveState();
        int[] perId = s.descriptorsPerId();
        assertThrows(IllegalArgumentException.class, () -> new PackedDriverQueue(7, f.memory, new DriverState(
                s.size(), s.descTableAddress(), s.driverAreaAddress(), s.deviceAreaAddress(), false, true,
                s.availIdx(), s.availWrapCounter(), s.lastUsedIdx(), s.usedWrapCounter(), s.freeHead(),
                s.freeCount() + 1, 0, true, perId)));
        perId[3] = 9;
        assertThrows(IllegalArgumentException.class, () -> new PackedDriverQueue(7, f.memory, new DriverState(
                s.size(), s.descTableAddress(), s.driverAreaAddress(), s.deviceAreaAddress(), false, true,
                s.availIdx(), s.availWrapCounter(), s.lastUsedIdx(), s.usedWrapCounter(), s.freeHead(),
                s.freeCount(), 0, true, perId)));
        assertThrows(IllegalArgumentException.class, () -> new PackedDriverQueue(7, f.memory, new DriverState(
                s.size(), s.descTableAddress(), s.driverAreaAddress(), s.deviceAreaAddress(), false, true,
                s.availIdx() + 1, s.availWrapCounter(), s.lastUsedIdx(), s.usedWrapCounter(), s.freeHead(),
                s.freeCount(), 0, true, s.descriptorsPerId())));
    }
}

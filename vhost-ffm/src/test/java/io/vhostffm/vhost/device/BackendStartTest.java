package io.vhostffm.vhost.device;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.FileDescriptor;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.MemfdGuestMemory.RegionSpec;
import io.vhostffm.vring.QueuePosition;
import io.vhostffm.vring.QueueGeometry;
import io.vhostffm.vring.QueueState;
import io.vhostffm.vring.RestoreMode;
import io.vhostffm.vring.VirtqueueException;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The shape checks of the backend contract's plain data (real eventfds and memfd memory). */
class BackendStartTest {

    private static List<QueueBinding> bindings(int count, EventFd kick, EventFd call) {
        List<QueueBinding> list = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            list.add(new QueueBinding(i, QueueState.fresh(QueueGeometry.split(256, 0x4000L * i, 0x4000L * i + 0x1000, 0x4000L * i + 0x2000, true)),
                    kick, call));
        }
        return list;
    }

    @Test
    void aStartIsWholePairsInVirtqueueOrder() throws Exception {
        try (MemfdGuestMemory memory = MemfdGuestMemory.create("bs", List.of(new RegionSpec(0, 0x100000)));
             EventFd kick = EventFd.create(); EventFd call = EventFd.create()) {
            BackendListener listener = (q, reason) -> {};
            BackendStart start = new BackendStart(memory, 0, bindings(4, kick, call), 1, 0, null, listener);
            assertEquals(2, start.pairs());
            assertTrue(start.queues().get(2).isRx());
            assertEquals(1, start.queues().get(3).pair());

            var odd = assertThrows(IllegalArgumentException.class,
                    () -> new BackendStart(memory, 0, bindings(3, kick, call), 1, 0, null, listener));
            assertTrue(odd.getMessage().contains("whole queue pairs"), odd.getMessage());
            List<QueueBinding> swapped = new ArrayList<>(bindings(2, kick, call));
            java.util.Collections.swap(swapped, 0, 1);
            assertThrows(IllegalArgumentException.class, () -> new BackendStart(memory, 0, swapped, 1, 0, null, listener));
            assertThrows(IllegalArgumentException.class,
                    () -> new BackendStart(memory, 0, bindings(2, kick, call), 2, 0, null, listener));
            assertThrows(IllegalArgumentException.class,
                    () -> new BackendStart(memory, 0, bindings(2, kick, call), 0, 0, null, listener));

            List<QueuePosition> moved = start.queues().stream().map(q -> QueuePosition.split(7, 5, 2)).toList();
            BackendStart resumed = start.withPositions(moved);
            assertEquals(7, resumed.queues().get(3).state().position().lastAvailIdx());
            assertEquals(moved, resumed.positions());
            assertEquals(start.queues().get(3).state().geometry(), resumed.queues().get(3).state().geometry(),
                    "same rings");
            assertSame(kick, resumed.queues().get(3).kick());
            assertThrows(IllegalArgumentException.class, () -> start.withPositions(moved.subList(0, 2)));
        }
    }

    @Test
    void aTransferCarriesAsManyFdsAsWereSent() throws Exception {
        try (EventFd a = EventFd.create(); EventFd b = EventFd.create()) {
            BackendTransfer sent = new BackendTransfer(BackendTransfer.KIND_TAP, "tap0", 12, List.of(a.fd(), b.fd()));
            var wrong = assertThrows(IllegalArgumentException.class, () -> sent.withReceivedFds(List.of(a.fd())));
            assertTrue(wrong.getMessage().contains("1 descriptors received, 2 were sent"), wrong.getMessage());
            List<FileDescriptor> received = List.of(b.fd(), a.fd());
            assertEquals(received, sent.withReceivedFds(received).fds());
            assertThrows(IllegalArgumentException.class, () -> new BackendTransfer("tap", "tap0", 12, List.of()));
        }
    }

    @Test
    void deviceQueuesOpensTheFormatTheStateNamesAndRefusesABadStateNamingTheField() throws Exception {
        try (MemfdGuestMemory memory = MemfdGuestMemory.create("dq", List.of(new RegionSpec(0, 0x10000)))) {
            QueueState outside = QueueState.fresh(QueueGeometry.split(256, 0x20000, 0x1000, 0x2000, true));
            VirtqueueException e = assertThrows(VirtqueueException.class,
                    () -> DeviceQueues.open(4, memory, outside, RestoreMode.CLASSIC));
            assertTrue(e.getMessage().contains("virtqueue 4") && e.getMessage().contains("descTableAddress"), e.getMessage());
            QueueState packed = QueueState.fresh(QueueGeometry.packed(256, 0, 0x1000, 0x2000, true));
            var packedQueue = DeviceQueues.open(4, memory, packed, RestoreMode.CLASSIC);
            assertTrue(packedQueue.isPacked());
            assertTrue(packedQueue instanceof io.vhostffm.vring.PackedDeviceQueue);
            var splitQueue = DeviceQueues.open(4, memory, QueueState.fresh(QueueGeometry.split(256, 0, 0x1000, 0x2000, true)), RestoreMode.CLASSIC);
            assertTrue(splitQueue instanceof io.vhostffm.vring.SplitDeviceQueue);
            QueueState packedOutside = QueueState.fresh(QueueGeometry.packed(256, 0x20000, 0x1000, 0x2000, true));
            VirtqueueException p = assertThrows(VirtqueueException.class,
                    () -> DeviceQueues.open(5, memory, packedOutside, RestoreMode.CLASSIC));
            assertTrue(p.getMessage().contains("virtqueue 5"), p.getMessage());
        }
    }
}

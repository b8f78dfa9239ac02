package io.vhostffm.testkit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.api.Test;

/** The ledger sees what a leak would leave: a descriptor, a library thread, a memfd mapping. */
class ResourceLedgerTest {

    @Test
    void anEventFdLeftOpenIsNamedWithItsCounts() throws Exception {
        ResourceLedger.Snapshot before = ResourceLedger.take();
        try (EventFd leaked = EventFd.create()) {
            ResourceLedger.Snapshot after = ResourceLedger.take();
            assertEquals(List.of(new ResourceLedger.Growth("eventfd descriptors",
                    before.descriptors(OpenDescriptors.Kind.EVENTFD), before.descriptors(OpenDescriptors.Kind.EVENTFD) + 1)),
                    ResourceLedger.growth(before, after));
            AssertionError e = assertThrows(AssertionError.class, () -> ResourceLedger.requireFlat("opening", before, after));
            assertTrue(e.getMessage().startsWith("opening leaks: [eventfd descriptors "), e.getMessage());
            assertTrue(e.getMessage().contains("anon_inode:[eventfd]"), e.getMessage());
        }
        ResourceLedger.requireFlat("open and close", before, ResourceLedger.take());
    }

    @Test
    void theTotalsMoveWithADescriptorAndAThread() throws Exception {
        ResourceLedger.Totals before = ResourceLedger.totals();
        CountDownLatch end = new CountDownLatch(1);
        Thread t;
        try (EventFd opened = EventFd.create()) {
            assertEquals(new ResourceLedger.Totals(before.descriptors() + 1, before.threads()), ResourceLedger.totals());
            t = Thread.ofPlatform().daemon().name("totals test").start(() -> {
                try {
                    end.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
            assertEquals(new ResourceLedger.Totals(before.descriptors() + 1, before.threads() + 1), ResourceLedger.totals());
        } finally {
            end.countDown();
        }
        t.join(10_000);
        assertEquals(before, ResourceLedger.totals(), "closed and ended: back where it was");
    }

    @Test
    void aLibraryThreadIsCountedByItsKind() throws Exception {
        assertEquals(ResourceLedger.ThreadKind.CONTROL_QUEUE, ResourceLedger.ThreadKind.of("virtio-net-ctrl-vq-2"));
        assertEquals(ResourceLedger.ThreadKind.USERSPACE_DATAPATH,
                ResourceLedger.ThreadKind.of("vhost-ffm userspace datapath pair 0 (tap vffk0 queue 0)"));
        assertEquals(ResourceLedger.ThreadKind.VHOST_NET_ERROR_WATCHER,
                ResourceLedger.ThreadKind.of("vhost-net-ring-errors vffk0"));
        assertEquals(ResourceLedger.ThreadKind.OTHER, ResourceLedger.ThreadKind.of("main"));
        ResourceLedger.Snapshot before = ResourceLedger.take();
        CountDownLatch end = new CountDownLatch(1);
        Thread t = Thread.ofPlatform().daemon().name("virtio-net-ctrl-vq-9").start(() -> {
            try {
                end.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        try {
            AssertionError e = assertThrows(AssertionError.class,
                    () -> ResourceLedger.requireFlat("starting", before, ResourceLedger.take()));
            assertTrue(e.getMessage().contains("control queue threads " + before.threads(ResourceLedger.ThreadKind.CONTROL_QUEUE)
                    + " -> " + (before.threads(ResourceLedger.ThreadKind.CONTROL_QUEUE) + 1)), e.getMessage());
            assertTrue(e.getMessage().contains("[virtio-net-ctrl-vq-9]"), e.getMessage());
        } finally {
            end.countDown();
            t.join(10_000);
        }
    }

    @Test
    void mappedGuestMemoryIsCountedInBytes() throws Exception {
        ResourceLedger.Snapshot before = ResourceLedger.take();
        try (MemfdGuestMemory memory = MemfdGuestMemory.create("ledger",
                List.of(new MemfdGuestMemory.RegionSpec(0, 0x10000)))) {
            ResourceLedger.Snapshot after = ResourceLedger.take();
            assertEquals(before.memfdMappings() + 1, after.memfdMappings());
            assertEquals(before.memfdMappedBytes() + 0x10000, after.memfdMappedBytes());
            assertTrue(ResourceLedger.growth(before, after).contains(new ResourceLedger.Growth("memfd mapped bytes",
                    before.memfdMappedBytes(), after.memfdMappedBytes())));
        }
        ResourceLedger.requireFlat("map and unmap", before, ResourceLedger.take());
    }
}

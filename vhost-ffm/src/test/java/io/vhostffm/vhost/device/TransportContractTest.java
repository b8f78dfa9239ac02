package io.vhostffm.vhost.device;

import static io.vhostffm.vhost.virtio.DeviceStatus.ACKNOWLEDGE;
import static io.vhostffm.vhost.virtio.DeviceStatus.DEVICE_NEEDS_RESET;
import static io.vhostffm.vhost.virtio.DeviceStatus.DRIVER;
import static io.vhostffm.vhost.virtio.DeviceStatus.DRIVER_OK;
import static io.vhostffm.vhost.virtio.DeviceStatus.FEATURES_OK;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.vhostffm.vhost.device.userspace.UserspaceNetBackend;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.MemfdGuestMemory.RegionSpec;
import io.vhostffm.vhost.os.TapDevice;
import io.vhostffm.vhost.virtio.VirtioDevice;
import io.vhostffm.vhost.virtio.VirtioDeviceListener;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vhost.virtio.VirtioTransportException;
import io.vhostffm.vhost.virtio.net.VirtioNetOptions;
import io.vhostffm.vring.RingAddresses;
import io.vhostffm.vring.SplitRingLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * {@link NetDeviceRuntime} driven as a PCI or MMIO transport drives it, through {@link
 * VirtioDevice} only, on real memfd guest memory and a real TAP with the userspace datapath: the
 * driver's sequence, the queue register rules, reset, config space, and closing the backend the
 * device is using.
 */
class TransportContractTest {
    private static final byte[] MAC = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
    private static final long RINGS = 0x10_0000;
    private static final int SIZE = 256;

    /** A device on a new TAP and memfd memory; closes all three. */
    private static final class Rig implements AutoCloseable {
        final MemfdGuestMemory memory;
        final TapDevice tap;
        final UserspaceNetBackend backend;
        final NetDeviceRuntime device;
        final List<String> refusals = new CopyOnWriteArrayList<>();
        final CompletableFuture<String> needsReset = new CompletableFuture<>();

        Rig() throws Exception {
            memory = MemfdGuestMemory.create("transport", List.of(new RegionSpec(RINGS, 0x10_0000)));
            tap = TapDevice.create("vfft%d", 1, TapDevice.VHOST_FLAGS);
            Files.writeString(Path.of("/proc/sys/net/ipv6/conf", tap.name(), "disable_ipv6"), "1");
            tap.setLinkUp(true);
            backend = UserspaceNetBackend.open(tap);
            VirtioNetOptions options = VirtioNetOptions.builder(MAC)
                    .features(VirtioFeature.MAC, VirtioFeature.MRG_RXBUF, VirtioFeature.CTRL_VQ).build();
            device = new NetDeviceRuntime(options, memory, backend);
            device.addListener(new VirtioDeviceListener() {
                @Override
                public void refused(String reason) {
                    refusals.add(reason);
                }

                @Override
                public void needsReset(String reason) {
                    needsReset.complete(reason);
                }
            });
        }

        /** The driver up to FEATURES_OK, accepting every offered feature. */
        void negotiate() {
            VirtioDevice d = device;
            assertEquals(0, d.writeStatus(0));
            d.writeStatus(ACKNOWLEDGE);
            d.writeStatus(ACKNOWLEDGE | DRIVER);
            assertTrue(d.writeDriverFeatures(0, d.deviceFeatures(0)));
            assertTrue(d.writeDriverFeatures(1, d.deviceFeatures(1)));
            assertEquals(ACKNOWLEDGE | DRIVER | FEATURES_OK, d.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK),
                    () -> "FEATURES_OK: " + d.lastError());
        }

        /** Sets up queues 0..count-1 register by register, enabling each. */
        void setUpQueues(int count) {
            long base = RINGS;
            for (int q = 0; q < count; q++) {
                RingAddresses a = SplitRingLayout.place(base, SIZE);
                device.setQueueSize(q, SIZE);
                device.setQueueDescTable(q, a.descTable());
                device.setQueueDriverArea(q, a.driverArea());
                device.setQueueDeviceArea(q, a.deviceArea());
                device.enableQueue(q);
                base = a.end();
            }
        }

        /** The driver's whole sequence up to DRIVER_OK, every queue set up; the datapath runs. */
        void start() {
            negotiate();
            setUpQueues(3);
            device.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
            assertTrue(device.isDatapathRunning(), () -> "DRIVER_OK: " + device.lastError());
        }

        @Override
        public void close() {
            device.close();
            backend.close();
            tap.close();
            memory.close();
        }
    }

    @Test
    void aDriversSequenceThroughTheTransportStartsTheDatapath() throws Exception {
        try (Rig rig = new Rig()) {
            VirtioDevice d = rig.device;
            assertEquals(NetDeviceRuntime.DEVICE_TYPE_NET, d.deviceType());
            assertEquals(3, d.queueCount());
            long offered = Integer.toUnsignedLong(d.deviceFeatures(0)) | (long) d.deviceFeatures(1) << 32;
            assertEquals(rig.device.model().deviceFeatures(), offered);
            assertEquals(0, d.deviceFeatures(2), "no third word");
            rig.negotiate();
            assertEquals(offered, Integer.toUnsignedLong(d.driverFeatures(0)) | (long) d.driverFeatures(1) << 32);
            assertArrayEquals(MAC, d.readConfig(0, 6));
            assertEquals(NetDeviceRuntime.MAX_QUEUE_SIZE, d.queueSize(0), "size starts at its maximum");
            rig.setUpQueues(3);
            assertEquals(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK,
                    d.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK), () -> "DRIVER_OK: " + d.lastError());
            assertTrue(rig.device.isDatapathRunning());
            assertEquals(List.of(), rig.refusals);
        }
    }

    @Test
    void queueRegistersAreRefusedOnceEnabledOrAfterDriverOk() throws Exception {
        try (Rig rig = new Rig()) {
            VirtioDevice d = rig.device;
            rig.negotiate();
            rig.setUpQueues(3);
            long desc = d.queueDescTable(0);
            VirtioTransportException enabled = assertThrows(VirtioTransportException.class,
                    () -> d.setQueueDescTable(0, 0x20_0000));
            assertTrue(enabled.getMessage().contains("queue 0: queue_desc") && enabled.getMessage().contains("enabled"),
                    enabled.getMessage());
            assertEquals(desc, d.queueDescTable(0), "unchanged");
            assertEquals(enabled.getMessage(), d.lastError().orElseThrow());
            assertEquals(List.of(enabled.getMessage()), rig.refusals, "the listener heard it");

            assertThrows(VirtioTransportException.class, () -> d.setQueueSize(3, SIZE), "no queue 3");
            d.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
            assertTrue(rig.device.isDatapathRunning());
            VirtioTransportException late = assertThrows(VirtioTransportException.class,
                    () -> rig.device.configureQueue(1, SIZE, 0x1000, 0x2000, 0x3000));
            assertTrue(late.getMessage().contains("DRIVER_OK"), late.getMessage());
            assertEquals(3, rig.refusals.size());
            assertTrue(rig.device.isDatapathRunning(), "a refused write changes nothing");
        }
    }

    @Test
    void sizesAreCheckedAtTheWrite() throws Exception {
        try (Rig rig = new Rig()) {
            rig.negotiate();
            assertThrows(VirtioTransportException.class, () -> rig.device.setQueueSize(0, 0));
            assertThrows(VirtioTransportException.class,
                    () -> rig.device.setQueueSize(0, NetDeviceRuntime.MAX_QUEUE_SIZE * 2));
            VirtioTransportException odd = assertThrows(VirtioTransportException.class,
                    () -> rig.device.setQueueSize(0, 100));
            assertTrue(odd.getMessage().contains("power of two"), odd.getMessage());
            assertEquals(NetDeviceRuntime.MAX_QUEUE_SIZE, rig.device.queueSize(0));
        }
    }

    @Test
    void aQueueIsUsedOnlyOnceEnabled() throws Exception {
        try (Rig rig = new Rig()) {
            VirtioDevice d = rig.device;
            rig.negotiate();
            rig.setUpQueues(1); // rx enabled; tx (1) and control (2) never enabled
            RingAddresses tx = SplitRingLayout.place(0x18_0000, SIZE);
            d.setQueueSize(1, SIZE);
            d.setQueueDescTable(1, tx.descTable());
            d.setQueueDriverArea(1, tx.driverArea());
            d.setQueueDeviceArea(1, tx.deviceArea());
            int status = d.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
            assertEquals(DEVICE_NEEDS_RESET, status & DEVICE_NEEDS_RESET);
            assertFalse(rig.device.isDatapathRunning());
            assertTrue(d.lastError().orElseThrow().contains("not enabled") || d.lastError().orElseThrow()
                    .contains("enabled"), d.lastError().orElseThrow());
            assertTrue(rig.needsReset.get(10, TimeUnit.SECONDS).contains("enabled"));
        }
    }

    @Test
    void resetBringsEveryRegisterBack() throws Exception {
        try (Rig rig = new Rig()) {
            VirtioDevice d = rig.device;
            rig.start();
            d.reset();
            assertEquals(0, d.status());
            assertFalse(rig.device.isDatapathRunning());
            assertEquals(0, d.driverFeatures(0));
            for (int q = 0; q < d.queueCount(); q++) {
                assertFalse(d.queueEnabled(q));
                assertEquals(NetDeviceRuntime.MAX_QUEUE_SIZE, d.queueSize(q));
                assertEquals(0, d.queueDescTable(q));
                assertEquals(0, d.queueDriverArea(q));
                assertEquals(0, d.queueDeviceArea(q));
            }
            // and the driver can do it all again
            rig.start();
        }
    }

    @Test
    void configSpaceIsReadOnlyToTheDriverAndItsGenerationFollowsChanges() throws Exception {
        try (Rig rig = new Rig()) {
            VirtioDevice d = rig.device;
            assertEquals(24, d.configSize());
            assertThrows(VirtioTransportException.class, () -> d.readConfig(20, 8));
            VirtioTransportException write = assertThrows(VirtioTransportException.class,
                    () -> d.writeConfig(0, new byte[6]));
            assertTrue(write.getMessage().contains("read-only"), write.getMessage());
            assertArrayEquals(MAC, d.readConfig(0, 6), "unchanged");
            int generation = d.configGeneration();
            rig.device.model().setLinkUp(false);
            assertTrue(d.configGeneration() != generation, "a config change moves config_generation");
        }
    }

    @Test
    void closingTheBackendInUseIsNotSilent() throws Exception {
        try (Rig rig = new Rig()) {
            rig.start();
            rig.device.configInterrupt().consume(); // nothing pending from the start-up (nonblocking read)

            rig.backend.close();

            String reason = rig.needsReset.get(10, TimeUnit.SECONDS);
            assertTrue(reason.contains(UserspaceNetBackend.NAME) && reason.contains("closed"), reason);
            assertEquals(DEVICE_NEEDS_RESET, rig.device.status() & DEVICE_NEEDS_RESET);
            assertTrue(rig.device.lastError().orElseThrow().contains("closed"));
            assertTrue(rig.device.configInterrupt().poll(10_000), "the driver got a config interrupt");
            // The device stopped without asking the closed backend to stop again (which would fail
            // and be logged): the stop completed, with no data queue states to give.
            DatapathState stopped = rig.device.lastStoppedState();
            assertTrue(stopped != null && stopped.dataQueues().isEmpty(), String.valueOf(stopped));
            assertFalse(rig.device.isDatapathRunning());
        }
    }

    /**
     * A reset waits for every report thread started before it, to its end: one that finished
     * its report but has not ended yet (held here where a slow end would be) is still waited
     * for, so no report thread of the reset device outlives the reset.
     */
    @Test
    void aResetWaitsForAReportThreadToItsEnd() throws Exception {
        try (Rig rig = new Rig()) {
            rig.start();
            CompletableFuture<Thread> reporter = new CompletableFuture<>();
            CountDownLatch release = new CountDownLatch(1);
            rig.device.reportEpilogue = () -> {
                reporter.complete(Thread.currentThread());
                try {
                    assertTrue(release.await(30, TimeUnit.SECONDS), "the test released the report thread");
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            };
            rig.backend.close(); // the device's report of it runs on a report thread
            assertTrue(rig.needsReset.get(10, TimeUnit.SECONDS).contains("closed"));
            Thread held = reporter.get(10, TimeUnit.SECONDS);

            CompletableFuture<Integer> reset = CompletableFuture.supplyAsync(() -> rig.device.writeStatus(0));
            Thread resetting = awaitThreadIn("awaitReporters", reset);
            if (resetting == null) {
                // The reset returned without waiting for the held report thread.
                Thread.State state = held.getState();
                release.countDown();
                fail("the reset returned while report thread " + held.getName() + " was " + state);
            }
            release.countDown();
            assertEquals(0, reset.get(30, TimeUnit.SECONDS));
            assertEquals(Thread.State.TERMINATED, held.getState(), "the report thread ended before the reset returned");
        }
    }

    /**
     * The thread running {@code work} once it is inside {@code method}, or null when the work
     * completed first; fails after 30 s.
     */
    private static Thread awaitThreadIn(String method, CompletableFuture<?> work) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (!work.isDone()) {
            for (var e : Thread.getAllStackTraces().entrySet()) {
                for (StackTraceElement f : e.getValue()) {
                    if (f.getMethodName().equals(method) && f.getClassName().equals(NetDeviceRuntime.class.getName())) {
                        return e.getKey();
                    }
                }
            }
            assertTrue(System.nanoTime() < deadline, "neither in " + method + " nor done within 30 s");
            Thread.onSpinWait();
        }
        return null;
    }
}

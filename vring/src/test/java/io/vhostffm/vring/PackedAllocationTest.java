package io.vhostffm.vring;

import static io.vhostffm.vring.PackedFixture.PAYLOAD;
import static io.vhostffm.vring.PackedFixture.TABLES;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The steady state of a packed ring allocates nothing: take, publish (single and batch), the
 * notification decisions on both sides, and the driver's add and collect. Measured with the
 * thread's allocated-bytes counter (com.sun.management.ThreadMXBean) after JIT warm-up.
 */
class PackedAllocationTest {
    private static final int ROUNDS = 100_000;
    static volatile Object sink;

    @Test
    void steadyStateTakeAndPublishAllocateNothing() throws Throwable {
        MethodHandle allocatedBytes = threadAllocatedBytes();
        PackedFixture f = new PackedFixture(64, true, 60, true);
        DescriptorChain chain = f.device.newChain();
        long[] addrs = {PAYLOAD, PAYLOAD + 64, PAYLOAD + 128};
        int[] lens = {64, 64, 64};
        int[] batch = new int[4];
        int[] written = new int[4];
        int[] ids = new int[8];
        int[] lengths = new int[8];
        long tid = Thread.currentThread().threadId();
        // The counter must work, or a zero below would prove nothing.
        long probeBefore = (long) allocatedBytes.invokeExact(tid);
        sink = new byte[1 << 20];
        long probe = (long) allocatedBytes.invokeExact(tid) - probeBefore;
        assertTrue(probe >= 1 << 20, "allocation counter saw " + probe + " bytes of a 1 MiB array");

        long best = Long.MAX_VALUE;
        // The first windows may still run interpreted or compiling code; the steady state is what counts.
        for (int attempt = 0; attempt < 8 && best > 0; attempt++) {
            long before = (long) allocatedBytes.invokeExact(tid);
            for (int round = 0; round < ROUNDS; round++) {
                step(f, chain, addrs, lens, batch, written, ids, lengths);
            }
            long after = (long) allocatedBytes.invokeExact(tid);
            best = Math.min(best, after - before);
        }
        // Any per-round allocation would be at least 16 bytes x 100000 rounds.
        assertTrue(best < 1024, "steady state allocated " + best + " bytes over " + ROUNDS + " rounds");
    }

    @Test
    void resyncOfManyQueuesAllocatesNothing() throws Throwable {
        MethodHandle allocatedBytes = threadAllocatedBytes();
        int queues = 64;
        PackedFixture f = new PackedFixture(256, true);
        List<DeviceQueue> devices = new ArrayList<>();
        List<QueuePosition> finals = new ArrayList<>();
        for (int i = 0; i < queues; i++) {
            devices.add(new PackedDeviceQueue(i, f.memory, f.state, RestoreMode.EARLY));
            finals.add(VhostVringBase.decodeKernelPacked(
                    VhostVringBase.encodeKernelPacked(i, i % 2 == 0, i, i % 2 == 0), 0));
        }
        QueueResync resync = QueueResync.of(devices);
        long tid = Thread.currentThread().threadId();
        long best = Long.MAX_VALUE;
        for (int attempt = 0; attempt < 8 && best > 0; attempt++) {
            long before = (long) allocatedBytes.invokeExact(tid);
            for (int round = 0; round < ROUNDS / 10; round++) {
                resync.resync(finals);
            }
            long after = (long) allocatedBytes.invokeExact(tid);
            best = Math.min(best, after - before);
        }
        assertTrue(best < 1024, "resync of " + queues + " queues allocated " + best + " bytes over " + ROUNDS / 10 + " rounds");
        assertTrue(((PackedDeviceQueue) devices.get(5)).lastAvailIdx() == 5 && !((PackedDeviceQueue) devices.get(5)).lastAvailWrapCounter());
    }

    private static void step(PackedFixture f, DescriptorChain chain, long[] addrs, int[] lens, int[] batch,
                             int[] written, int[] ids, int[] lengths) {
        PackedDriverQueue driver = f.driver;
        PackedDeviceQueue device = f.device;
        // Four chains: direct of 3, indirect of 2, direct of 1, indirect of 3.
        driver.add(addrs, lens, 2, 1);
        driver.addIndirect(TABLES, addrs, lens, 1, 1);
        driver.add(addrs, lens, 1, 0);
        driver.addIndirect(TABLES + 0x100, addrs, lens, 1, 2);
        driver.needsKick();
        device.disableNotifications();
        int n = 0;
        while (device.take(chain)) {
            if (n < 2) {
                device.publishUsed(chain, (int) chain.writableLength());
            } else {
                batch[n - 2] = chain.headId();
                written[n - 2] = (int) chain.writableLength();
            }
            n++;
        }
        device.publishUsedBatch(batch, written, n - 2);
        device.needsNotification();
        device.enableNotifications();
        driver.collectUsed(ids, lengths, ids.length);
        driver.enableUsedNotifications();
    }

    /** {@code com.sun.management.ThreadMXBean.getThreadAllocatedBytes(long)}, without boxing, found reflectively (this module does not read jdk.management). */
    private static MethodHandle threadAllocatedBytes() throws ReflectiveOperationException {
        Object bean = Class.forName("java.lang.management.ManagementFactory").getMethod("getThreadMXBean").invoke(null);
        Class<?> type = Class.forName("com.sun.management.ThreadMXBean");
        return MethodHandles.publicLookup()
                .findVirtual(type, "getThreadAllocatedBytes", MethodType.methodType(long.class, long.class))
                .bindTo(bean);
    }
}

package io.vhostffm.vring;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import org.junit.jupiter.api.Test;

/**
 * Steady-state take and publish allocate nothing (and neither do the test guest's add and
 * collect). Measured with {@code com.sun.management.ThreadMXBean#getCurrentThreadAllocatedBytes}.
 *
 * <p>The module does not read jdk.management (it must not need it), so the bean is reached through
 * a public lookup: {@code jdk.management} is in the boot layer of the test JVM, and a method handle
 * of exact type {@code ()long} reads the counter without boxing, so the measurement itself adds
 * nothing to the window.
 */
class SplitAllocationTest {
    private static final int OPS = 100_000;

    @Test
    void steadyStateTakeAndPublishAllocateNothing() throws Throwable {
        MethodHandle allocatedBytes = currentThreadAllocatedBytes();
        try (SplitRig rig = new SplitRig(0, 256, true)) {
            SplitDriverQueue driver = rig.driver(0);
            SplitDeviceQueue device = rig.device(driver);
            DescriptorChain chain = device.newChain();
            long[] addresses = {SplitRig.BUFFERS, SplitRig.BUFFERS + 64, SplitRig.BUFFERS + 128};
            int[] lengths = {64, 64, 64};
            int[] ids = new int[256];
            int[] lens = new int[256];
            int[] batchIds = new int[16];
            int[] batchLens = new int[16];
            // Warm up until the JIT has compiled the paths (the interpreter may allocate).
            long checksum = run(driver, device, chain, addresses, lengths, ids, lens, batchIds, batchLens, 20 * OPS);
            long before = (long) allocatedBytes.invokeExact();
            checksum += run(driver, device, chain, addresses, lengths, ids, lens, batchIds, batchLens, OPS);
            long allocated = (long) allocatedBytes.invokeExact() - before;
            assertTrue(checksum > 0);
            assertEquals(0, device.saveState().position().inuse());
            // Zero in practice; a few hundred bytes of slack for a stray JIT deoptimisation.
            System.out.println("SplitAllocationTest: " + OPS + " ops allocated " + allocated + " bytes");
            assertTrue(allocated < 512, OPS + " take/publish ops allocated " + allocated + " bytes");
        }
    }

    /** OPS chains through the ring: direct and indirect adds, single and batched publishes. */
    private static long run(SplitDriverQueue driver, SplitDeviceQueue device, DescriptorChain chain,
            long[] addresses, int[] lengths, int[] ids, int[] lens, int[] batchIds, int[] batchLens, int ops) {
        long checksum = 0;
        int done = 0;
        while (done < ops) {
            for (int i = 0; i < 16; i++) {
                int head = (i & 3) == 0
                        ? driver.addIndirect(SplitRig.BUFFERS + 0x1000 + 0x40L * i, addresses, lengths, 2, 1)
                        : driver.add(addresses, lengths, 2, 1);
                checksum += head;
            }
            checksum += driver.needsKick() ? 1 : 0;
            device.disableNotifications();
            int count = 0;
            while (device.take(chain)) {
                checksum += chain.regionSegment(0).get(ValueLayout.JAVA_BYTE, chain.regionOffset(0));
                checksum += chain.writableLength();
                if ((count & 1) == 0) {
                    device.publishUsed(chain.headId(), 64);
                } else {
                    batchIds[0] = chain.headId();
                    batchLens[0] = 64;
                    device.publishUsedBatch(batchIds, batchLens, 1);
                }
                count++;
            }
            checksum += device.needsNotification() ? 1 : 0;
            checksum += device.enableNotifications() ? 1 : 0;
            checksum += driver.collectUsed(ids, lens, ids.length);
            checksum += driver.enableUsedNotifications() ? 1 : 0;
            done += count;
        }
        return checksum;
    }

    private static MethodHandle currentThreadAllocatedBytes() throws Throwable {
        Class<?> factory = Class.forName("java.lang.management.ManagementFactory");
        Class<?> bean = Class.forName("com.sun.management.ThreadMXBean");
        MethodHandles.Lookup lookup = MethodHandles.publicLookup();
        Class<?> platformBean = Class.forName("java.lang.management.ThreadMXBean");
        Object threadBean = lookup.findStatic(factory, "getThreadMXBean", MethodType.methodType(platformBean))
                .invoke();
        return lookup.findVirtual(bean, "getCurrentThreadAllocatedBytes", MethodType.methodType(long.class))
                .bindTo(threadBean);
    }
}

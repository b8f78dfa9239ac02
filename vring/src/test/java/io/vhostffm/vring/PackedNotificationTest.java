package io.vhostffm.vring;

import static io.vhostffm.vring.PackedFixture.PAYLOAD;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A driver thread and a device thread that sleep when idle and wake each other only through
 * notifications decided by the event suppression structures, as a guest and a device do: a kick
 * when {@code needsKick}, an interrupt when {@code needsNotification}. Each side disables the
 * other's notifications while busy and re-enables them (re-checking the ring) before sleeping. A
 * lost notification leaves one side asleep with work pending: the test then fails on its timeout
 * instead of finishing.
 */
class PackedNotificationTest {
    private static final int BUFFERS = 1_000_000;
    private static final int SIZE = 64;
    /** Far longer than any scheduling delay; only a lost notification waits this long. */
    private static final long LOST_NOTIFICATION_SECONDS = 20;
    private static final ValueLayout.OfLong LONG = ValueLayout.JAVA_LONG_UNALIGNED;

    @ParameterizedTest(name = "eventIdx={0}")
    @ValueSource(booleans = {true, false})
    void sleepingSidesWakeEachOtherThroughNotificationsOnly(boolean eventIdx) throws Exception {
        PackedFixture f = new PackedFixture(SIZE, eventIdx, SIZE - 2, true);
        Semaphore kicks = new Semaphore(0);
        Semaphore interrupts = new Semaphore(0);
        AtomicLong kickCount = new AtomicLong();
        AtomicLong interruptCount = new AtomicLong();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        Thread device = new Thread(() -> {
            try {
                runDevice(f.device, kicks, interrupts, interruptCount);
            } catch (Throwable t) {
                failure.compareAndSet(null, t);
                interrupts.release(); // let the driver see it
            }
        }, "packed-device");
        device.setDaemon(true);
        device.start();
        try {
            runDriver(f, kicks, interrupts, kickCount, failure);
        } catch (Throwable t) {
            failure.compareAndSet(null, t);
            kicks.release();
        }
        device.join(TimeUnit.SECONDS.toMillis(LOST_NOTIFICATION_SECONDS + 10));
        assertFalse(device.isAlive(), "device thread did not finish");
        assertNull(failure.get(), () -> "failed: " + failure.get());
        System.out.printf("packed, eventIdx=%b: %d buffers, %d kicks, %d interrupts%n",
                eventIdx, BUFFERS, kickCount.get(), interruptCount.get());
        // Suppression did suppress: far fewer notifications than buffers in each direction.
        assertTrue(kickCount.get() < BUFFERS, "kicks " + kickCount.get());
        assertTrue(interruptCount.get() < BUFFERS, "interrupts " + interruptCount.get());
    }

    private static void runDriver(PackedFixture f, Semaphore kicks, Semaphore interrupts, AtomicLong kickCount,
                                  AtomicReference<Throwable> failure) throws InterruptedException {
        PackedDriverQueue driver = f.driver;
        MemorySegment low = f.low;
        long[] addrs = new long[1];
        int[] lens = {8};
        int[] ids = new int[SIZE];
        int[] written = new int[SIZE];
        long[] seqOfId = new long[SIZE];
        long sent = 0;
        long received = 0;
        while (received < BUFFERS) {
            boolean added = false;
            while (sent < BUFFERS && driver.freeDescriptors() > 0) {
                // Buffers come back in the order they were sent and at most SIZE are in flight,
                // so slot (sent mod SIZE) is free again by the time buffer `sent` is added.
                long at = PAYLOAD + 8L * (sent % SIZE);
                low.set(LONG, at, sent);
                addrs[0] = at;
                int id = driver.add(addrs, lens, 1, 0);
                if (id < 0) {
                    break;
                }
                seqOfId[id] = sent++;
                added = true;
            }
            if (added && driver.needsKick()) {
                kickCount.incrementAndGet();
                kicks.release();
            }
            driver.disableUsedNotifications();
            int n = driver.collectUsed(ids, written, ids.length);
            for (int i = 0; i < n; i++) {
                if (seqOfId[ids[i]] != received + i) {
                    throw new AssertionError("buffer " + (received + i) + " expected, id " + ids[i]
                            + " carries " + seqOfId[ids[i]]);
                }
            }
            received += n;
            if (n == 0 && !added && received < BUFFERS) {
                // Nothing to do: ask for an interrupt, re-check, sleep.
                if (driver.enableUsedNotifications()) {
                    continue;
                }
                if (!interrupts.tryAcquire(LOST_NOTIFICATION_SECONDS, TimeUnit.SECONDS)) {
                    throw new AssertionError("driver slept with " + (sent - received)
                            + " buffers in flight: a used-buffer notification was lost");
                }
                if (failure.get() != null) {
                    return;
                }
            }
        }
    }

    private static void runDevice(PackedDeviceQueue queue, Semaphore kicks, Semaphore interrupts,
                                  AtomicLong interruptCount) throws InterruptedException {
        DescriptorChain chain = queue.newChain();
        long expected = 0;
        int[] batch = new int[8];
        int[] lengths = new int[8];
        while (expected < BUFFERS) {
            queue.disableNotifications();
            int batched = 0;
            while (queue.take(chain)) {
                long seq = chain.regionSegment(0).get(LONG, chain.regionOffset(0));
                if (seq != expected) {
                    throw new AssertionError("expected buffer " + expected + ", payload says " + seq);
                }
                expected++;
                batch[batched] = chain.headId();
                lengths[batched] = 0;
                if (++batched == batch.length || seq % 5 == 0) {
                    queue.publishUsedBatch(batch, lengths, batched);
                    batched = 0;
                }
            }
            queue.publishUsedBatch(batch, lengths, batched);
            if (queue.needsNotification()) {
                interruptCount.incrementAndGet();
                interrupts.release();
            }
            if (expected == BUFFERS) {
                return;
            }
            // Nothing to do: ask for a kick, re-check, sleep.
            if (queue.enableNotifications()) {
                continue;
            }
            if (!kicks.tryAcquire(LOST_NOTIFICATION_SECONDS, TimeUnit.SECONDS)) {
                throw new AssertionError("device slept at buffer " + expected + ": a kick was lost");
            }
        }
    }
}

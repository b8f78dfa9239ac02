package io.vhostffm.vring;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Driver and device threads that sleep when idle and wake only on notifications, as a guest and
 * a vhost worker do with their kick and call eventfds (here two semaphores). If an
 * enable-notifications / needs-notification pair ever misses an update of the other side (a
 * missing fence), one thread sleeps while the other waits for it: the test then fails with a
 * "lost notification" instead of passing. Checked with and without event idx.
 */
class SplitNotificationHandshakeTest {
    private static final long BUFFERS = 500_000;
    private static final int SIZE = 64;
    private static final long WAIT_SECONDS = 20;

    @ParameterizedTest(name = "eventIdx={0}")
    @ValueSource(booleans = {false, true})
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void noNotificationIsLost(boolean eventIdx) throws InterruptedException {
        try (SplitRig rig = new SplitRig(0, SIZE, eventIdx, SIZE * 64L)) {
            SplitDriverQueue driver = rig.driver(65500);
            SplitDeviceQueue device = rig.device(driver);
            Semaphore kick = new Semaphore(0);
            Semaphore call = new Semaphore(0);
            AtomicReference<Throwable> failure = new AtomicReference<>();
            AtomicLong kicks = new AtomicLong();
            AtomicLong calls = new AtomicLong();
            Thread guest = Thread.ofPlatform().name("guest").start(() -> {
                try {
                    runDriver(rig, driver, kick, call, kicks);
                } catch (Throwable t) {
                    failure.compareAndSet(null, t);
                }
            });
            Thread worker = Thread.ofPlatform().name("device").start(() -> {
                try {
                    runDevice(device, kick, call, calls);
                } catch (Throwable t) {
                    failure.compareAndSet(null, t);
                }
            });
            guest.join(TimeUnit.SECONDS.toMillis(110));
            worker.join(TimeUnit.SECONDS.toMillis(5));
            if (failure.get() != null) {
                throw new AssertionError("a ring thread failed", failure.get());
            }
            assertFalse(guest.isAlive() || worker.isAlive(), "threads did not finish");
            assertEquals(SIZE, driver.freeDescriptors());
            System.out.printf("SplitNotificationHandshakeTest eventIdx=%s: %d buffers, %d kicks, %d calls%n",
                    eventIdx, BUFFERS, kicks.get(), calls.get());
        }
    }

    private static void runDriver(SplitRig rig, SplitDriverQueue driver, Semaphore kick, Semaphore call,
            AtomicLong kicks) throws InterruptedException {
        MemorySegment buffers = rig.memory.region(1).segment();
        long[] address = new long[1];
        int[] length = {8};
        int[] ids = new int[SIZE];
        int[] lens = new int[SIZE];
        long[] sequenceOfHead = new long[SIZE];
        long added = 0;
        long collected = 0;
        while (collected < BUFFERS) {
            boolean addedAny = false;
            while (added < BUFFERS && driver.freeDescriptors() > 0) {
                int head = addOne(driver, buffers, address, length, added);
                sequenceOfHead[head] = added;
                added++;
                addedAny = true;
            }
            if (addedAny && driver.needsKick()) {
                kicks.incrementAndGet();
                kick.release();
            }
            int n = driver.collectUsed(ids, lens, SIZE);
            for (int i = 0; i < n; i++) {
                long sequence = sequenceOfHead[ids[i]];
                if (sequence != collected + i || lens[i] != 0) {
                    throw new AssertionError("buffer " + sequence + " back as #" + (collected + i) + " len " + lens[i]);
                }
            }
            collected += n;
            boolean canAdd = added < BUFFERS && driver.freeDescriptors() > 0;
            if (n == 0 && !canAdd && collected < BUFFERS && !driver.enableUsedNotifications()) {
                if (!call.tryAcquire(WAIT_SECONDS, TimeUnit.SECONDS)) {
                    throw new AssertionError("lost notification: driver waited " + WAIT_SECONDS + " s for a call, "
                            + collected + " collected, " + added + " added");
                }
                call.drainPermits();
            }
        }
    }

    /** Adds one one-buffer chain whose payload is its sequence number; returns its head. */
    private static int addOne(SplitDriverQueue driver, MemorySegment buffers, long[] address, int[] length,
            long sequence) {
        // The buffer slot is free whenever a descriptor is: SIZE slots of 64 bytes, one per head.
        int slot = (int) (sequence % SIZE);
        buffers.set(ValueLayout.JAVA_LONG_UNALIGNED, slot * 64L, sequence);
        address[0] = SplitRig.BUFFERS + slot * 64L;
        int head = driver.add(address, length, 1, 0);
        if (head < 0) {
            throw new AssertionError("no descriptor although one was free");
        }
        return head;
    }

    private static void runDevice(SplitDeviceQueue device, Semaphore kick, Semaphore call, AtomicLong calls)
            throws InterruptedException {
        DescriptorChain chain = device.newChain();
        long served = 0;
        while (served < BUFFERS) {
            device.disableNotifications();
            int count = 0;
            while (device.take(chain)) {
                long sequence = chain.regionSegment(0).get(ValueLayout.JAVA_LONG_UNALIGNED, chain.regionOffset(0));
                if (sequence != served) {
                    throw new AssertionError("took buffer " + sequence + ", expected " + served);
                }
                device.publishUsed(chain, 0); // a readable-only chain: nothing written
                served++;
                count++;
            }
            if (count > 0 && device.needsNotification()) {
                calls.incrementAndGet();
                call.release();
            }
            if (served < BUFFERS && !device.enableNotifications()) {
                if (!kick.tryAcquire(WAIT_SECONDS, TimeUnit.SECONDS)) {
                    throw new AssertionError("lost notification: device waited " + WAIT_SECONDS + " s for a kick, "
                            + served + " served");
                }
                kick.drainPermits();
            }
        }
    }
}

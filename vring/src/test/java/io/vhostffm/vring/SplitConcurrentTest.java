package io.vhostffm.vring;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.BitSet;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/**
 * A driver thread and a device thread over one split ring: ten million buffers, each carrying a
 * counter pattern the device checks in place and an answer the driver checks back. Every id must
 * come back exactly once and in order; every payload must be intact. This exercises the
 * acquire/release pairs on avail.idx and used.idx: plain payload and descriptor stores must be
 * visible once the index that covers them is.
 */
class SplitConcurrentTest {
    private static final long BUFFERS = 10_000_000;
    private static final int SIZE = 256;
    private static final int SLOT_BYTES = 128;
    private static final int PAYLOAD_LONGS = 8;
    private static final long PATTERN = 0x9E37_79B9_7F4A_7C15L;

    /**
     * How long the driver may go without collecting a buffer before the run counts as hung. A
     * bound on a stall, not on the run: on a loaded shared machine the whole run may take minutes.
     */
    private static final long STALL_NANOS = TimeUnit.SECONDS.toNanos(120);

    @Test
    void tenMillionBuffersEveryIdOnceEveryPayloadIntact() throws InterruptedException {
        try (SplitRig rig = new SplitRig(1, SIZE, true, (long) SIZE * SLOT_BYTES)) {
            SplitDriverQueue driver = rig.driver(65000); // crosses 65535 many times anyway
            SplitDeviceQueue device = rig.device(driver);
            AtomicReference<Throwable> failure = new AtomicReference<>();
            BitSet returned = new BitSet((int) BUFFERS);
            AtomicLong collectedSoFar = new AtomicLong();
            Thread driverThread = Thread.ofPlatform().name("guest-driver").unstarted(() -> {
                try {
                    runDriver(rig, driver, returned, collectedSoFar, failure);
                } catch (Throwable t) {
                    failure.compareAndSet(null, t);
                }
            });
            Thread deviceThread = Thread.ofPlatform().name("device").unstarted(() -> {
                try {
                    runDevice(device, failure);
                } catch (Throwable t) {
                    failure.compareAndSet(null, t);
                }
            });
            driverThread.start();
            deviceThread.start();
            long seen = -1;
            long lastProgress = System.nanoTime();
            while (driverThread.isAlive() && failure.get() == null) {
                driverThread.join(1000);
                long now = collectedSoFar.get();
                if (now != seen) {
                    seen = now;
                    lastProgress = System.nanoTime();
                } else if (System.nanoTime() - lastProgress > STALL_NANOS) {
                    failure.compareAndSet(null, new AssertionError("no buffer collected for "
                            + STALL_NANOS / 1_000_000_000L + " s after " + seen));
                }
            }
            driverThread.join(TimeUnit.SECONDS.toMillis(10));
            deviceThread.join(TimeUnit.SECONDS.toMillis(10));
            if (failure.get() != null) {
                throw new AssertionError("a ring thread failed", failure.get());
            }
            assertFalse(driverThread.isAlive() || deviceThread.isAlive(), "threads did not finish");
            assertEquals(BUFFERS, returned.cardinality(), "every buffer returned");
            assertEquals(SIZE, driver.freeDescriptors());
            QueueState end = device.saveState();
            assertEquals(0, end.position().inuse());
            assertEquals((65000 + BUFFERS) & 0xffff, end.position().lastAvailIdx());
            assertEquals((65000 + BUFFERS) & 0xffff, end.position().usedIdx());
        }
    }

    private static void runDriver(SplitRig rig, SplitDriverQueue driver, BitSet returned, AtomicLong collectedSoFar,
            AtomicReference<Throwable> failure) {
        MemorySegment buffers = rig.memory.region(1).segment();
        int[] freeSlots = new int[SIZE];
        for (int i = 0; i < SIZE; i++) {
            freeSlots[i] = i;
        }
        int freeTop = SIZE;
        int[] slotOfHead = new int[SIZE];
        java.util.Arrays.fill(slotOfHead, -1);
        long[] sequenceOfSlot = new long[SIZE];
        long[] addresses = new long[2];
        int[] lengths = {PAYLOAD_LONGS * 8, 8};
        int[] ids = new int[SIZE];
        int[] lens = new int[SIZE];
        long next = 0;
        long collected = 0;
        while (collected < BUFFERS && failure.get() == null) {
            boolean progress = false;
            while (next < BUFFERS && freeTop > 0) {
                int slot = freeSlots[freeTop - 1];
                long offset = (long) slot * SLOT_BYTES;
                // Word 0 is the sequence number, the others derive from it.
                buffers.set(ValueLayout.JAVA_LONG_UNALIGNED, offset, next);
                for (int j = 1; j < PAYLOAD_LONGS; j++) {
                    buffers.set(ValueLayout.JAVA_LONG_UNALIGNED, offset + 8L * j, next * PATTERN + j);
                }
                buffers.set(ValueLayout.JAVA_LONG_UNALIGNED, offset + 64, 0L);
                long guest = SplitRig.BUFFERS + offset;
                addresses[0] = guest;
                addresses[1] = guest + 64;
                int head = (next & 7) == 0
                        ? driver.addIndirect(guest + 96, addresses, lengths, 1, 1)
                        : driver.add(addresses, lengths, 1, 1);
                if (head < 0) {
                    break;
                }
                freeTop--;
                if (slotOfHead[head] != -1) {
                    throw new AssertionError("head " + head + " handed out while in flight");
                }
                slotOfHead[head] = slot;
                sequenceOfSlot[slot] = next;
                next++;
                progress = true;
            }
            driver.needsKick();
            int n = driver.collectUsed(ids, lens, SIZE);
            for (int i = 0; i < n; i++) {
                int head = ids[i];
                int slot = slotOfHead[head];
                if (slot < 0) {
                    throw new AssertionError("head " + head + " returned but not in flight");
                }
                slotOfHead[head] = -1;
                long sequence = sequenceOfSlot[slot];
                if (returned.get((int) sequence)) {
                    throw new AssertionError("buffer " + sequence + " returned twice");
                }
                returned.set((int) sequence);
                if (sequence != collected + i) {
                    throw new AssertionError("buffer " + sequence + " returned out of order, expected "
                            + (collected + i));
                }
                long answer = buffers.get(ValueLayout.JAVA_LONG_UNALIGNED, (long) slot * SLOT_BYTES + 64);
                if (lens[i] != 8 || answer != ~sequence) {
                    throw new AssertionError("buffer " + sequence + ": device answer " + Long.toHexString(answer)
                            + " length " + lens[i]);
                }
                freeSlots[freeTop++] = slot;
            }
            collected += n;
            collectedSoFar.setRelease(collected); // for the watchdog in the test thread
            if (!progress && n == 0 && !driver.enableUsedNotifications()) {
                Thread.yield(); // two shared cores: let the device run
            }
        }
    }

    private static void runDevice(SplitDeviceQueue device, AtomicReference<Throwable> failure) {
        DescriptorChain chain = device.newChain();
        int[] ids = new int[SIZE];
        int[] lens = new int[SIZE];
        long expected = 0;
        while (expected < BUFFERS && failure.get() == null) {
            int count = 0;
            while (count < 32 && device.take(chain)) {
                if (chain.readableCount() != 1 || chain.writableCount() != 1 || chain.readableLength() != 64
                        || chain.writableLength() != 8) {
                    throw new AssertionError("unexpected chain shape " + chain);
                }
                MemorySegment payload = chain.regionSegment(0);
                long at = chain.regionOffset(0);
                long sequence = payload.get(ValueLayout.JAVA_LONG_UNALIGNED, at);
                if (sequence != expected) {
                    throw new AssertionError("took buffer " + sequence + ", expected " + expected);
                }
                for (int j = 1; j < PAYLOAD_LONGS; j++) {
                    long value = payload.get(ValueLayout.JAVA_LONG_UNALIGNED, at + 8L * j);
                    if (value != sequence * PATTERN + j) {
                        throw new AssertionError("buffer " + sequence + " word " + j + " torn: "
                                + Long.toHexString(value));
                    }
                }
                chain.regionSegment(1).set(ValueLayout.JAVA_LONG_UNALIGNED, chain.regionOffset(1), ~sequence);
                ids[count] = chain.headId();
                lens[count] = 8;
                count++;
                expected++;
            }
            if (count > 0) {
                device.publishUsedBatch(ids, lens, count);
                device.needsNotification();
            } else if (!device.enableNotifications()) {
                Thread.yield();
            }
        }
        assertNull(failure.get());
    }
}

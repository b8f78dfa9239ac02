package io.vhostffm.vring;

import static io.vhostffm.vring.PackedFixture.PAYLOAD;
import static io.vhostffm.vring.PackedFixture.TABLES;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.BitSet;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/**
 * A driver thread and a device thread over one packed ring, as a guest and a device run it:
 * ten million buffers, each returned exactly once with its payload intact. The ring starts near
 * its end and wraps tens of thousands of times; chains are direct (two descriptors) or indirect;
 * the device publishes one at a time or in batches.
 */
class PackedConcurrencyTest {
    private static final int BUFFERS = 10_000_000;
    private static final int SIZE = 256;
    /** Payload slot per buffer in flight: 16 readable bytes (seq, ~seq), then 8 writable. */
    private static final int SLOT = 32;
    private static final long MIX = 0x9E37_79B9_7F4A_7C15L;
    private static final ValueLayout.OfLong LONG = ValueLayout.JAVA_LONG_UNALIGNED;
    /**
     * How long a side may go without progress before it counts as stalled. A bound on a stall,
     * not on the run: on a loaded shared machine the whole run may take minutes.
     */
    private static final long STALL_NANOS = TimeUnit.SECONDS.toNanos(120);

    @Test
    void tenMillionBuffersBetweenTwoThreads() throws Exception {
        PackedFixture f = new PackedFixture(SIZE, false, SIZE - 5, true);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        Thread device = new Thread(() -> {
            try {
                runDevice(f.device);
            } catch (Throwable t) {
                failure.compareAndSet(null, t);
            }
        }, "packed-device");
        device.setDaemon(true);
        device.start();
        try {
            runDriver(f, failure);
        } catch (Throwable t) {
            failure.compareAndSet(null, t);
        }
        device.join(TimeUnit.SECONDS.toMillis(30));
        assertFalse(device.isAlive(), "device thread did not finish");
        assertNull(failure.get(), () -> "failed: " + failure.get());
    }

    private static void runDriver(PackedFixture f, AtomicReference<Throwable> failure) {
        PackedDriverQueue driver = f.driver;
        MemorySegment low = f.low;
        int[] freeSlots = new int[SIZE];
        for (int i = 0; i < SIZE; i++) {
            freeSlots[i] = i;
        }
        int freeSlotCount = SIZE;
        int[] slotOfId = new int[SIZE];
        long[] seqOfSlot = new long[SIZE];
        BitSet returned = new BitSet(BUFFERS);
        long[] addrs = new long[2];
        int[] lens = {16, 8};
        int[] ids = new int[64];
        int[] written = new int[64];
        long sent = 0;
        long received = 0;
        long stallDeadline = 0;
        int idle = 0;
        while (received < BUFFERS) {
            boolean progress = false;
            while (sent < BUFFERS && freeSlotCount > 0) {
                int slot = freeSlots[freeSlotCount - 1];
                long at = PAYLOAD + (long) slot * SLOT;
                low.set(LONG, at, sent);
                low.set(LONG, at + 8, ~sent);
                low.set(LONG, at + 16, 0L);
                addrs[0] = at;
                addrs[1] = at + 16;
                int id = (sent & 3) == 3
                        ? driver.addIndirect(TABLES + (long) slot * SLOT, addrs, lens, 1, 1)
                        : driver.add(addrs, lens, 1, 1);
                if (id < 0) {
                    break;
                }
                freeSlotCount--;
                slotOfId[id] = slot;
                seqOfSlot[slot] = sent;
                sent++;
                progress = true;
            }
            int n = driver.collectUsed(ids, written, ids.length);
            for (int i = 0; i < n; i++) {
                int slot = slotOfId[ids[i]];
                long seq = seqOfSlot[slot];
                long at = PAYLOAD + (long) slot * SLOT;
                if (written[i] != 8) {
                    throw new AssertionError("buffer " + seq + ": written length " + written[i]);
                }
                if (low.get(LONG, at + 16) != seq * MIX) {
                    throw new AssertionError("buffer " + seq + ": device wrote " + low.get(LONG, at + 16));
                }
                if (returned.get((int) seq)) {
                    throw new AssertionError("buffer " + seq + " returned twice");
                }
                returned.set((int) seq);
                freeSlots[freeSlotCount++] = slot;
            }
            received += n;
            if (n > 0) {
                progress = true;
            }
            if (!progress) {
                if (idle == 0) {
                    stallDeadline = System.nanoTime() + STALL_NANOS;
                }
                idle = backOff(idle);
                if (failure.get() != null) {
                    return;
                }
                if (System.nanoTime() > stallDeadline) {
                    throw new AssertionError("driver stalled: no progress for " + STALL_NANOS / 1_000_000_000L
                            + " s; sent " + sent + ", received " + received);
                }
            } else {
                idle = 0;
            }
        }
        assertEquals(BUFFERS, returned.cardinality());
        assertEquals(SIZE, driver.freeDescriptors());
    }

    private static void runDevice(PackedDeviceQueue queue) {
        DescriptorChain chain = queue.newChain();
        int[] batch = new int[32];
        int[] lengths = new int[32];
        int batched = 0;
        long expected = 0;
        int idle = 0;
        long stallDeadline = 0;
        while (expected < BUFFERS) {
            if (queue.take(chain)) {
                idle = 0;
                if (chain.readableCount() != 1 || chain.writableCount() != 1 || chain.readableLength() != 16
                        || chain.writableLength() != 8) {
                    throw new AssertionError("buffer " + expected + ": unexpected chain " + chain);
                }
                MemorySegment in = chain.regionSegment(0);
                long at = chain.regionOffset(0);
                long seq = in.get(LONG, at);
                if (seq != expected || in.get(LONG, at + 8) != ~seq) {
                    throw new AssertionError("expected buffer " + expected + ", payload says " + seq);
                }
                chain.regionSegment(1).set(LONG, chain.regionOffset(1), seq * MIX);
                expected++;
                // Alternate between single publishes and batches of up to 32.
                if ((seq >> 10 & 1) == 0) {
                    queue.publishUsed(chain, 8);
                } else {
                    batch[batched] = chain.headId();
                    lengths[batched] = 8;
                    if (++batched == batch.length) {
                        queue.publishUsedBatch(batch, lengths, batched);
                        batched = 0;
                    }
                }
            } else {
                if (batched > 0) {
                    queue.publishUsedBatch(batch, lengths, batched);
                    batched = 0;
                    idle = 0; // publishing is progress
                    continue;
                }
                if (idle == 0) {
                    stallDeadline = System.nanoTime() + STALL_NANOS;
                }
                idle = backOff(idle);
                if (System.nanoTime() > stallDeadline) {
                    throw new AssertionError("device stalled: no progress for " + STALL_NANOS / 1_000_000_000L
                            + " s at buffer " + expected);
                }
            }
        }
        queue.publishUsedBatch(batch, lengths, batched);
    }

    /** Spin briefly, then yield: two busy threads on a shared two-core box must let each other run. */
    private static int backOff(int idle) {
        if (idle < 64) {
            Thread.onSpinWait();
        } else {
            Thread.yield();
        }
        return idle + 1;
    }
}

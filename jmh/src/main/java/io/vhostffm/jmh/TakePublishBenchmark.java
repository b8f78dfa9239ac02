package io.vhostffm.jmh;

import io.vhostffm.vring.DescriptorChain;
import io.vhostffm.vring.DeviceQueue;
import io.vhostffm.vring.DriverQueue;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import java.util.Arrays;

/**
 * Device-side take and publish per chain (benchmark 4): the device takes the next available chain
 * (reading the driver's index, walking and checking every descriptor, resolving each buffer to its
 * guest memory region) and publishes it used, with event idx on, deciding once per batch whether
 * to notify the driver, as a virtio-net queue's service loop does. The payload itself is not
 * touched: this is the ring's own cost per chain.
 *
 * <p>Fair per-op measurement: before every invocation, outside the measured time
 * ({@code Level.Invocation} setup), the driver side collects the used elements of the last
 * invocation and makes {@value #BATCH} new chains available. The measured invocation then serves
 * exactly those {@value #BATCH} chains ({@code @OperationsPerInvocation}), so the score is device
 * chains per second, and the gc profiler's {@code gc.alloc.rate.norm} is bytes per chain. One
 * invocation lasts several microseconds, so the per-invocation timestamps cost well under 1%.
 *
 * <p>Both sides run on one thread, so the ring is in this core's cache: an upper bound for the
 * device side; {@link RingPingPongBenchmark} measures the hand-over between two cores.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(1)
public class TakePublishBenchmark {
    /** Queue size: 1024, so a batch of 4-descriptor chains fits the ring. */
    static final int QUEUE_SIZE = 1024;
    /** Chains per measured invocation. */
    static final int BATCH = 256;
    private static final int BUFFER_BYTES = 1536;

    /** Ring format. */
    @Param({"split", "packed"})
    public String format;

    /**
     * Chain shape: 1, 2 or 4 direct descriptors (half readable, half writable; 1 is readable, a
     * tx frame), or {@code indirect4}: one descriptor pointing at an indirect table of 4.
     */
    @Param({"1", "2", "4", "indirect4"})
    public String chain;

    private BenchGuestMemory guest;
    private DeviceQueue device;
    private DriverQueue driver;
    private DescriptorChain taken;
    private long[][] addresses;
    private int[] lengths;
    private long[] indirectTables;
    private int readable;
    private int writable;
    private boolean indirect;
    private int[] usedIds;
    private int[] usedLengths;
    private int[] batchIds;
    private int[] batchLengths;

    /** Lays out the ring, the buffers and the indirect tables; makes both sides of the queue. */
    @Setup(Level.Trial)
    public void setUp() {
        RingFormat ring = RingFormat.of(format);
        indirect = chain.equals("indirect4");
        int buffers = indirect ? 4 : Integer.parseInt(chain);
        readable = buffers == 1 ? 1 : buffers / 2;
        writable = buffers - readable;
        guest = new BenchGuestMemory(BATCH * (long) (buffers * BUFFER_BYTES + 64) + (1 << 20));
        RingFormat.Areas areas = ring.place(guest, QUEUE_SIZE);
        driver = ring.driver(0, guest, QUEUE_SIZE, areas, true); // first: it initialises the rings
        device = ring.device(0, guest, QUEUE_SIZE, areas, true);
        taken = device.newChain();
        lengths = new int[buffers];
        Arrays.fill(lengths, BUFFER_BYTES);
        addresses = new long[BATCH][buffers];
        indirectTables = new long[BATCH];
        for (int c = 0; c < BATCH; c++) {
            for (int b = 0; b < buffers; b++) {
                addresses[c][b] = guest.allocate(BUFFER_BYTES, 64);
            }
            indirectTables[c] = guest.allocate(16L * buffers, 16);
        }
        usedIds = new int[QUEUE_SIZE];
        usedLengths = new int[QUEUE_SIZE];
        batchIds = new int[BATCH];
        batchLengths = new int[BATCH];
    }

    /** Driver side, unmeasured: take back the last batch, then make {@value #BATCH} chains available. */
    @Setup(Level.Invocation)
    public void refill() {
        long cpuStart = CpuTimeProfiler.currentThreadCpuNanos();
        while (driver.collectUsed(usedIds, usedLengths, usedIds.length) > 0) {
            // drain every used element, freeing its descriptors
        }
        for (int c = 0; c < BATCH; c++) {
            int id = indirect
                    ? driver.addIndirect(indirectTables[c], addresses[c], lengths, readable, writable)
                    : driver.add(addresses[c], lengths, readable, writable);
            if (id < 0) {
                throw new IllegalStateException("driver ran out of descriptors at chain " + c + " of " + BATCH);
            }
        }
        driver.needsKick();
        CpuTimeProfiler.excludeSetup(CpuTimeProfiler.currentThreadCpuNanos() - cpuStart);
    }

    /** Releases guest memory. */
    @TearDown(Level.Trial)
    public void tearDown() {
        guest.close();
    }

    /**
     * Takes and publishes the batch one chain at a time (one release store of the used index per
     * chain), then decides once whether to notify.
     *
     * @return the notification decision, consumed by JMH
     */
    @Benchmark
    @OperationsPerInvocation(BATCH)
    public boolean takePublishEach() {
        DeviceQueue queue = device;
        DescriptorChain c = taken;
        int served = 0;
        while (queue.take(c)) {
            queue.publishUsed(c.headId(), (int) c.writableLength());
            served++;
        }
        if (served != BATCH) {
            throw new IllegalStateException("served " + served + " chains, expected " + BATCH);
        }
        return queue.needsNotification();
    }

    /**
     * Takes the whole batch, then publishes it with one release store of the used index
     * ({@code publishUsedBatch}), then decides once whether to notify.
     *
     * @return the notification decision, consumed by JMH
     */
    @Benchmark
    @OperationsPerInvocation(BATCH)
    public boolean takeAllPublishBatch() {
        DeviceQueue queue = device;
        DescriptorChain c = taken;
        int[] ids = batchIds;
        int[] written = batchLengths;
        int served = 0;
        while (served < BATCH && queue.take(c)) {
            ids[served] = c.headId();
            written[served] = (int) c.writableLength();
            served++;
        }
        if (served != BATCH) {
            throw new IllegalStateException("served " + served + " chains, expected " + BATCH);
        }
        queue.publishUsedBatch(ids, written, served);
        return queue.needsNotification();
    }
}

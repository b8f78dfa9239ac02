package io.vhostffm.jmh;

import io.vhostffm.vring.DescriptorChain;
import io.vhostffm.vring.DeviceQueue;
import io.vhostffm.vring.DriverQueue;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Group;
import org.openjdk.jmh.annotations.GroupThreads;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.infra.Control;

/**
 * A driver and a device on two threads, ping-pong through one ring (benchmark 5): the driver makes
 * one single-descriptor chain available and spins until it comes back used; the device spins
 * until a chain is available, takes it and publishes it. Only one chain is in flight, so each
 * operation is one full round trip through shared ring memory: the driver's release store of the
 * avail index seen by the device's acquire load, and back through the used index. Both sides poll
 * (no eventfd), as a busy-polling datapath does.
 *
 * <p>Score: nanoseconds per round trip, per side ({@code driver}, {@code device}); the group's
 * figure is their mean. Spins stop when JMH ends the iteration ({@link Control#stopMeasurement}),
 * so neither thread is left waiting for the other. Each wait spins, then yields now and then
 * ({@link #pause}), so on a machine with more runnable threads than cores a round trip costs a
 * reschedule rather than a whole time slice; it still needs two free cores for figures that
 * show the ring rather than the scheduler.
 */
@State(Scope.Group)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Fork(1)
public class RingPingPongBenchmark {
    private static final int QUEUE_SIZE = 256;
    private static final int BUFFER_BYTES = 1536;
    static final int SPINS_BEFORE_YIELD = 100;

    /** Ring format. */
    @Param({"split", "packed"})
    public String format;

    private BenchGuestMemory guest;
    private DeviceQueue device;
    private DriverQueue driver;
    private long[] buffer;
    private int[] length;

    /** Lays out the ring and one buffer; makes both sides. */
    @Setup(Level.Trial)
    public void setUp() {
        RingFormat ring = RingFormat.of(format);
        guest = new BenchGuestMemory(1 << 20);
        RingFormat.Areas areas = ring.place(guest, QUEUE_SIZE);
        driver = ring.driver(0, guest, QUEUE_SIZE, areas, true); // first: it initialises the rings
        device = ring.device(0, guest, QUEUE_SIZE, areas, true);
        buffer = new long[] {guest.allocate(BUFFER_BYTES, 64)};
        length = new int[] {BUFFER_BYTES};
    }

    /** Releases guest memory. */
    @TearDown(Level.Trial)
    public void tearDown() {
        guest.close();
    }

    /**
     * Waits a little before polling again: busy spins first, then a yield every
     * {@value #SPINS_BEFORE_YIELD} spins. With a free core per side the other side answers within
     * the spins and no yield happens; on a machine with more runnable threads than cores, the
     * yield lets the other side run instead of burning our time slice.
     *
     * @return the updated spin count
     */
    private static int pause(int spins) {
        if (++spins % SPINS_BEFORE_YIELD == 0) {
            Thread.yield();
        } else {
            Thread.onSpinWait();
        }
        return spins;
    }

    /** The driver thread's own scratch space (the device thread never touches it). */
    @State(Scope.Thread)
    public static class DriverScratch {
        final int[] ids = new int[1];
        final int[] written = new int[1];
        boolean inFlight;
    }

    /** The device thread's chain holder, reused for every take. */
    @State(Scope.Thread)
    public static class DeviceScratch {
        DescriptorChain chain;

        /** Sizes the holder for the group's queue (JMH sets the group state up first). */
        @Setup(Level.Trial)
        public void setUp(RingPingPongBenchmark ring) {
            chain = ring.device.newChain();
        }
    }

    /**
     * Driver: makes the chain available (unless the previous one is still out because the last
     * iteration ended mid-trip), then waits for it to come back used.
     *
     * @return the written length the device reported
     */
    @Benchmark
    @Group("pingPong")
    @GroupThreads(1)
    public int driver(DriverScratch scratch, Control control) {
        if (!scratch.inFlight) {
            if (driver.add(buffer, length, 0, 1) < 0) {
                throw new IllegalStateException("driver has no free descriptor with one chain in flight");
            }
            scratch.inFlight = true;
        }
        int spins = 0;
        while (driver.collectUsed(scratch.ids, scratch.written, 1) == 0) {
            if (control.stopMeasurement) {
                return -1; // the chain stays in flight; the next iteration collects it first
            }
            spins = pause(spins);
        }
        scratch.inFlight = false;
        return scratch.written[0];
    }

    /**
     * Device: waits for a chain, takes it and publishes it used with its whole writable length.
     *
     * @return the chain's id
     */
    @Benchmark
    @Group("pingPong")
    @GroupThreads(1)
    public int device(DeviceScratch scratch, Control control) {
        DescriptorChain chain = scratch.chain;
        int spins = 0;
        while (!device.take(chain)) {
            if (control.stopMeasurement) {
                return -1;
            }
            spins = pause(spins);
        }
        device.publishUsed(chain.headId(), (int) chain.writableLength());
        return chain.headId();
    }
}

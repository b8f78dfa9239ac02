package io.vhostffm.jmh;

import io.vhostffm.vring.GuestMemory;
import io.vhostffm.vring.GuestRegion;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;
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

/**
 * Translating a guest-physical buffer address to its region, as every descriptor of every chain
 * does before the device touches the buffer. Guest memory is laid out the way a PC guest's is:
 * a region below the 32-bit PCI hole, then regions above 4 GiB; the addresses looked up are
 * spread over all regions, so a linear scan pays for the later ones.
 *
 * <p>Score: nanoseconds per lookup (each invocation looks up {@value #LOOKUPS} addresses).
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Fork(1)
public class GuestMemoryLookupBenchmark {
    static final int LOOKUPS = 256;
    private static final long REGION_SIZE = 1 << 20;
    private static final long FOUR_GIB = 1L << 32;

    /** Number of guest memory regions (1: one flat region; more: split around the PCI hole). */
    @Param({"1", "2", "8"})
    public int regions;

    private Arena arena;
    private GuestMemory memory;
    private final long[] addresses = new long[LOOKUPS];

    /** Maps the regions and picks lookup addresses spread evenly over them. */
    @Setup(Level.Trial)
    public void setUp() {
        arena = Arena.ofShared();
        List<GuestRegion> list = new ArrayList<>();
        for (int i = 0; i < regions; i++) {
            long guestAddress = i == 0 ? 0 : FOUR_GIB + (i - 1) * 2 * REGION_SIZE;
            list.add(new GuestRegion(guestAddress, arena.allocate(REGION_SIZE, 4096)));
        }
        memory = GuestMemory.of(list);
        for (int i = 0; i < LOOKUPS; i++) {
            GuestRegion region = list.get(i % regions);
            // A 1500-byte frame somewhere inside the region, 64-byte aligned like a real rx buffer.
            long offset = (i * 4096L + 64L * i) % (REGION_SIZE - 2048) & ~63L;
            addresses[i] = region.guestAddress() + offset;
        }
    }

    /** Releases the regions. */
    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
    }

    /** Looks up every address once; returns the sum of the region indices so none is dead code. */
    @Benchmark
    @OperationsPerInvocation(LOOKUPS)
    public int findRegion() {
        int sum = 0;
        for (long address : addresses) {
            sum += memory.findRegion(address, 1500);
        }
        return sum;
    }
}

package io.vhostffm.jmh;

import io.vhostffm.vring.DeviceQueue;
import io.vhostffm.vring.FinalIndexTable;
import io.vhostffm.vring.FinalIndices;
import io.vhostffm.vring.PackedDeviceQueue;
import io.vhostffm.vring.SplitDeviceQueue;
import io.vhostffm.vring.VringBase;
import java.util.SplittableRandom;
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
 * The vring index resync at switchover (benchmark 1): the final indices of every queue have
 * arrived from the source; for each queue the destination applies them (last avail idx, used
 * idx, inuse, wrap counters; shadow avail idx := last avail idx; signalled_used_valid := false)
 * and encodes the vhost vring base it will hand to VHOST_SET_VRING_BASE.
 *
 * <p>Score: nanoseconds per queue, to compare directly with the goal of at most 2 ns per queue.
 * Every invocation resyncs {@value #RESYNCS_PER_INVOCATION} queues (JMH needs a constant count per
 * invocation): {@code 1024 / queues} rounds over all the queues. Two sets of final indices
 * alternate from round to round, so every resync really changes its queue and none can be
 * folded away. The queue count sets the working set: one queue stays in L1; 1024 queues' state
 * objects and indices do not.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Fork(1)
public class IndexResyncBenchmark {
    private static final int QUEUE_SIZE = 256;
    static final int RESYNCS_PER_INVOCATION = 1024;

    /** Ring format of every queue. */
    @Param({"split", "packed"})
    public String format;

    /** Number of queues resynced together (a 512-pair virtio-net device has 1024). */
    @Param({"1", "8", "64", "1024"})
    public int queues;

    private BenchGuestMemory guest;
    private RingFormat ring;
    private DeviceQueue[] devices;
    private FinalIndices[][] finals;
    private FinalIndexTable[] finalTables;
    private SplitDeviceQueue[] splitDevices;
    private PackedDeviceQueue[] packedDevices;
    private int[] vringBases;
    private int rounds;

    /** Makes the queues and two sets of plausible final indices per queue. */
    @Setup(Level.Trial)
    public void setUp() {
        ring = RingFormat.of(format);
        guest = new BenchGuestMemory(queues * 16L * 1024 + (1 << 20));
        devices = new DeviceQueue[queues];
        SplittableRandom random = new SplittableRandom(42);
        finals = new FinalIndices[2][queues];
        for (int q = 0; q < queues; q++) {
            devices[q] = ring.device(q, guest, QUEUE_SIZE, ring.place(guest, QUEUE_SIZE), true);
            for (int set = 0; set < 2; set++) {
                int taken = random.nextInt(1 << 20);
                int inuse = random.nextInt(QUEUE_SIZE / 4);
                finals[set][q] = ring.finalIndices(QUEUE_SIZE, taken, inuse);
            }
        }
        finalTables = new FinalIndexTable[] {FinalIndexTable.of(finals[0]), FinalIndexTable.of(finals[1])};
        if (ring == RingFormat.PACKED) {
            packedDevices = new PackedDeviceQueue[queues];
            for (int q = 0; q < queues; q++) {
                packedDevices[q] = (PackedDeviceQueue) devices[q];
            }
        } else {
            splitDevices = new SplitDeviceQueue[queues];
            for (int q = 0; q < queues; q++) {
                splitDevices[q] = (SplitDeviceQueue) devices[q];
            }
        }
        vringBases = new int[queues];
        rounds = RESYNCS_PER_INVOCATION / queues;
    }

    /** Releases guest memory. */
    @TearDown(Level.Trial)
    public void tearDown() {
        guest.close();
    }

    /**
     * Resyncs every queue and encodes its vhost vring base, as the destination does for each
     * virtqueue between receiving the final indices and issuing VHOST_SET_VRING_BASE; repeated
     * until {@value #RESYNCS_PER_INVOCATION} queues are done.
     *
     * <p>With one queue the rounds call {@link #resyncOne} instead of a loop over one queue:
     * C2 compiles that inner loop with pre/main/post loops whose set-up (~10 ns) would then be
     * measured once per resync, a cost of this harness's rounds, not of a resync. Same work, same
     * order, same alternating sets.
     *
     * @return the bases, which JMH consumes, so none of the work is dead code
     */
    @Benchmark
    @OperationsPerInvocation(RESYNCS_PER_INVOCATION)
    public int[] resyncAndEncodeBase() {
        DeviceQueue[] queues = devices;
        int[] bases = vringBases;
        boolean packed = ring == RingFormat.PACKED;
        if (queues.length == 1) {
            DeviceQueue queue = queues[0];
            for (int round = 0; round < rounds; round++) {
                bases[0] = resyncOne(queue, finals[round & 1][0], packed);
            }
            return bases;
        }
        for (int round = 0; round < rounds; round++) {
            FinalIndices[] set = finals[round & 1];
            for (int q = 0; q < queues.length; q++) {
                bases[q] = resyncOne(queues[q], set[q], packed);
            }
        }
        return bases;
    }

    /** One queue's resync and vhost vring base, as {@link #resyncAndEncodeBase} does it for each. */
    private static int resyncOne(DeviceQueue queue, FinalIndices indices, boolean packed) {
        queue.resync(indices);
        return packed
                ? VringBase.encodePacked(indices.lastAvailIdx(), indices.lastAvailWrapCounter(), indices.usedIdx(),
                        indices.usedWrapCounter())
                : VringBase.encodeSplit(indices.lastAvailIdx());
    }

    /**
     * The same work through the many-queue path of one ring format ({@code
     * SplitDeviceQueue.resyncAll} / {@code PackedDeviceQueue.resyncAll}): the final indices in
     * primitive arrays ({@link FinalIndexTable}), the checks folded into one branch per queue,
     * the base encoded in the same loop.
     *
     * @return the bases, which JMH consumes
     */
    @Benchmark
    @OperationsPerInvocation(RESYNCS_PER_INVOCATION)
    public int[] resyncAllTable() {
        int[] bases = vringBases;
        FinalIndexTable[] tables = finalTables;
        if (packedDevices != null) {
            for (int round = 0; round < rounds; round++) {
                PackedDeviceQueue.resyncAll(packedDevices, tables[round & 1], bases);
            }
        } else {
            for (int round = 0; round < rounds; round++) {
                SplitDeviceQueue.resyncAll(splitDevices, tables[round & 1], bases);
            }
        }
        return bases;
    }
}

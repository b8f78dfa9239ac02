package io.vhostffm.jmh;

import io.vhostffm.vring.DeviceQueue;
import io.vhostffm.vring.QueuePosition;
import io.vhostffm.vring.QueueResync;
import io.vhostffm.vring.VhostVringBase;
import java.util.List;
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
 * The vring index resync at switchover (benchmark 1): the final positions of every queue have
 * arrived from the source; for each queue the destination applies them (last avail idx, used
 * idx, inuse, wrap counters; shadow avail idx := last avail idx; signalled_used_valid := false)
 * and encodes the vhost vring base it will hand to VHOST_SET_VRING_BASE.
 *
 * <p>{@link #queueResync} measures what both backends' quickstart run at a migration's
 * switchover: vring's {@link QueueResync#resync} over the queues' device sides, from the list of
 * decoded positions to the array of bases, one loop per ring format with the base encoded in the
 * same pass. {@link #resyncAndEncodeBase} is the baseline in the same run: one
 * {@link DeviceQueue#resync} interface call and one {@link VhostVringBase#encodeKernel} per queue.
 *
 * <p>Score: nanoseconds per queue, to compare directly with the goal of at most 2 ns per queue.
 * Every invocation resyncs {@value #RESYNCS_PER_INVOCATION} queues (JMH needs a constant count per
 * invocation): {@code 1024 / queues} rounds over all the queues. Two sets of final positions
 * alternate from round to round, so every resync really changes its queue and none can be
 * folded away. The queue count sets the working set: one queue stays in L1; 1024 queues' state
 * objects and positions do not.
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
    private DeviceQueue[] devices;
    /** Two sets of final positions, each a list in queue order as a quickstart receives it. */
    private List<QueuePosition>[] finals;
    private QueueResync resync;
    private int[] vringBases;
    private int rounds;

    /** Makes the queues and two sets of plausible final positions per queue. */
    @Setup(Level.Trial)
    @SuppressWarnings("unchecked")
    public void setUp() {
        RingFormat ring = RingFormat.of(format);
        guest = new BenchGuestMemory(queues * 16L * 1024 + (1 << 20));
        devices = new DeviceQueue[queues];
        SplittableRandom random = new SplittableRandom(42);
        QueuePosition[][] sets = new QueuePosition[2][queues];
        for (int q = 0; q < queues; q++) {
            devices[q] = ring.device(q, guest, QUEUE_SIZE, ring.place(guest, QUEUE_SIZE), true);
            for (int set = 0; set < 2; set++) {
                int taken = random.nextInt(1 << 20);
                int inuse = random.nextInt(QUEUE_SIZE / 4);
                sets[set][q] = ring.finalPosition(QUEUE_SIZE, taken, inuse);
            }
        }
        finals = new List[] {List.of(sets[0]), List.of(sets[1])};
        resync = QueueResync.of(List.of(devices));
        vringBases = new int[queues];
        rounds = RESYNCS_PER_INVOCATION / queues;
    }

    /** Releases guest memory. */
    @TearDown(Level.Trial)
    public void tearDown() {
        guest.close();
    }

    /**
     * The baseline: resyncs every queue through the {@link DeviceQueue} interface and encodes its
     * vhost vring base, one queue at a time; repeated until {@value #RESYNCS_PER_INVOCATION}
     * queues are done.
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
        if (queues.length == 1) {
            DeviceQueue queue = queues[0];
            for (int round = 0; round < rounds; round++) {
                bases[0] = resyncOne(queue, finals[round & 1].get(0));
            }
            return bases;
        }
        for (int round = 0; round < rounds; round++) {
            List<QueuePosition> set = finals[round & 1];
            for (int q = 0; q < queues.length; q++) {
                bases[q] = resyncOne(queues[q], set.get(q));
            }
        }
        return bases;
    }

    /** One queue's resync and vhost vring base, as {@link #resyncAndEncodeBase} does it for each. */
    private static int resyncOne(DeviceQueue queue, QueuePosition position) {
        queue.resync(position);
        return VhostVringBase.encodeKernel(position);
    }

    /**
     * The same work through the production path, {@link QueueResync#resync}: one pass over the
     * list of final positions per ring format, the checks of a queue folded into one branch and
     * its base encoded in the same pass, into the resync's own array.
     *
     * @return the bases, which JMH consumes
     */
    @Benchmark
    @OperationsPerInvocation(RESYNCS_PER_INVOCATION)
    public int[] queueResync() {
        QueueResync r = resync;
        int[] bases = null;
        for (int round = 0; round < rounds; round++) {
            bases = r.resync(finals[round & 1]);
        }
        return bases;
    }
}

package io.vhostffm.jmh;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

import io.vhostffm.testkit.Frames;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.device.BackendListener;
import io.vhostffm.vhost.device.BackendStart;
import io.vhostffm.vhost.device.NetBackend;
import io.vhostffm.vhost.device.kernel.VhostNetBackend;
import io.vhostffm.vhost.device.QueueBinding;
import io.vhostffm.vring.QueuePosition;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * The guest side of the switchover benchmarks (benchmark 2), shared by
 * {@link KernelSwitchoverBenchmark} and {@link UserspaceSwitchoverBenchmark}: a {@link TapGuest}
 * with {@link #pairs} queue pairs (memfd memory, vring's split driver queues of 256 entries, kick
 * and call eventfds, a real multi-queue TAP with an AF_PACKET socket on it), made once per trial,
 * and the {@link BackendStart} a destination hands its backend: every data virtqueue in
 * virtqueue order, all pairs active, the device's negotiated features, no dirty log.
 *
 * <p>The queue positions move on as a device's would: each {@link #stopped} takes the positions a
 * backend's {@code stop()} answered, and the next (pre)start begins from them, so a frame sent in
 * one round is never taken again in the next.
 */
@State(Scope.Thread)
public class SwitchoverGuest {
    /** Wait for a probe frame on the TAP, in milliseconds. */
    static final int PROBE_TIMEOUT_MS = 10_000;

    /** Queue pairs: one virtqueue pair, a small multi-queue device, and 16 (32 data virtqueues). */
    @Param({"1", "4", "16"})
    public int pairs;

    TapGuest guest;
    private BackendStart start;
    /** {@link #start}'s queue positions, kept ready so the measured quickstart builds nothing. */
    private List<QueuePosition> finalPositions;
    private final int[] probesSent = new int[64];
    /** What a backend reported as bad guest input: nothing, or the fixture is broken. */
    final List<String> badGuestInput = new CopyOnWriteArrayList<>();

    /** Creates the TAP (vffb%d, {@link #pairs} queues), the guest memory and the driver queues. */
    @Setup(Level.Trial)
    public void setUp() throws IOException {
        guest = new TapGuest(pairs);
        List<QueueBinding> queues = guest.transport.queueBindings(guest.driver);
        BackendListener listener = (queue, reason) -> badGuestInput.add("virtqueue " + queue + ": " + reason);
        start = new BackendStart(guest.memory, TapGuest.FEATURES, queues, pairs, 0, null, listener);
        finalPositions = start.positions();
    }

    /** Removes the TAP, closes the eventfds and guest memory; fails if a backend saw bad guest input. */
    @TearDown(Level.Trial)
    public void tearDown() {
        if (guest != null) {
            guest.close();
            guest = null;
        }
        if (!badGuestInput.isEmpty()) {
            throw new IllegalStateException("a backend reported bad guest input: " + badGuestInput);
        }
    }

    /** The start a (pre)start or classic start is given: the queues as the last stop left them. */
    BackendStart start() {
        return start;
    }

    /** The final queue positions a quickstart is given (the same as {@link #start()}'s: no frame moves between). */
    List<QueuePosition> finalPositions() {
        return finalPositions;
    }

    /** A backend stopped at these positions (in virtqueue order): the next start resumes from them. */
    void stopped(List<QueuePosition> positions) {
        start = start.withPositions(positions);
        finalPositions = start.positions();
    }

    /** Prestarts {@code backend} from the states the last stop left; set-up, so left out of the CPU-time score. */
    void prestart(NetBackend backend) throws IOException {
        long cpu = CpuTimeProfiler.currentThreadCpuNanos();
        backend.prestart(start);
        CpuTimeProfiler.excludeSetup(CpuTimeProfiler.currentThreadCpuNanos() - cpu);
    }

    /**
     * Stops {@code backend}, which {@code operation} must have left running, and keeps its states
     * for the next start; tear-down, so left out of the CPU-time score.
     */
    void stopRunning(NetBackend backend, String operation) throws IOException {
        long cpu = CpuTimeProfiler.currentThreadCpuNanos();
        try {
            checkedStop(backend, operation);
        } finally {
            CpuTimeProfiler.excludeSetup(CpuTimeProfiler.currentThreadCpuNanos() - cpu);
        }
    }

    /**
     * As {@link #stopRunning}, then closes {@code backend} whatever happened (a kernel backend's
     * vhost-net descriptors in parallel: each close waits an RCU grace period); tear-down, so
     * left out of the CPU-time score.
     */
    void stopAndClose(NetBackend backend, String operation) throws IOException {
        long cpu = CpuTimeProfiler.currentThreadCpuNanos();
        try {
            checkedStop(backend, operation);
            if (backend instanceof VhostNetBackend kernel) {
                VhostClosing.closeAll(kernel, pairs);
            }
        } finally {
            backend.close();
            CpuTimeProfiler.excludeSetup(CpuTimeProfiler.currentThreadCpuNanos() - cpu);
        }
    }

    private void checkedStop(NetBackend backend, String operation) throws IOException {
        if (!backend.isRunning()) {
            throw new IllegalStateException(backend + " is not running after the " + operation);
        }
        stopped(backend.stop());
    }

    /**
     * The guest transmits one numbered frame ({@link Frames}: the pair as its stream, and a
     * sequence number) on {@code pair}'s transmit queue and kicks; returns when the
     * AF_PACKET socket on the TAP saw exactly that frame, throws after {@value #PROBE_TIMEOUT_MS} ms.
     * Proof that a backend moves frames after a switchover.
     */
    void transmitProbe(int pair) throws NativeCallException {
        TapGuest.Pair p = guest.pairs.get(pair);
        int seq = probesSent[pair]++;
        byte[] frame = Frames.frame(Frames.BROADCAST, TapGuest.DEVICE_MAC, pair, seq, Frames.MIN_LENGTH, -1);
        long slot = p.txSlots + (seq % TapGuest.SIZE) * TapGuest.SLOT;
        MemorySegment slotMemory = guest.at(slot, TapGuest.HEADER + frame.length);
        slotMemory.asSlice(0, TapGuest.HEADER).fill((byte) 0);
        MemorySegment.copy(frame, 0, slotMemory, JAVA_BYTE, TapGuest.HEADER, frame.length);
        // Collect what the device gave back, so the ring never fills however many probes run.
        int[] ids = new int[TapGuest.SIZE];
        int[] lens = new int[TapGuest.SIZE];
        p.tx.collectUsed(ids, lens, TapGuest.SIZE);
        if (p.tx.add(new long[] {slot}, new int[] {TapGuest.HEADER + frame.length}, 1, 0) < 0) {
            throw new IllegalStateException("pair " + pair + ": transmit ring full");
        }
        p.txKick.signal(); // always: a spurious kick costs nothing, a missed one would hang the probe
        long deadline = System.nanoTime() + PROBE_TIMEOUT_MS * 1_000_000L;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buffer = arena.allocate(2048);
            while (true) {
                int left = (int) Math.max(1, (deadline - System.nanoTime()) / 1_000_000L);
                long n = guest.wire.receive(buffer, left);
                if (n == frame.length && Frames.isNumbered(buffer, n) && Frames.stream(buffer, n) == pair
                        && Frames.sequence(buffer, n) == seq) {
                    return;
                }
                if (n < 0 || System.nanoTime() > deadline) {
                    throw new IllegalStateException("probe frame " + seq + " of pair " + pair + " did not reach "
                            + guest.tap.name() + " within " + PROBE_TIMEOUT_MS + " ms");
                }
            }
        }
    }
}

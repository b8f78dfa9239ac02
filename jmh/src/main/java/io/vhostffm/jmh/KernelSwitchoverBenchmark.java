package io.vhostffm.jmh;

import io.vhostffm.vhost.os.IoctlObserver;
import io.vhostffm.vhost.device.kernel.QuickstartFloor;
import io.vhostffm.vhost.device.kernel.VhostNet;
import io.vhostffm.vhost.device.kernel.VhostNetBackend;
import java.io.IOException;
import java.util.concurrent.TimeUnit;
import java.util.function.IntFunction;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * The destination's switchover on the kernel's vhost-net (benchmark 2; needs {@code /dev/vhost-net},
 * so on the machines this is built on it runs in the VM: {@code bin/bench --in-vm}). One
 * operation is one switchover of a device with {@link SwitchoverGuest#pairs} queue pairs:
 * <ul>
 * <li>{@link #quickstart}: early migration's switchover. The backend was opened once and
 *     prestarted before the operation; measured is {@code VhostNetBackend.quickstart(finalPositions)}
 *     (vring's many-queue resync, {@code QueueResync}, checks the positions and encodes the bases):
 *     per virtqueue VHOST_SET_VRING_BASE, TUNSETQUEUE per pair on a multi-queue TAP, then
 *     VHOST_NET_SET_BACKEND on both queues of every pair; with {@link Prestarted#quickstartThreads}
 *     above 1 each pair's steps on one of that many threads (parked at prestart).</li>
 * <li>{@link #classic}: what a classic migration does while the guest is paused, from no backend
 *     at all: {@code VhostNetBackend.open(tap)} (per pair open /dev/vhost-net and VHOST_SET_OWNER,
 *     VHOST_GET_FEATURES once, TUNSETVNETHDRSZ, 2 x pairs + 1 eventfds and the ring-error
 *     watcher thread) and {@code start(start)}: TUNSETVNETHDRSZ, TUNSETOFFLOAD per TAP queue,
 *     per pair VHOST_SET_FEATURES, VHOST_SET_MEM_TABLE and per queue SET_VRING_NUM, SET_VRING_BASE,
 *     SET_VRING_ADDR, SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR, then what quickstart does
 *     after its SET_VRING_BASEs.</li>
 * <li>{@link #bareIoctls}: the switchover's floor: on the same prestarted descriptors, only the
 *     ioctls quickstart must issue (SET_VRING_BASE per virtqueue; on a multi-queue TAP, TUNSETQUEUE
 *     attaching each pair's queue, since the source may have left it detached; NET_SET_BACKEND per
 *     virtqueue), straight through {@link VhostNet} and {@code TapDevice}, nothing else
 *     ({@link QuickstartFloor}, which the downtime benchmark times too).</li>
 * </ul>
 * {@code KernelSwitchoverFixtureKernelTest} counts each variant's ioctls with an
 * {@code IoctlObserver} and checks frames flow afterwards.
 *
 * <p>Design: the operation is tens of microseconds to milliseconds, and each needs fresh set-up
 * (a prestart, or no backend) and a tear-down (stop; for classic also closing every vhost
 * descriptor, which waits an RCU grace period in the kernel); so {@code Level.Invocation}
 * fixtures around a single call, AverageTime. JMH then times each call alone and sums only those
 * times (its per-call timestamps cost well under 1% of an operation this long); the set-up and
 * tear-down run outside the measured time and their CPU time is left out of
 * {@link CpuTimeProfiler}'s figure. Iterations are time-based as for every other benchmark, so
 * {@code bin/bench}'s run lengths (and {@code --quick}) apply unchanged.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(1)
public class KernelSwitchoverBenchmark {

    /** A backend opened once per trial and prestarted before each operation; stopped after it. */
    @State(Scope.Thread)
    public static class Prestarted {
        /**
         * The threads a quickstart issues the pairs' steps from ({@link VhostNetBackend#setQuickstartThreads}):
         * 1 serial; 2 (the VM's vCPUs); 16 (one per pair, at most the pairs).
         */
        @Param({"1", "2", "16"})
        public int quickstartThreads;

        VhostNetBackend backend;

        /** Opens the backend on the guest's TAP (its cost is classic's, not quickstart's). */
        @Setup(Level.Trial)
        public void open(SwitchoverGuest guest) throws IOException {
            backend = VhostNetBackend.open(guest.guest.tap);
            backend.setQuickstartThreads(quickstartThreads);
        }

        /** Prestarts from the states the last stop left (outside the measured time). */
        @Setup(Level.Invocation)
        public void prestart(SwitchoverGuest guest) throws IOException {
            guest.prestart(backend);
        }

        /** NET_SET_BACKEND(-1) and GET_VRING_BASE per queue; the states go back to the guest fixture. */
        @TearDown(Level.Invocation)
        public void stop(SwitchoverGuest guest) throws IOException {
            guest.stopRunning(backend, "quickstart");
        }

        /** Closes the vhost-net descriptors. */
        @TearDown(Level.Trial)
        public void close() {
            backend.close();
        }
    }

    /**
     * As {@link Prestarted}, but the operation binds through {@link VhostNet} directly, so the
     * backend does not know its queues are bound: the tear-down unbinds them itself
     * (NET_SET_BACKEND -1 per queue) before {@code stop()} reads the bases.
     */
    @State(Scope.Thread)
    public static class BarePrestarted {
        VhostNetBackend backend;
        QuickstartFloor floor;

        /** Opens the backend; the floor keeps each pair's {@link VhostNet} and TAP queue at hand. */
        @Setup(Level.Trial)
        public void open(SwitchoverGuest guest) throws IOException {
            backend = VhostNetBackend.open(guest.guest.tap);
            floor = new QuickstartFloor(backend, guest.pairs);
        }

        /** Prestarts (outside the measured time). */
        @Setup(Level.Invocation)
        public void prestart(SwitchoverGuest guest) throws IOException {
            guest.prestart(backend);
        }

        /** Unbinds every queue directly, then stops the (prestarted) backend: GET_VRING_BASE per queue. */
        @TearDown(Level.Invocation)
        public void unbindAndStop(SwitchoverGuest guest) throws IOException {
            long cpu = CpuTimeProfiler.currentThreadCpuNanos();
            floor.unbind();
            guest.stopped(backend.stop());
            CpuTimeProfiler.excludeSetup(CpuTimeProfiler.currentThreadCpuNanos() - cpu);
        }

        /** Closes the vhost-net descriptors. */
        @TearDown(Level.Trial)
        public void close() {
            backend.close();
        }
    }

    /** No backend before the operation; the operation opens and starts one, the tear-down closes it. */
    @State(Scope.Thread)
    public static class Unopened {
        VhostNetBackend backend;
        /** Tests only: each pair's observer, set between open and start, to see start's ioctls. Null in benchmarks. */
        IntFunction<IoctlObserver> observers;

        /** Stops the backend the operation started and closes it, its vhost-net descriptors in parallel. */
        @TearDown(Level.Invocation)
        public void stopAndClose(SwitchoverGuest guest) throws IOException {
            VhostNetBackend b = backend;
            backend = null;
            if (b != null) {
                guest.stopAndClose(b, "classic start");
            }
        }

        /** A backend left by a failed operation. */
        @TearDown(Level.Trial)
        public void close() {
            if (backend != null) {
                backend.close();
            }
        }
    }

    /** Early migration's switchover: the final indices into a prestarted backend, then bind. */
    @Benchmark
    public VhostNetBackend quickstart(SwitchoverGuest guest, Prestarted state) throws IOException {
        state.backend.quickstart(guest.finalPositions());
        return state.backend;
    }

    /** A classic start from nothing: open vhost-net (SET_OWNER, GET_FEATURES...), program everything, bind. */
    @Benchmark
    public VhostNetBackend classic(SwitchoverGuest guest, Unopened state) throws IOException {
        VhostNetBackend b = VhostNetBackend.open(guest.guest.tap);
        state.backend = b; // the tear-down closes it even if start fails
        if (state.observers != null) {
            for (int p = 0; p < guest.pairs; p++) {
                b.vhost(p).setObserver(state.observers.apply(p));
            }
        }
        b.start(guest.start());
        return b;
    }

    /**
     * Only quickstart's ioctls: SET_VRING_BASE per virtqueue, TUNSETQUEUE per pair on a multi-queue
     * TAP (answered EINVAL here: the queue is attached already, as after most migrations), then
     * NET_SET_BACKEND per virtqueue.
     */
    @Benchmark
    public QuickstartFloor bareIoctls(SwitchoverGuest guest, BarePrestarted state) throws IOException {
        state.floor.issue(guest.finalPositions());
        return state.floor;
    }
}

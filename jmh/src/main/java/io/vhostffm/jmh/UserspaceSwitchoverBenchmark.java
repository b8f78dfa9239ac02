package io.vhostffm.jmh;

import io.vhostffm.vhost.device.userspace.UserspaceNetBackend;
import java.io.IOException;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * The destination's switchover on the userspace datapath (benchmark 2, on the host: needs only
 * {@code /dev/net/tun} and root). One operation is one switchover of a device with
 * {@link SwitchoverGuest#pairs} queue pairs:
 * <ul>
 * <li>{@link #quickstart}: the backend was opened once and prestarted before the operation
 *     (queue states checked against guest memory, every queue's device side opened,
 *     TUNSETOFFLOAD per TAP queue); measured is {@code UserspaceNetBackend.quickstart(finalPositions)}:
 *     the resync of the prestarted queues ({@code QueueResync}), TUNSETQUEUE per pair on a
 *     multi-queue TAP, the TAP's MTU read from sysfs, and one datapath thread started per pair.</li>
 * <li>{@link #classic}: from no backend: {@code UserspaceNetBackend.open(tap)} (TUNGETIFF,
 *     TUNSETVNETHDRSZ, the offload probe: TUNSETOFFLOAD per TAP queue for each of 4 offload groups
 *     and once more to clear) and {@code start(start)} (the queues opened from their states with a classic restore, then
 *     what quickstart does after its resync).</li>
 * </ul>
 * There is no bare-ioctl floor here: the userspace datapath's quickstart issues no vhost ioctl.
 * Same design as {@link KernelSwitchoverBenchmark}: {@code Level.Invocation} set-up and tear-down
 * (the threads stopped and joined) outside the measured time.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(1)
public class UserspaceSwitchoverBenchmark {

    /** A backend opened once per trial and prestarted before each operation; stopped after it. */
    @State(Scope.Thread)
    public static class Prestarted {
        UserspaceNetBackend backend;

        /** Opens the backend on the guest's TAP. */
        @Setup(Level.Trial)
        public void open(SwitchoverGuest guest) throws IOException {
            backend = UserspaceNetBackend.open(guest.guest.tap);
        }

        /** Prestarts from the states the last stop left (outside the measured time). */
        @Setup(Level.Invocation)
        public void prestart(SwitchoverGuest guest) throws IOException {
            guest.prestart(backend);
        }

        /** Stops (and joins) the datapath threads; the states go back to the guest fixture. */
        @TearDown(Level.Invocation)
        public void stop(SwitchoverGuest guest) throws IOException {
            guest.stopRunning(backend, "quickstart");
        }

        /** Closes the backend (the TAP is the guest fixture's). */
        @TearDown(Level.Trial)
        public void close() {
            backend.close();
        }
    }

    /** No backend before the operation; the operation opens and starts one, the tear-down closes it. */
    @State(Scope.Thread)
    public static class Unopened {
        UserspaceNetBackend backend;

        /** Stops the datapath the operation started and closes the backend. */
        @TearDown(Level.Invocation)
        public void stopAndClose(SwitchoverGuest guest) throws IOException {
            UserspaceNetBackend b = backend;
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

    /** Early migration's switchover: start the datapath threads from the final states. */
    @Benchmark
    public UserspaceNetBackend quickstart(SwitchoverGuest guest, Prestarted state) throws IOException {
        state.backend.quickstart(guest.finalPositions());
        return state.backend;
    }

    /** A classic start from nothing: open the backend (TAP checks, offload probe), prestart, start. */
    @Benchmark
    public UserspaceNetBackend classic(SwitchoverGuest guest, Unopened state) throws IOException {
        UserspaceNetBackend b = UserspaceNetBackend.open(guest.guest.tap);
        state.backend = b;
        b.start(guest.start());
        return b;
    }
}

package io.vhostffm.testkit.device;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.vhost.device.NetBackend;
import io.vhostffm.vhost.device.NetDeviceRuntime;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Streams frames both ways through a device while a scheduled task switches its datapath between
 * backends ({@link NetDeviceRuntime#switchBackend}) every few milliseconds: every frame must arrive
 * exactly once, byte for byte, in order per queue (TX) or flow (RX), with correct headers
 * ({@link DeviceTraffic}). Each direction also waits, mid-stream, for switches of its own, so it
 * sees them however fast it runs.
 */
final class BackendSwitching {
    /** Far longer than a switch takes, even in the bench's emulated VM; only a stuck switcher waits this long. */
    private static final long SWITCH_WAIT_NANOS = 60_000_000_000L;

    private BackendSwitching() {}

    /** What a run saw: switches made, and the backends in the order they ran. */
    record Result(int switches, List<String> sequence) {}

    /**
     * Runs {@code frames} frames each way on {@code rig} while switching between its current
     * backend and {@code other} every {@code periodMillis} ms, and checks each direction saw at
     * least {@code minSwitches} switches.
     */
    static Result streamWhileSwitching(RuntimeRig rig, NetBackend other, int frames, int periodMillis, int minSwitches)
            throws Exception {
        NetDeviceRuntime device = rig.device;
        NetBackend first = device.backend();
        List<String> sequence = new ArrayList<>(List.of(first.capabilities().name()));
        AtomicReference<Throwable> failure = new AtomicReference<>();
        NetBackend[] next = {other};
        int[] switches = {0};
        ScheduledExecutorService switcher = Executors.newSingleThreadScheduledExecutor(
                r -> Thread.ofPlatform().name("backend switcher").unstarted(r));
        switcher.scheduleWithFixedDelay(() -> {
            if (failure.get() != null) {
                return;
            }
            try {
                NetBackend previous = device.switchBackend(next[0]);
                synchronized (sequence) {
                    sequence.add(next[0].capabilities().name());
                    switches[0]++;
                    sequence.notifyAll();
                }
                next[0] = previous;
            } catch (Throwable t) {
                failure.set(t);
                synchronized (sequence) {
                    sequence.notifyAll();
                }
            }
        }, periodMillis, periodMillis, TimeUnit.MILLISECONDS);
        // Each direction streams in minSwitches parts; each part, once its first round is in
        // flight, waits for a switch if none came since the part began.
        int partLength = Math.ceilDiv(frames, minSwitches);
        try {
            if (rig.guest.rxPosted(0) == 0) {
                rig.guest.postRxBuffers(); // else an earlier stream left them posted
            }
            int txSwitchesBefore = switchesNow(sequence, switches);
            for (int partStart = 0; partStart < frames; partStart += partLength) {
                int length = Math.min(partLength, frames - partStart);
                int before = switchesNow(sequence, switches);
                assertEquals(length, DeviceTraffic.transmitAndCheck(rig, partStart, length,
                        () -> awaitSwitchAfter(before, sequence, switches, failure)));
            }
            int rxSwitchesBefore = switchesNow(sequence, switches);
            int txSwitches = rxSwitchesBefore - txSwitchesBefore;
            for (int partStart = 0; partStart < frames; partStart += partLength) {
                int length = Math.min(partLength, frames - partStart);
                int before = switchesNow(sequence, switches);
                DeviceTraffic.receiveAndCheck(rig, partStart, length, null,
                        () -> awaitSwitchAfter(before, sequence, switches, failure));
            }
            int rxSwitches = switchesNow(sequence, switches) - rxSwitchesBefore;
            assertTrue(txSwitches >= minSwitches, "only " + txSwitches + " switches during the TX stream");
            assertTrue(rxSwitches >= minSwitches, "only " + rxSwitches + " switches during the RX stream");
        } catch (Throwable t) {
            // A failed switch usually shows first as frames missing: say why.
            if (failure.get() != null) {
                t.addSuppressed(failure.get());
            }
            throw t;
        } finally {
            switcher.shutdown();
            assertTrue(switcher.awaitTermination(SWITCH_WAIT_NANOS, TimeUnit.NANOSECONDS), "the switcher ended");
        }
        if (failure.get() != null) {
            throw new AssertionError("a switch failed", failure.get());
        }
        if (device.backend() != first) {
            device.switchBackend(first); // the rig closes the backend it was made with
        }
        assertFalse(rig.guest.needsReset(), () -> "NEEDS_RESET: " + device.model().lastError());
        assertTrue(device.isDatapathRunning());
        synchronized (sequence) {
            return new Result(switches[0], List.copyOf(sequence));
        }
    }

    private static int switchesNow(List<String> sequence, int[] switches) {
        synchronized (sequence) {
            return switches[0];
        }
    }

    /** Returns once the switcher has made a switch beyond the first {@code count}; fails if it failed. */
    private static void awaitSwitchAfter(int count, List<String> sequence, int[] switches,
            AtomicReference<Throwable> failure) throws InterruptedException {
        long deadline = System.nanoTime() + SWITCH_WAIT_NANOS;
        synchronized (sequence) {
            while (switches[0] <= count) {
                if (failure.get() != null) {
                    throw new AssertionError("a switch failed", failure.get());
                }
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    throw new AssertionError("no switch within " + SWITCH_WAIT_NANOS / 1_000_000_000L
                            + " s mid-stream (" + switches[0] + " so far)");
                }
                sequence.wait(Math.max(1, left / 1_000_000));
            }
        }
    }
}

package io.vhostffm.vhost.device;


import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Streams frames both ways through a device while another thread switches its datapath between
 * backends ({@link NetDeviceRuntime#switchBackend}) every few milliseconds: every frame must arrive
 * exactly once, byte for byte, in order per queue (TX) or flow (RX), with correct headers
 * ({@link VhostNetBackendKernelTest#transmitAndCheck}, {@link VhostNetBackendKernelTest#receiveAndCheck}).
 */
final class BackendSwitching {
    /** Far longer than a switch takes, even in the bench's emulated VM; only a stuck switcher waits this long. */
    private static final long SWITCH_WAIT_NANOS = 60_000_000_000L;

    private BackendSwitching() {}

    /** What a run saw: switches made, and the backends in the order they ran. */
    record Result(int switches, List<String> sequence, double txFramesPerSecond, double rxFramesPerSecond) {}

    /**
     * Runs {@code frames} frames each way on {@code guest} while switching between its current
     * backend and {@code other} every {@code periodMillis} ms, and checks each direction saw at
     * least {@code minSwitches} switches (it waits for them mid-stream when the stream outruns the
     * period).
     */
    static Result streamWhileSwitching(GuestNet guest, NetBackend other, int frames, int periodMillis, int minSwitches)
            throws Exception {
        NetBackend first = guest.device.backend();
        List<String> sequence = new ArrayList<>(List.of(first.capabilities().name()));
        AtomicBoolean streaming = new AtomicBoolean(true);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        int[] switches = {0};
        Thread switcher = Thread.ofPlatform().name("backend switcher").start(() -> {
            NetBackend next = other;
            try {
                while (streaming.get()) {
                    Thread.sleep(periodMillis);
                    if (!streaming.get()) {
                        break;
                    }
                    NetBackend previous = guest.device.switchBackend(next);
                    synchronized (sequence) {
                        sequence.add(next.capabilities().name());
                        switches[0]++;
                        sequence.notifyAll();
                    }
                    next = previous;
                }
            } catch (Throwable t) {
                failure.set(t);
                synchronized (sequence) {
                    sequence.notifyAll();
                }
            }
        });
        // Each direction streams in minSwitches parts; each part, once its first round is in
        // flight, waits for a switch if none came since the part began. So each direction sees
        // minSwitches switches mid-stream however fast it runs (a stream shorter than
        // minSwitches periods, or a switcher thread the scheduler left behind, saw fewer).
        int partLength = Math.ceilDiv(frames, minSwitches);
        double txRate;
        double rxRate;
        int txSwitchesBefore;
        int rxSwitchesBefore;
        try (Arena arena = Arena.ofConfined()) {
            if (guest.rx(0).freeDescriptors() == GuestNet.QUEUE_SIZE) {
                guest.postAllRxBuffers(); // else an earlier stream left them posted
            }
            synchronized (sequence) {
                txSwitchesBefore = switches[0];
            }
            long start = System.nanoTime();
            for (int partStart = 0; partStart < frames; partStart += partLength) {
                int length = Math.min(partLength, frames - partStart);
                int before = switchesNow(sequence, switches);
                assertEquals(length, VhostNetBackendKernelTest.transmitAndCheck(guest, partStart, length,
                        arena.allocate(4096), () -> awaitSwitchAfter(before, sequence, switches, failure)));
            }
            txRate = frames / ((System.nanoTime() - start) / 1e9);
            int txSwitches;
            synchronized (sequence) {
                txSwitches = switches[0] - txSwitchesBefore;
                rxSwitchesBefore = switches[0];
            }
            start = System.nanoTime();
            for (int partStart = 0; partStart < frames; partStart += partLength) {
                int length = Math.min(partLength, frames - partStart);
                int before = switchesNow(sequence, switches);
                VhostNetBackendKernelTest.receiveAndCheck(guest, partStart, length, arena, null,
                        () -> awaitSwitchAfter(before, sequence, switches, failure));
            }
            rxRate = frames / ((System.nanoTime() - start) / 1e9);
            int rxSwitches;
            synchronized (sequence) {
                rxSwitches = switches[0] - rxSwitchesBefore;
            }
            assertTrue(txSwitches >= minSwitches, "only " + txSwitches + " switches during the TX stream");
            assertTrue(rxSwitches >= minSwitches, "only " + rxSwitches + " switches during the RX stream");
        } catch (Throwable t) {
            // A failed switch usually shows first as frames missing: say why.
            streaming.set(false);
            switcher.join();
            if (failure.get() != null) {
                t.addSuppressed(failure.get());
            }
            throw t;
        } finally {
            streaming.set(false);
            switcher.join();
        }
        if (failure.get() != null) {
            throw new AssertionError("a switch failed", failure.get());
        }
        if (guest.device.backend() != first) {
            guest.device.switchBackend(first); // the guest closes the backend it was made with
        }
        assertFalse(guest.needsReset(), () -> "NEEDS_RESET: " + guest.device.model().lastError());
        assertTrue(guest.device.isDatapathRunning());
        synchronized (sequence) {
            return new Result(switches[0], List.copyOf(sequence), txRate, rxRate);
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

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
    private BackendSwitching() {}

    /** What a run saw: switches made, and the backends in the order they ran. */
    record Result(int switches, List<String> sequence, double txFramesPerSecond, double rxFramesPerSecond) {}

    /**
     * Runs {@code frames} frames each way on {@code guest} while switching between its current
     * backend and {@code other} every {@code periodMillis} ms, and checks each direction saw at
     * least {@code minSwitches} switches.
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
                    }
                    next = previous;
                }
            } catch (Throwable t) {
                failure.set(t);
            }
        });
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
            assertEquals(frames, VhostNetBackendKernelTest.transmitAndCheck(guest, 0, frames, arena.allocate(4096)));
            txRate = frames / ((System.nanoTime() - start) / 1e9);
            int txSwitches;
            synchronized (sequence) {
                txSwitches = switches[0] - txSwitchesBefore;
                rxSwitchesBefore = switches[0];
            }
            start = System.nanoTime();
            VhostNetBackendKernelTest.receiveAndCheck(guest, 0, frames, arena, null);
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
}

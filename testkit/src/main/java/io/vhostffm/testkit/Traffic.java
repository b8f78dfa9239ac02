package io.vhostffm.testkit;

import java.io.IOException;
import java.time.Duration;

/**
 * Drives a {@link FakeGuest} (and, in the same process, its {@link NetworkSide}) until traffic
 * targets are met: the loop a test or a program runs between two checks of what arrived.
 *
 * <p>Both directions are paced, so that nothing the device delivers is dropped by the host or the
 * observer: towards the guest by the network side's window ({@link NetworkSide#sendWithinWindow}),
 * from the guest by a {@link TransmitGate} (with a network side in this process,
 * {@link NetworkSide#fromGuestWindow} of {@link NetworkSide#FROM_GUEST_WINDOW} frames).
 */
public final class Traffic {
    /** Longest wait for a used-buffer notification when nothing moved (the loop re-checks everything after). */
    private static final int IDLE_WAIT_MILLIS = 1;
    /** Frames a pair makes available per round at most. */
    private static final int BURST = 64;

    private Traffic() {}

    /**
     * Transmits until the guest made {@code txTotal[p]} frames available on each pair and the
     * device used them all, and collects until it received {@code rxTotal[p]} of stream {@code p};
     * with a network side, also sends stream {@code p} up to {@code rxTotal[p]} frames within its
     * window, receives until it saw every frame the guest transmitted, and keeps the guest's
     * frames in flight within {@link NetworkSide#FROM_GUEST_WINDOW} of what it saw. Without one
     * (the network side is in another process), the guest transmits as fast as the device takes
     * frames: use {@link #run(FakeGuest, NetworkSide, TransmitGate, long[], long[], Duration)}
     * with a gate that carries the other process's count.
     *
     * @throws IllegalStateException naming what is missing when {@code timeout} passes
     */
    public static void run(FakeGuest guest, NetworkSide network, long[] txTotal, long[] rxTotal, Duration timeout)
            throws IOException {
        TransmitGate gate = network == null ? TransmitGate.OPEN
                : network.fromGuestWindow(transmitted(guest), NetworkSide.FROM_GUEST_WINDOW);
        run(guest, network, gate, txTotal, rxTotal, timeout);
    }

    /**
     * As {@link #run(FakeGuest, NetworkSide, long[], long[], Duration)}, the guest's transmit
     * held within what {@code gate} allows (asked once per round).
     *
     * @throws IOException from the gate (e.g. its credit did not come in time)
     */
    public static void run(FakeGuest guest, NetworkSide network, TransmitGate gate, long[] txTotal, long[] rxTotal,
            Duration timeout) throws IOException {
        long deadline = System.nanoTime() + timeout.toNanos();
        long wanted = 0;
        for (long t : txTotal) {
            wanted += t;
        }
        int pairs = guest.pairs();
        int[] queues = new int[2 * pairs];
        for (int q = 0; q < queues.length; q++) {
            queues[q] = q;
        }
        long transmitted = transmitted(guest);
        for (int round = 0; ; round++) {
            int progress = 0;
            boolean done = true;
            boolean txLeft = false;
            for (int p = 0; p < pairs; p++) {
                txLeft |= txTotal[p] > guest.transmitted(p);
            }
            long allowance = txLeft ? gate.allowance(transmitted) : 0;
            // A shut gate lets some pairs through per round: start each round at another pair, so
            // none waits behind the others for long.
            for (int i = 0; i < pairs; i++) {
                int p = (round + i) % pairs;
                long left = txTotal[p] - guest.transmitted(p);
                if (left > 0) {
                    done = false;
                    int chunk = (int) Math.min(BURST, Math.min(left, allowance));
                    if (chunk > 0) {
                        int added = guest.transmitNumbered(p, chunk);
                        allowance -= added;
                        transmitted += added;
                        progress += added;
                    }
                }
                if (network != null) {
                    progress += network.sendWithinWindow(p, rxTotal[p] - network.sentToGuest(p));
                }
            }
            progress += guest.collectTx();
            progress += guest.collectRx();
            if (network != null) {
                long before = network.seenFromGuest();
                progress += (int) (network.receiveFromGuest(Long.MAX_VALUE, 0) - before);
                done &= network.seenFromGuest() >= wanted;
            }
            for (int p = 0; p < pairs; p++) {
                done &= guest.txInFlight(p) == 0 && guest.receivedCount(p) >= rxTotal[p];
            }
            if (done) {
                return;
            }
            if (System.nanoTime() > deadline) {
                StringBuilder sb = new StringBuilder("traffic did not complete in " + timeout + ":");
                for (int p = 0; p < pairs; p++) {
                    sb.append(String.format(" pair %d: transmitted %d/%d, in flight %d, received %d/%d;", p,
                            guest.transmitted(p), txTotal[p], guest.txInFlight(p), guest.receivedCount(p), rxTotal[p]));
                }
                if (network != null) {
                    sb.append(" the network saw ").append(network.seenFromGuest()).append('/').append(wanted)
                            .append(", TAP drops towards the guest ").append(network.droppedToGuest()).append(", ")
                            .append(network.observerDrops());
                }
                throw new IllegalStateException(sb.toString());
            }
            if (progress == 0) {
                guest.awaitCall(IDLE_WAIT_MILLIS, queues);
            }
        }
    }

    /** The guest's frames made available so far, all pairs. */
    private static long transmitted(FakeGuest guest) {
        long n = 0;
        for (int p = 0; p < guest.pairs(); p++) {
            n += guest.transmitted(p);
        }
        return n;
    }
}

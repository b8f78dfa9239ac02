package io.vhostffm.programs.demo;

import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.testkit.NetworkSide;
import io.vhostffm.vhost.os.NativeCallException;
import java.time.Duration;

/** Drives a {@link FakeGuest} (and, in the same process, its {@link NetworkSide}) until traffic targets are met. */
public final class Traffic {
    /** Longest wait for a used-buffer notification when nothing moved (the loop re-checks everything after). */
    private static final int IDLE_WAIT_MILLIS = 1;

    private Traffic() {}

    /**
     * Transmits until the guest made {@code txTotal[p]} frames available on each pair and the
     * device used them all, and collects until it received {@code rxTotal[p]} of stream {@code p};
     * with a network side, also sends stream {@code p} up to {@code rxTotal[p]} frames within its
     * window, and receives until it saw every frame the guest transmitted.
     *
     * @throws IllegalStateException naming what is missing when {@code timeout} passes
     */
    public static void run(FakeGuest guest, NetworkSide network, long[] txTotal, long[] rxTotal, Duration timeout)
            throws NativeCallException {
        long deadline = System.nanoTime() + timeout.toNanos();
        long wanted = 0;
        for (long t : txTotal) {
            wanted += t;
        }
        int[] queues = new int[2 * guest.pairs()];
        for (int q = 0; q < queues.length; q++) {
            queues[q] = q;
        }
        while (true) {
            int progress = 0;
            boolean done = true;
            for (int p = 0; p < guest.pairs(); p++) {
                long left = txTotal[p] - guest.transmitted(p);
                if (left > 0) {
                    progress += guest.transmitNumbered(p, (int) Math.min(64, left));
                    done = false;
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
            for (int p = 0; p < guest.pairs(); p++) {
                done &= guest.txInFlight(p) == 0 && guest.receivedCount(p) >= rxTotal[p];
            }
            if (done) {
                return;
            }
            if (System.nanoTime() > deadline) {
                StringBuilder sb = new StringBuilder("traffic did not complete in " + timeout + ":");
                for (int p = 0; p < guest.pairs(); p++) {
                    sb.append(String.format(" pair %d: transmitted %d/%d, in flight %d, received %d/%d;", p,
                            guest.transmitted(p), txTotal[p], guest.txInFlight(p), guest.receivedCount(p), rxTotal[p]));
                }
                if (network != null) {
                    sb.append(" the network saw ").append(network.seenFromGuest()).append('/').append(wanted)
                            .append(", TAP drops towards the guest ").append(network.droppedToGuest());
                }
                throw new IllegalStateException(sb.toString());
            }
            if (progress == 0) {
                guest.awaitCall(IDLE_WAIT_MILLIS, queues);
            }
        }
    }
}

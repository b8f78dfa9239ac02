package io.vhostffm.programs.demo;

import io.vhostffm.vhost.os.NativeCallException;
import java.time.Duration;

/** Drives a {@link FakeGuest} (and, in the same process, its {@link Wire}) until traffic targets are met. */
public final class Traffic {
    private Traffic() {}

    /**
     * Transmits until the guest made {@code txTotal[p]} frames available on each pair and the
     * device used them all, and collects until it received {@code rxTotal[p]} of stream {@code p};
     * with a wire, also until the wire saw every frame the guest transmitted.
     *
     * @throws IllegalStateException naming what is missing when {@code timeout} passes
     */
    public static void run(FakeGuest guest, Wire wire, long[] txTotal, long[] rxTotal, Duration timeout)
            throws NativeCallException, InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        long wanted = 0;
        for (long t : txTotal) {
            wanted += t;
        }
        while (true) {
            int progress = 0;
            boolean done = true;
            for (int p = 0; p < guest.pairs(); p++) {
                long left = txTotal[p] - guest.transmitted(p);
                if (left > 0) {
                    progress += guest.transmit(p, (int) Math.min(64, left));
                    done = false;
                }
            }
            progress += guest.collectTx();
            progress += guest.collectRx();
            if (wire != null) {
                long before = wire.seenFromGuest();
                progress += (int) (wire.receiveFromGuest(Long.MAX_VALUE, 0) - before);
                done &= wire.seenFromGuest() >= wanted;
            }
            for (int p = 0; p < guest.pairs(); p++) {
                done &= guest.txInFlight(p) == 0 && guest.received(p).size() >= rxTotal[p];
            }
            if (done) {
                return;
            }
            if (System.nanoTime() > deadline) {
                StringBuilder sb = new StringBuilder("traffic did not complete in " + timeout + ":");
                for (int p = 0; p < guest.pairs(); p++) {
                    sb.append(String.format(" pair %d: transmitted %d/%d, in flight %d, received %d/%d;", p,
                            guest.transmitted(p), txTotal[p], guest.txInFlight(p), guest.received(p).size(), rxTotal[p]));
                }
                if (wire != null) {
                    sb.append(" the wire saw ").append(wire.seenFromGuest()).append('/').append(wanted);
                }
                throw new IllegalStateException(sb.toString());
            }
            if (progress == 0) {
                Thread.sleep(0, 200_000);
            }
        }
    }
}

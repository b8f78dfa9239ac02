package io.vhostffm.programs.demo;

import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.testkit.Testpmd;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * The guest's traffic when the network is a vhost-user backend process that sends every frame
 * back (testpmd's {@code macswap}): the guest transmits numbered frames on each pair and receives
 * them again, their MAC addresses swapped. Nothing passes the TAP, so the account is kept by the
 * guest (what it sent, what came back; both move with its state) and by the backend processes'
 * own counters, the only place a lost frame may be counted.
 */
final class EchoTraffic {
    private EchoTraffic() {}

    /** Frames the guest makes available per pair at a time. */
    private static final int BURST = 32;

    /**
     * {@code frames} more on every pair, then until the last frame sent on each pair came back:
     * the backend keeps each pair's order, so every earlier frame of the pair then came back or
     * was dropped (counted) by a backend process at a stop.
     *
     * @throws IllegalStateException when a pair's last frame did not come back within {@code timeout}
     */
    static void roundTrip(FakeGuest guest, int frames, Duration timeout) throws Exception {
        int pairs = guest.pairs();
        long[] target = new long[pairs];
        for (int p = 0; p < pairs; p++) {
            target[p] = guest.transmitted(p) + frames;
        }
        long deadline = System.nanoTime() + timeout.toNanos();
        int[] calls = new int[2 * pairs];
        for (int q = 0; q < calls.length; q++) {
            calls[q] = q;
        }
        while (!allBack(guest, target)) {
            for (int p = 0; p < pairs; p++) {
                if (guest.transmitted(p) < target[p]) {
                    guest.transmitNumbered(p, (int) Math.min(BURST, target[p] - guest.transmitted(p)));
                }
            }
            guest.collectTx();
            if (guest.collectRx() == 0) {
                guest.awaitCall(10, calls);
            }
            if (System.nanoTime() - deadline > 0) {
                throw new IllegalStateException("the last frame did not come back within " + timeout.toMillis()
                        + " ms: " + progress(guest, target));
            }
        }
    }

    /**
     * After the datapath stopped for good: collects what the backend used before the stop.
     *
     * @return problems (transmit chains never used), none when empty
     */
    static List<String> drain(FakeGuest guest) throws Exception {
        guest.collectTx();
        guest.collectRx();
        List<String> problems = new ArrayList<>();
        for (int p = 0; p < guest.pairs(); p++) {
            if (guest.txInFlight(p) != 0) {
                problems.add("pair " + p + ": " + guest.txInFlight(p) + " transmit chains never used");
            }
        }
        return problems;
    }

    /**
     * The whole run's account: on each pair the frames came back once each, in increasing order;
     * what the backend processes took is what the guest sent, what they gave back is what the
     * guest received, and the difference is their own TX-dropped.
     *
     * @param counted the backend processes' counters, added
     * @return problems, none when empty
     */
    static List<String> check(FakeGuest guest, Testpmd.Counters counted) {
        List<String> problems = new ArrayList<>();
        long sent = 0;
        long back = 0;
        for (int p = 0; p < guest.pairs(); p++) {
            List<Long> order = guest.received(p);
            long last = -1;
            for (long seq : order) {
                if (seq <= last || seq >= guest.transmitted(p)) {
                    problems.add("pair " + p + ": frame " + seq + " back after " + last + " (of "
                            + guest.transmitted(p) + " sent): duplicated, reordered or never sent");
                    break;
                }
                last = seq;
            }
            sent += guest.transmitted(p);
            back += order.size();
        }
        if (counted.rxPackets() != sent) {
            problems.add("the backend processes took " + counted.rxPackets() + " frames; the guest sent " + sent);
        }
        if (counted.txPackets() != back) {
            problems.add("the backend processes gave back " + counted.txPackets() + " frames; the guest received "
                    + back);
        }
        if (sent - back != counted.txDropped()) {
            problems.add((sent - back) + " frames did not come back; the backend processes counted "
                    + counted.txDropped() + " TX-dropped");
        }
        return problems;
    }

    private static boolean allBack(FakeGuest guest, long[] target) {
        for (int p = 0; p < target.length; p++) {
            int n = guest.receivedCount(p);
            if (n == 0 || guest.received(p).get(n - 1) != target[p] - 1) {
                return false;
            }
        }
        return true;
    }

    private static String progress(FakeGuest guest, long[] target) {
        StringBuilder sb = new StringBuilder();
        for (int p = 0; p < target.length; p++) {
            sb.append(p == 0 ? "" : "; ").append("pair ").append(p).append(": ").append(guest.receivedCount(p))
                    .append(" back of ").append(guest.transmitted(p)).append(" sent, waiting for frame ")
                    .append(target[p] - 1);
        }
        return sb.toString();
    }
}

package io.vhostffm.migration.net;

import io.vhostffm.vhost.virtio.net.ContentComparable;
import java.util.Arrays;

/**
 * The migration section of the transmit work a source's datapath had taken from the guest but not
 * completed when it stopped: per transmit virtqueue ({@code 2i+1}, index {@code i} here) the
 * chains in flight. A running device reports zeros (its datapath owns what it took); at
 * stop-and-copy the stopped datapath's numbers are compared with that, so pending transmit work
 * turns into a delta the destination resolves (it takes those chains again) instead of being lost.
 *
 * @param chainsInFlight per queue pair, the transmit chains taken but not used
 */
public record PendingTx(int[] chainsInFlight) implements ContentComparable {

    /** Copies the array in. */
    public PendingTx {
        chainsInFlight = chainsInFlight.clone();
        for (int i = 0; i < chainsInFlight.length; i++) {
            if (chainsInFlight[i] < 0 || chainsInFlight[i] > 32768) {
                throw new IllegalArgumentException("chainsInFlight[" + i + "]: " + chainsInFlight[i] + " outside 0..32768");
            }
        }
    }

    /** Nothing pending on {@code pairs} pairs. */
    public static PendingTx none(int pairs) {
        return new PendingTx(new int[pairs]);
    }

    /** A copy of the counts. */
    @Override
    public int[] chainsInFlight() {
        return chainsInFlight.clone();
    }

    /** Chains pending on pair {@code pair}'s transmit queue (0 beyond the array). */
    public int of(int pair) {
        return pair < chainsInFlight.length ? chainsInFlight[pair] : 0;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof PendingTx p && Arrays.equals(chainsInFlight, p.chainsInFlight);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(chainsInFlight);
    }

    @Override
    public String toString() {
        return "PendingTx" + Arrays.toString(chainsInFlight);
    }
}

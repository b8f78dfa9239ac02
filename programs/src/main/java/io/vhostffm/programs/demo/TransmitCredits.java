package io.vhostffm.programs.demo;

import io.vhostffm.migration.net.UnixSocketChannel;
import io.vhostffm.testkit.NetworkSide;
import io.vhostffm.testkit.TransmitGate;
import io.vhostffm.vhost.os.DescriptorPoller;
import java.io.IOException;
import java.time.Duration;
import java.util.List;

/**
 * Credit-based flow control of the guest's transmit when the guest runs in one process (the
 * demo's destination) and the observer of its frames, a {@link NetworkSide}, in another (the
 * source). The observer reads the guest's frames from a socket queue of bounded size; a guest
 * that transmits faster than it reads would make the kernel drop frames the device delivered, and
 * a check would take the observer's loss for the device's. The same pattern serves any test rig
 * whose guest and network side live in different processes.
 *
 * <h2>The protocol, on the demo's control channel after the migration</h2>
 * <ol>
 *   <li>source -&gt; destination: {@link TrafficPlan} with the first credit,
 *       {@code transmitUpTo = seen + window}, where {@code seen} is the guest's frames the
 *       observer has seen so far and {@code window} the frames the guest may have in flight
 *       beyond them ({@link NetworkSide#FROM_GUEST_WINDOW}). Counts are the guest's frames of all
 *       pairs since it booted: the guest carries its own count across the migration, and the
 *       observer has watched it since the boot.</li>
 *   <li>source -&gt; destination, as the observer sees frames: {@link TransmitCredit}
 *       {@code (seen + window)}, each time the limit has risen by a quarter window, and once more
 *       when it first covers everything the plan asks the guest to transmit; then no more.</li>
 *   <li>destination: the guest's transmitted total never exceeds the latest credit
 *       ({@link Gate}, a {@link TransmitGate} for {@code Traffic.run}).</li>
 *   <li>destination -&gt; source, when the plan is done: the guest's state, as before.</li>
 * </ol>
 *
 * <h2>Deadlines</h2>
 * The destination waits for a credit at most {@link TrafficPlan#creditTimeoutMillis()} while its
 * credit is used up, then fails with a {@link CreditTimeoutException} naming what it transmitted
 * and the last credit. The source gives up when neither direction moves for its idle deadline
 * ({@link Grantor#run}), naming what it saw and granted.
 */
final class TransmitCredits {
    private TransmitCredits() {}

    /** The destination waited longer than the plan's credit timeout for a credit. */
    static final class CreditTimeoutException extends IOException {
        private static final long serialVersionUID = 1L;

        CreditTimeoutException(String message) {
            super(message);
        }
    }

    /** The source's side: drives the network side and grants credit as it sees the guest's frames. */
    static final class Grantor {
        private final NetworkSide wire;
        private final UnixSocketChannel channel;
        private final int window;
        private final long transmitTotal;
        private long granted;

        /**
         * @param transmitTotal the guest's frames in all (every pair, since boot) once the plan is done
         */
        Grantor(NetworkSide wire, UnixSocketChannel channel, int window, long transmitTotal) {
            this.wire = wire;
            this.channel = channel;
            this.window = window;
            this.transmitTotal = transmitTotal;
            this.granted = wire.seenFromGuest() + window;
        }

        /** The first credit, for the plan. */
        long firstCredit() {
            return granted;
        }

        /** Sends a credit when the limit rose by a quarter window, or first covers the whole plan. */
        void grant() throws IOException {
            long limit = wire.seenFromGuest() + window;
            if (granted >= transmitTotal) {
                return; // the last credit covered everything
            }
            if (limit - granted >= window / 4 || limit >= transmitTotal) {
                granted = limit;
                Messages.send(channel, TransmitCredit.class, new TransmitCredit(limit));
            }
        }

        /**
         * The source's half of the plan: sends stream {@code p} up to {@code rxTotal[p]} frames
         * within the network side's window, receives the guest's frames until it saw
         * {@code transmitTotal} in all, granting credit as they come. (Whether the guest took its
         * frames, the guest's state says afterwards.)
         *
         * @throws IOException when neither direction moved for {@code idle}
         */
        void run(long[] rxTotal, Duration idle) throws IOException {
            long idleSince = System.nanoTime();
            while (true) {
                long progress = 0;
                boolean sentAll = true;
                for (int p = 0; p < rxTotal.length; p++) {
                    progress += wire.sendWithinWindow(p, rxTotal[p] - wire.sentToGuest(p));
                    sentAll &= wire.sentToGuest(p) >= rxTotal[p];
                }
                long seen = wire.seenFromGuest();
                // Drain what is queued (0 ms), or wait a little for a frame when nothing moved.
                progress += wire.receiveFromGuest(Long.MAX_VALUE, progress == 0 ? 1 : 0) - seen;
                grant();
                if (sentAll && wire.seenFromGuest() >= transmitTotal) {
                    return;
                }
                if (progress > 0) {
                    idleSince = System.nanoTime();
                } else if (System.nanoTime() - idleSince > idle.toNanos()) {
                    throw new IOException("network side: nothing moved for " + idle.toMillis() + " ms: saw "
                            + wire.seenFromGuest() + " of the guest's " + transmitTotal + " frames, credit granted up to "
                            + granted + "; " + wire.inFlightToGuest() + " frames in flight towards the guest; "
                            + wire.observerDrops());
                }
            }
        }
    }

    /**
     * The destination's side: the guest may transmit up to the latest credit. It reads credits
     * off the control channel as they come, without waiting while credit is left, and waits at
     * most the credit timeout once it is used up. Close it when the traffic is done.
     */
    static final class Gate implements TransmitGate, AutoCloseable {
        private final UnixSocketChannel channel;
        private final DescriptorPoller readable;
        private final long timeoutNanos;
        private long transmitUpTo;
        private long shutSince = -1;

        Gate(UnixSocketChannel channel, long firstCredit, Duration creditTimeout) {
            this.channel = channel;
            this.readable = new DescriptorPoller(List.of(channel.socket().fd()));
            this.timeoutNanos = creditTimeout.toNanos();
            this.transmitUpTo = firstCredit;
        }

        @Override
        public long allowance(long transmitted) throws IOException {
            // Credit left: only take what already arrived. None left: wait up to 1 ms for one (the
            // caller's loop comes back, and the deadline below counts the whole wait).
            int wait = transmitted < transmitUpTo ? 0 : 1;
            while (readable.poll(wait) > 0) {
                // readable, or hung up: then the read says the source is gone (EOFException)
                transmitUpTo = Math.max(transmitUpTo, Messages.receive(channel, TransmitCredit.class).transmitUpTo());
                wait = 0;
            }
            long left = transmitUpTo - transmitted;
            if (left > 0) {
                shutSince = -1;
                return left;
            }
            long now = System.nanoTime();
            if (shutSince < 0) {
                shutSince = now;
            } else if (now - shutSince > timeoutNanos) {
                throw new CreditTimeoutException("no transmit credit from the source for " + timeoutNanos / 1_000_000
                        + " ms: the guest transmitted " + transmitted + " frames, the last credit allows " + transmitUpTo);
            }
            return 0;
        }

        /** The latest credit. */
        long transmitUpTo() {
            return transmitUpTo;
        }

        @Override
        public void close() {
            readable.close();
        }
    }
}

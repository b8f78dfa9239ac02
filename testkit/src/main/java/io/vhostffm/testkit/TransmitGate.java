package io.vhostffm.testkit;

import java.io.IOException;

/**
 * How many more frames a guest may transmit now: the flow control of the guest -> network
 * direction. The observer of the guest's frames (a {@link NetworkSide}'s AF_PACKET socket) keeps
 * them in a socket queue of bounded size; a guest that transmits faster than the observer reads
 * would overflow it, and the kernel would drop frames the device delivered. A gate keeps the
 * guest's frames in flight (transmitted, not yet seen by the observer) within a window, so a
 * check of what arrived measures the device alone.
 *
 * <p>{@link Traffic#run} asks the gate once per round. In one process the gate is
 * {@link NetworkSide#fromGuestWindow}; across processes it is whatever carries the observer's
 * count to the guest's process (the demo grants credits over its control channel).
 */
@FunctionalInterface
public interface TransmitGate {
    /** A gate that never closes: the guest transmits as fast as its device takes frames. */
    TransmitGate OPEN = transmitted -> Long.MAX_VALUE;

    /**
     * Frames the guest may make available now, beyond the {@code transmitted} it has made
     * available in all (every pair, since it booted); 0 when it must wait. Never blocks for long.
     *
     * @throws IOException when the gate can no longer open (e.g. its credit did not come in time),
     *     naming what it waited for
     */
    long allowance(long transmitted) throws IOException;
}

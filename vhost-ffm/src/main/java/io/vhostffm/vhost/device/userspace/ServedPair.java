package io.vhostffm.vhost.device.userspace;

import io.vhostffm.vhost.internal.CallState;
import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.FileDescriptor;
import io.vhostffm.vhost.os.NativeCallException;

/**
 * One queue pair as its worker serves it: the two paths, the descriptors the worker polls for it,
 * and what the last round left (each path's state, whether the TAP was found empty). A worker
 * serves one or more of these in each round; each has its own state, so one pair waiting for
 * the TAP or for guest buffers does not hold up another. Not thread-safe: its worker's thread
 * only (the datapath reads the paths once no worker touches them).
 */
final class ServedPair {
    /** Frames per direction before the other direction (and the next pair) gets its turn. */
    static final int BUDGET = 64;

    /** Its place in the datapath's pairs (the order they were given). */
    final int index;
    /** Its queue pair number ({@link QueuePairConfig#pair()}). */
    final int pair;
    final TxPath tx;
    final RxPath rx;
    final EventFd txKick;
    final EventFd rxKick;
    final FileDescriptor tap;

    /** Left by the last round: {@link TxPath} result. */
    int txState = TxPath.IDLE;
    /** Left by the last round: {@link RxPath} result. */
    int rxState = RxPath.MORE;
    /** The last poll found the TAP not readable while receive waited for it: skip one readv. */
    boolean tapEmpty;
    /** Whether the last round moved a frame. */
    boolean moved;
    /** Stopped on bad guest input: never serviced again, its descriptors let go. */
    boolean stopped;

    private boolean held;
    int tapNumber = -1;
    int txKickNumber = -1;
    int rxKickNumber = -1;

    ServedPair(int index, int pair, TxPath tx, RxPath rx, EventFd txKick, EventFd rxKick, FileDescriptor tap) {
        this.index = index;
        this.pair = pair;
        this.tx = tx;
        this.rx = rx;
        this.txKick = txKick;
        this.rxKick = rxKick;
        this.tap = tap;
    }

    /**
     * Holds its descriptors open while it is served: a close elsewhere waits for {@link
     * #release}, so a number cannot be reused under a pending poll, readv or writev. On failure
     * nothing stays held.
     */
    void acquire() {
        tapNumber = tap.acquire();
        try {
            txKickNumber = txKick.fd().acquire();
            try {
                rxKickNumber = rxKick.fd().acquire();
            } catch (RuntimeException e) {
                txKick.fd().release();
                throw e;
            }
        } catch (RuntimeException e) {
            tap.release();
            throw e;
        }
        held = true;
    }

    /** Lets go of what {@link #acquire} held; once only, nothing if it held nothing. */
    void release() {
        if (!held) {
            return;
        }
        held = false;
        try {
            rxKick.fd().release();
        } finally {
            try {
                txKick.fd().release();
            } finally {
                tap.release();
            }
        }
    }

    /**
     * One round: up to {@link #BUDGET} frames each way.
     *
     * @param quiet the worker is busy-polling: an empty ring leaves notifications off
     * @return whether either path has more work right away
     */
    boolean service(CallState s, boolean quiet) throws NativeCallException {
        txState = tx.service(BUDGET, tapNumber, s, quiet);
        // Only a readable TAP changes a receive path waiting for it: right after a poll that did
        // not report it readable, its readv would fail with EAGAIN (a system call wasted per
        // wake-up for transmit). Level-triggered, so the next round or poll sees a frame.
        boolean rxSkipped = tapEmpty;
        tapEmpty = false;
        if (!rxSkipped) {
            rxState = rx.service(BUDGET, tapNumber, s, quiet);
        }
        moved = tx.moved() + (rxSkipped ? 0 : rx.moved()) > 0;
        return txState == TxPath.MORE || rxState == RxPath.MORE;
    }
}

package io.vhostffm.vhost.device.userspace;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import io.vhostffm.vhost.os.Errno;
import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.FileDescriptor;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.internal.CallState;
import io.vhostffm.vhost.internal.Libc;
import io.vhostffm.vhost.internal.LinuxConstants;
import io.vhostffm.vhost.internal.NativeErrors;
import io.vhostffm.vhost.internal.Structs;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * The thread body of one queue pair: services the transmit and receive paths while they have
 * work, and otherwise sleeps in one poll(2) on the stop eventfd, both kick eventfds and the TAP
 * queue (readable when receive waits for frames, writable when transmit waits for room). Kicks are
 * consumed when they wake it; while it is busy they just accumulate in their eventfds.
 */
final class QueuePairWorker implements Runnable {
    /** Frames per direction before the other direction gets its turn. */
    private static final int BUDGET = 64;
    private static final int STOP = 0;
    private static final int TX_KICK = 1;
    private static final int RX_KICK = 2;
    private static final int TAP = 3;
    private static final long POLLFD_BYTES = Structs.POLLFD.byteSize();
    private static final long EVENTS = Structs.offset(Structs.POLLFD, "events");
    private static final long REVENTS = Structs.offset(Structs.POLLFD, "revents");
    private static final int EINTR = Errno.number("EINTR").orElseThrow();

    private final int pair;
    private final TxPath tx;
    private final RxPath rx;
    private final EventFd txKick;
    private final EventFd rxKick;
    private final EventFd stop;
    private final FileDescriptor tap;
    private final UserspaceDatapath owner;
    private final MemorySegment pollfds;

    QueuePairWorker(int pair, TxPath tx, RxPath rx, EventFd txKick, EventFd rxKick, EventFd stop, FileDescriptor tap,
            Arena arena, UserspaceDatapath owner) {
        this.pair = pair;
        this.tx = tx;
        this.rx = rx;
        this.txKick = txKick;
        this.rxKick = rxKick;
        this.stop = stop;
        this.tap = tap;
        this.owner = owner;
        this.pollfds = arena.allocate(POLLFD_BYTES * 4, 8);
    }

    int pair() {
        return pair;
    }

    String tapDescription() {
        return tap.description();
    }

    TxPath tx() {
        return tx;
    }

    RxPath rx() {
        return rx;
    }

    @Override
    public void run() {
        // Hold every descriptor open for the whole run: a close elsewhere waits for our release,
        // so its number cannot be reused under a pending poll, readv or writev.
        int tapNumber = tap.acquire();
        try {
            int txKickNumber = txKick.fd().acquire();
            try {
                int rxKickNumber = rxKick.fd().acquire();
                try {
                    int stopNumber = stop.fd().acquire();
                    try {
                        setFd(STOP, stopNumber);
                        setFd(TX_KICK, txKickNumber);
                        setFd(RX_KICK, rxKickNumber);
                        loop(tapNumber);
                    } finally {
                        stop.fd().release();
                    }
                } finally {
                    rxKick.fd().release();
                }
            } finally {
                txKick.fd().release();
            }
        } catch (Throwable t) {
            owner.workerFailed(this, t);
        } finally {
            tap.release();
        }
    }

    private void loop(int tapNumber) throws NativeCallException {
        CallState s = CallState.current();
        while (!owner.stopRequested()) {
            int txState = tx.service(BUDGET, tapNumber, s);
            int rxState = rx.service(BUDGET, tapNumber, s);
            if (txState == TxPath.MORE || rxState == RxPath.MORE) {
                continue;
            }
            short tapEvents = 0;
            if (rxState == RxPath.WAIT_TAP) {
                tapEvents |= LinuxConstants.POLLIN;
            }
            if (txState == TxPath.BLOCKED) {
                tapEvents |= LinuxConstants.POLLOUT;
            }
            setEvents(STOP, LinuxConstants.POLLIN);
            setEvents(TX_KICK, LinuxConstants.POLLIN);
            setEvents(RX_KICK, LinuxConstants.POLLIN);
            // poll ignores a negative fd: a TAP nobody waits on must not wake us with POLLERR/POLLHUP.
            setFd(TAP, tapEvents == 0 ? -1 : tapNumber);
            setEvents(TAP, tapEvents);
            if (owner.stopRequested()) {
                break;
            }
            int ready = Libc.poll(s, pollfds, 4, -1);
            if (ready < 0) {
                int errno = s.errno();
                if (errno == EINTR) {
                    continue;
                }
                throw NativeErrors.failure("poll", stop.fd(), errno);
            }
            if (revents(TX_KICK) != 0) {
                txKick.consume();
            }
            if (revents(RX_KICK) != 0) {
                rxKick.consume();
            }
            // STOP is left signalled: the flag ends the loop; TAP readiness is re-tested by readv/writev.
        }
    }

    private void setFd(int slot, int fd) {
        pollfds.set(JAVA_INT, slot * POLLFD_BYTES, fd);
    }

    private void setEvents(int slot, short events) {
        pollfds.set(JAVA_SHORT, slot * POLLFD_BYTES + EVENTS, events);
        pollfds.set(JAVA_SHORT, slot * POLLFD_BYTES + REVENTS, (short) 0);
    }

    private short revents(int slot) {
        return pollfds.get(JAVA_SHORT, slot * POLLFD_BYTES + REVENTS);
    }
}

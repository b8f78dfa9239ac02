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
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.locks.LockSupport;

/**
 * The thread body of one queue pair: services the transmit and receive paths while they have
 * work, and otherwise sleeps in one poll(2) on the stop eventfd, both kick eventfds and the TAP
 * queue (readable when receive waits for frames, writable when transmit waits for room). Kicks are
 * consumed when they wake it; while it is busy they just accumulate in their eventfds.
 *
 * <p>Before it sleeps it busy-polls for a bounded window ({@link #BUSY_POLL_NANOS}): it services
 * both paths again and again with the guest's notifications left off, so that work arriving
 * within the window is taken without a kick from the guest, a wake-up of this thread or a poll
 * (the costs that dominate a frame here: each is a system call or two and a trip through the
 * scheduler). Only once the window passed with nothing moved are notifications turned on (with
 * the usual re-check) and the thread goes to sleep. Any frame moved opens a new window.
 *
 * <p>Its {@linkplain #phase phase} lets a stop take a sleeping worker without waking it: the
 * worker is {@link #SLEEPING} only while it touches nothing (no ring, no guest memory, no kick or
 * TAP read) and takes itself back to {@link #RUNNING} with a compare-and-set after every poll, so
 * the stopper's compare-and-set from {@link #SLEEPING} to {@link #STOPPED} ({@link
 * #claimIfSleeping}) ends it for good: when it wakes it finds the claim and leaves, touching
 * nothing. A running worker sees the stop flag and sets {@link #STOPPED} itself as it leaves.
 * Either way the compare-and-set or the volatile write orders everything the worker did before
 * it (ring indices, chains in hand) before the stopper's reads of the queue state.
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
    /**
     * The busy-poll window, from the system property {@value #BUSY_POLL_PROPERTY} (microseconds;
     * 0 turns busy polling off). The default, 50 us, covers the gap between a guest's batches in
     * the datapath benchmark (its far side reading the previous batch): there it lifted transmit
     * from 0.6-0.8 of C doing the same work to 0.9-1.4, on a 2-core machine shared with other
     * work (docs/jmh.md has the figures). The thread yields between rounds, so a thread waiting
     * for its processor is not kept out for the window.
     */
    static final long BUSY_POLL_NANOS;
    /** The system property that sets the busy-poll window in microseconds. */
    static final String BUSY_POLL_PROPERTY = "io.vhostffm.userspace.busyPollMicros";
    private static final long DEFAULT_BUSY_POLL_MICROS = 50;

    static {
        long micros = Long.getLong(BUSY_POLL_PROPERTY, DEFAULT_BUSY_POLL_MICROS);
        if (micros < 0 || micros > 1_000_000) {
            throw new IllegalArgumentException(BUSY_POLL_PROPERTY + " is 0 to 1000000 microseconds: " + micros);
        }
        BUSY_POLL_NANOS = micros * 1000;
    }

    /** Not started yet, or in poll(2): touches nothing; a stop may claim it. */
    static final int SLEEPING = 0;
    /** Servicing its queues (or busy-polling them): a stop waits for it to leave. */
    static final int RUNNING = 1;
    /** Gone for good from its queues: claimed by a stop, or left its loop. */
    static final int STOPPED = 2;
    private static final VarHandle PHASE;

    static {
        try {
            PHASE = MethodHandles.lookup().findVarHandle(QueuePairWorker.class, "phase", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    @SuppressWarnings("unused") // through PHASE
    private volatile int phase = SLEEPING;
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

    /**
     * Ends a worker that is not running: not started yet or asleep in poll(2). True when it is
     * now {@link #STOPPED} (claimed here or stopped before); false when it is running, and will
     * set {@link #STOPPED} itself once it sees the stop.
     */
    boolean claimIfSleeping() {
        return PHASE.compareAndSet(this, SLEEPING, STOPPED) || (int) PHASE.getVolatile(this) == STOPPED;
    }

    /** Whether it is gone from its queues for good (see {@link #claimIfSleeping}). */
    boolean stopped() {
        return (int) PHASE.getVolatile(this) == STOPPED;
    }

    /** Leaves the queues for good and wakes a stopper waiting for that. */
    private void leave() {
        PHASE.setVolatile(this, STOPPED);
        Thread stopper = owner.stopper();
        if (stopper != null) {
            LockSupport.unpark(stopper);
        }
    }

    @Override
    public void run() {
        if (!PHASE.compareAndSet(this, SLEEPING, RUNNING)) {
            return; // stopped before it ever ran: nothing taken, nothing to give back
        }
        try {
            serve();
        } finally {
            leave();
        }
    }

    private void serve() {
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
        boolean spinning = BUSY_POLL_NANOS > 0;
        long idleSince = 0;
        int rxState = RxPath.MORE;
        boolean tapEmpty = false;
        while (!owner.stopRequested()) {
            boolean quiet = spinning;
            int txState = tx.service(BUDGET, tapNumber, s, quiet);
            // Only a readable TAP changes a receive path waiting for it: right after a poll that
            // did not report it readable, its readv would fail with EAGAIN (a system call wasted
            // per wake-up for transmit). Level-triggered, so the next round or poll sees a frame.
            boolean rxSkipped = tapEmpty;
            tapEmpty = false;
            if (!rxSkipped) {
                rxState = rx.service(BUDGET, tapNumber, s, quiet);
            }
            if (txState == TxPath.MORE || rxState == RxPath.MORE) {
                idleSince = 0;
                continue;
            }
            boolean moved = tx.moved() + (rxSkipped ? 0 : rx.moved()) > 0;
            if (quiet) {
                long now = System.nanoTime();
                if (moved || idleSince == 0) {
                    idleSince = now;
                } else if (now - idleSince >= BUSY_POLL_NANOS) {
                    // The window passed idle: one more round turns notifications on and
                    // re-checks, then the thread sleeps.
                    spinning = false;
                }
                // A yield, not a spin hint: on a machine with more runnable threads than
                // processors the guest's thread may be waiting for this one's processor (with
                // Thread.onSpinWait the benchmark ran at half the rate under such load). While it
                // waits for a processor it touches nothing, so a stop may claim it there as in
                // poll(2) (release here; the compare-and-set after takes it back).
                PHASE.setVolatile(this, SLEEPING);
                Thread.yield();
                if (!PHASE.compareAndSet(this, SLEEPING, RUNNING)) {
                    return; // claimed by a stop between two rounds
                }
                continue;
            }
            if (moved && BUSY_POLL_NANOS > 0) {
                // Work came in as notifications went on: busy-poll again rather than sleep.
                spinning = true;
                idleSince = 0;
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
            // From here to the compare-and-set after the poll this thread touches nothing a
            // stopper reads: it may be claimed meanwhile (release: every ring write above is
            // visible to the stopper whose claim reads this phase).
            PHASE.setVolatile(this, SLEEPING);
            int ready = Libc.poll(s, pollfds, 4, -1);
            if (!PHASE.compareAndSet(this, SLEEPING, RUNNING)) {
                return; // claimed by a stop while asleep: leave without consuming a kick
            }
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
            tapEmpty = rxState == RxPath.WAIT_TAP
                    && (revents(TAP) & (LinuxConstants.POLLIN | LinuxConstants.POLLERR | LinuxConstants.POLLHUP)) == 0;
            spinning = BUSY_POLL_NANOS > 0;
            idleSince = 0;
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

package io.vhostffm.vhost.device.userspace;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import io.vhostffm.vhost.os.Errno;
import io.vhostffm.vhost.os.EventFd;
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
import java.util.Arrays;
import java.util.concurrent.locks.LockSupport;

/**
 * The thread body of one worker: serves one or more queue pairs ({@link ServedPair}), each round
 * servicing every pair's transmit and receive paths in turn and then signalling the receive
 * queues' calls their rings ask for (once per round, so a guest waiting on several receive
 * queues wakes to all of the round's frames), and when none has work sleeps in one
 * poll(2) on the stop eventfd and, for each pair, both kick eventfds and the TAP queue (readable
 * when its receive waits for frames, writable when its transmit waits for room). Kicks are
 * consumed when they wake it; while it is busy they just accumulate in their eventfds.
 *
 * <p>Before it sleeps it busy-polls for a bounded window ({@link #BUSY_POLL_NANOS}): it services
 * all its pairs again and again with the guest's notifications left off, so that work arriving
 * within the window is taken without a kick from the guest, a wake-up of this thread or a poll
 * (the costs that dominate a frame here: each is a system call or two and a trip through the
 * scheduler). Only once the window passed with nothing moved on any pair are notifications
 * turned on (with the usual re-check) and the thread goes to sleep. Any frame moved opens a new
 * window. One thread busy-polling several pairs keeps one processor busy, not one per pair.
 *
 * <p>Pairs join a running worker ({@link #offer}, for a VQ_PAIRS_SET that enables more of them):
 * the datapath builds them and leaves them in the worker's mailbox, then signals its wake
 * eventfd; the worker takes them in at its next step (holds their descriptors, widens its poll
 * set) and services them from that round on. The pairs it already serves never pause.
 *
 * <p>A pair that meets bad guest input stops alone: it is never serviced again, its descriptors
 * leave the poll set and are let go, the datapath hears of it ({@link
 * UserspaceDatapath#pairStopped}), and the worker goes on with its other pairs; it leaves once
 * none is left and its mailbox is empty (closing the mailbox as it goes: pairs offered later go
 * to a new worker). Any other failure (a TAP or poll error) ends the worker and stops the datapath.
 *
 * <p>Its {@linkplain #phase phase} lets a stop take a sleeping worker without waking it: the
 * worker is {@link #SLEEPING} only while it touches nothing (no ring, no guest memory, no kick or
 * TAP read, of any of its pairs) and takes itself back to {@link #RUNNING} with a
 * compare-and-set after every poll, so the stopper's compare-and-set from {@link #SLEEPING} to
 * {@link #STOPPED} ({@link #claimIfSleeping}) ends it for good: when it wakes it finds the claim
 * and leaves, touching nothing. A running worker sees the stop flag and sets {@link #STOPPED}
 * itself as it leaves. Either way the compare-and-set or the volatile write orders everything the
 * worker did before it (ring indices, chains in hand) before the stopper's reads of the queue
 * states.
 */
final class DatapathWorker implements Runnable {
    private static final int STOP = 0;
    /** The wake eventfd's poll slot: signalled when pairs wait in the mailbox. */
    private static final int WAKE = 1;
    /** The first pair's first poll slot. */
    private static final int FIRST_PAIR_SLOT = 2;
    /** Poll slots per pair, after the stop and wake eventfds': transmit kick, receive kick, TAP. */
    private static final int SLOTS_PER_PAIR = 3;
    private static final int TX_KICK = 0;
    private static final int RX_KICK = 1;
    private static final int TAP = 2;
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
    private static final VarHandle MAILBOX;
    /** The mailbox of a worker that left: {@link #offer} fails, the pairs go to a new worker. */
    private static final ServedPair[] CLOSED = new ServedPair[0];

    static {
        try {
            PHASE = MethodHandles.lookup().findVarHandle(DatapathWorker.class, "phase", int.class);
            MAILBOX = MethodHandles.lookup().findVarHandle(DatapathWorker.class, "mailbox", ServedPair[].class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    @SuppressWarnings("unused") // through PHASE
    private volatile int phase = SLEEPING;
    /** The pairs it serves; replaced (never changed in place) by the worker's thread when pairs join. */
    private ServedPair[] pairs;
    /**
     * The pairs it serves and those offered to it, for naming it: set by {@link #offer} (under the
     * datapath's lock) before the worker takes them in, so its thread's name and error messages
     * name a joining pair from the moment it is offered.
     */
    private volatile ServedPair[] assigned;
    /**
     * Pairs offered and not taken in yet (null: none; {@link #CLOSED}: the worker left). Written
     * with a compare-and-set by {@link #offer} (release: the pairs were built before), taken
     * with a get-and-set by the worker (acquire: it sees them whole).
     */
    @SuppressWarnings("unused") // through MAILBOX
    private volatile ServedPair[] mailbox;
    private final EventFd stop;
    /** Signalled by {@link #offer}: wakes the worker from poll(2) to take pairs in. */
    private final EventFd wake;
    private final UserspaceDatapath owner;
    private final Arena arena;
    private MemorySegment pollfds;
    /** Pairs not stopped on bad guest input. */
    private int active;
    /** The pair being serviced, for naming it when it fails; null between pairs. */
    private ServedPair current;
    /** Pairs whose descriptors {@link #hold} acquired; -1 while the stop eventfd is not held. */
    private int held = -1;
    /** Whether the last {@link #round} moved a frame on any pair. */
    private boolean roundMoved;
    /** Busy-polling: rounds leave notifications off, and the thread yields between them. */
    private boolean spinning;
    /** When the current busy-poll window's last frame moved (0: none yet). */
    private long idleSince;

    /** {@code wake} is the worker's own (the datapath closes it once the worker's thread ended). */
    DatapathWorker(ServedPair[] pairs, EventFd stop, EventFd wake, Arena arena, UserspaceDatapath owner) {
        if (pairs.length == 0) {
            throw new IllegalArgumentException("a worker serves at least one queue pair");
        }
        this.pairs = pairs.clone();
        this.assigned = this.pairs;
        this.stop = stop;
        this.wake = wake;
        this.owner = owner;
        this.arena = arena;
        this.active = pairs.length;
        this.pollfds = arena.allocate(POLLFD_BYTES * slots(this.pairs.length), 8);
    }

    /** Its wake eventfd, for the datapath to close once the worker's thread ended. */
    EventFd wake() {
        return wake;
    }

    /**
     * The pairs it serves, in the order it services them, then those offered to it and not yet
     * taken in.
     */
    ServedPair[] pairs() {
        return assigned.clone();
    }

    /** The pair being serviced when it failed, or null (failed in poll(2) or before it served). */
    ServedPair current() {
        return current;
    }

    private static int slots(int pairCount) {
        return FIRST_PAIR_SLOT + SLOTS_PER_PAIR * pairCount;
    }

    /**
     * Hands {@code joining} (built, their TAP queues attached, not yet serviced by anyone) to this
     * worker, which takes them in at its next step; they are serviced from its next round on, and
     * {@link #pairs()} names them at once. Called by the datapath under its lock, from any thread.
     *
     * @return false when the worker left (its pairs all stopped on bad input, or a stop): the
     *     pairs are not taken, and another worker must serve them
     * @throws NativeCallException when the wake eventfd cannot be signalled (the pairs are in the
     *     mailbox all the same: a running worker takes them in at its next step)
     */
    boolean offer(ServedPair[] joining) throws NativeCallException {
        while (true) {
            ServedPair[] waiting = (ServedPair[]) MAILBOX.getVolatile(this);
            if (waiting == CLOSED) {
                return false;
            }
            ServedPair[] next = waiting == null ? joining.clone() : concat(waiting, joining);
            // Release: the pairs' paths, queues and counters were built before; the worker's
            // get-and-set (acquire) sees them whole.
            if (MAILBOX.compareAndSet(this, waiting, next)) {
                assigned = concat(assigned, joining);
                wake.signal();
                return true;
            }
        }
    }

    private static ServedPair[] concat(ServedPair[] a, ServedPair[] b) {
        ServedPair[] all = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, all, a.length, b.length);
        return all;
    }

    /**
     * Takes in the pairs waiting in the mailbox, if any: holds their descriptors, widens the poll
     * set, and serves them from the next round on. Only on the worker's thread (an allocation
     * per change of the pairs, none per round). Its thread was renamed when they were offered.
     */
    private void takeJoiningPairs() {
        // Acquire: pairs the offering thread built before its compare-and-set.
        ServedPair[] joining = (ServedPair[]) MAILBOX.getAndSet(this, (ServedPair[]) null);
        if (joining == null || joining.length == 0) {
            return;
        }
        ServedPair[] old = pairs;
        ServedPair[] all = concat(old, joining);
        MemorySegment wider = arena.allocate(POLLFD_BYTES * slots(all.length), 8);
        MemorySegment.copy(pollfds, 0, wider, 0, pollfds.byteSize());
        pollfds = wider;
        pairs = all;
        for (ServedPair p : joining) {
            p.acquire();
            held++;
            active++;
            int base = base(p);
            setFd(base + TX_KICK, p.txKickNumber);
            setFd(base + RX_KICK, p.rxKickNumber);
            setFd(base + TAP, -1);
        }
    }

    /**
     * Whether the worker may leave with no pair left to serve: closes its mailbox unless pairs
     * wait in it (then it takes them in and stays). The compare-and-set decides a race with
     * {@link #offer}: either the offer lands first and is taken, or it finds the mailbox closed.
     */
    private boolean closeMailboxIfEmpty() {
        if (MAILBOX.compareAndSet(this, (ServedPair[]) null, CLOSED)) {
            return true;
        }
        takeJoiningPairs();
        return active == 0 && closeMailboxIfEmpty();
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
        // Hold every descriptor open for the whole run (a stopped pair's until it stops): a close
        // elsewhere waits for our release, so its number cannot be reused under a pending poll,
        // readv or writev.
        try {
            hold();
            try {
                loop();
            } finally {
                letGo();
            }
        } catch (Throwable t) {
            owner.workerFailed(this, t);
        }
    }

    /**
     * Acquires the stop eventfd and every pair's descriptors and puts them in the poll set; on
     * failure nothing stays held. The worker's thread does this once before its loop; {@link
     * UserspaceDatapath#workers() a caller} running the rounds itself before its first {@link #round}.
     */
    void hold() {
        int stopNumber = stop.fd().acquire();
        int wakeNumber;
        try {
            wakeNumber = wake.fd().acquire();
        } catch (RuntimeException e) {
            stop.fd().release();
            throw e;
        }
        held = 0;
        try {
            setFd(STOP, stopNumber);
            setEvents(STOP, LinuxConstants.POLLIN);
            setFd(WAKE, wakeNumber);
            setEvents(WAKE, LinuxConstants.POLLIN);
            for (ServedPair p : pairs) {
                p.acquire();
                held++;
                int base = base(p);
                setFd(base + TX_KICK, p.txKickNumber);
                setFd(base + RX_KICK, p.rxKickNumber);
                setFd(base + TAP, -1);
            }
        } catch (RuntimeException e) {
            letGo();
            throw e;
        }
    }

    /** Lets go of what {@link #hold} acquired (a stopped pair's descriptors were let go already). */
    void letGo() {
        if (held < 0) {
            return;
        }
        try {
            for (int i = 0; i < held; i++) {
                pairs[i].release();
            }
        } finally {
            held = -1;
            try {
                wake.fd().release();
            } finally {
                stop.fd().release();
            }
        }
    }

    /** The first poll slot of {@code p}. */
    private int base(ServedPair p) {
        ServedPair[] mine = pairs;
        for (int i = 0; i < mine.length; i++) {
            if (mine[i] == p) {
                return FIRST_PAIR_SLOT + SLOTS_PER_PAIR * i;
            }
        }
        throw new IllegalArgumentException("queue pair " + p.pair + " is not served here");
    }

    private void loop() throws NativeCallException {
        CallState s = CallState.current();
        spinning = BUSY_POLL_NANOS > 0;
        idleSince = 0;
        // The whole body is a method of its own: the loop runs for the worker's life, so a body
        // in it would run in the interpreter until on-stack replacement compiles it (seconds of
        // rounds, each with its volatile phase writes and yield through the interpreter); a method
        // called per iteration is compiled after a few thousand calls.
        while (step(s)) {
            // step does the work
        }
    }

    /**
     * One iteration of the worker's loop: a round, then go round again, busy-poll (yield), or
     * sleep in poll(2).
     *
     * @return false when the worker leaves: stop requested or claimed, or every pair stopped
     */
    private boolean step(CallState s) throws NativeCallException {
        if (owner.stopRequested()) {
            return false;
        }
        if ((ServedPair[]) MAILBOX.getVolatile(this) != null) {
            takeJoiningPairs();
        }
        boolean quiet = spinning;
        boolean more = round(s, quiet);
        boolean moved = roundMoved;
        if (active == 0 && closeMailboxIfEmpty()) {
            return false; // every pair stopped on bad guest input, and none joins
        }
        if (more) {
            // A budget ran out: go round again at once; work in hand opens a new window.
            spinning = BUSY_POLL_NANOS > 0;
            idleSince = 0;
            return true;
        }
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
            // false: claimed by a stop between two rounds
            return PHASE.compareAndSet(this, SLEEPING, RUNNING);
        }
        if (moved && BUSY_POLL_NANOS > 0) {
            // Work came in as notifications went on: busy-poll again rather than sleep.
            spinning = true;
            idleSince = 0;
            return true;
        }
        return sleep(s);
    }

    /**
     * Sleeps in poll(2) until a kick, a TAP event or a stop, and takes in what woke it.
     *
     * @return false when the worker leaves: stop requested or claimed while asleep
     */
    private boolean sleep(CallState s) throws NativeCallException {
        ServedPair[] pairs = this.pairs;
        for (int i = 0; i < pairs.length; i++) {
            ServedPair p = pairs[i];
            if (p.stopped) {
                continue; // its slots hold -1: poll ignores them
            }
            int base = FIRST_PAIR_SLOT + SLOTS_PER_PAIR * i;
            short tapEvents = 0;
            if (p.rxState == RxPath.WAIT_TAP) {
                tapEvents |= LinuxConstants.POLLIN;
            }
            if (p.txState == TxPath.BLOCKED) {
                tapEvents |= LinuxConstants.POLLOUT;
            }
            setEvents(base + TX_KICK, LinuxConstants.POLLIN);
            setEvents(base + RX_KICK, LinuxConstants.POLLIN);
            // poll ignores a negative fd: a TAP nobody waits on must not wake us with POLLERR/POLLHUP.
            setFd(base + TAP, tapEvents == 0 ? -1 : p.tapNumber);
            setEvents(base + TAP, tapEvents);
        }
        setEvents(STOP, LinuxConstants.POLLIN);
        setEvents(WAKE, LinuxConstants.POLLIN);
        if (owner.stopRequested()) {
            return false;
        }
        // From here to the compare-and-set after the poll this thread touches nothing a
        // stopper reads: it may be claimed meanwhile (release: every ring write above, of
        // every pair, is visible to the stopper whose claim reads this phase).
        PHASE.setVolatile(this, SLEEPING);
        int ready = Libc.poll(s, pollfds, slots(pairs.length), -1);
        if (!PHASE.compareAndSet(this, SLEEPING, RUNNING)) {
            return false; // claimed by a stop while asleep: leave without consuming a kick
        }
        if (ready < 0) {
            int errno = s.errno();
            if (errno == EINTR) {
                return true;
            }
            throw NativeErrors.failure("poll", stop.fd(), errno);
        }
        if (revents(WAKE) != 0) {
            wake.consume(); // the mailbox is looked at by the next step
        }
        for (int i = 0; i < pairs.length; i++) {
            ServedPair p = pairs[i];
            if (p.stopped) {
                continue;
            }
            int base = FIRST_PAIR_SLOT + SLOTS_PER_PAIR * i;
            if (revents(base + TX_KICK) != 0) {
                p.txKick.consume();
            }
            if (revents(base + RX_KICK) != 0) {
                p.rxKick.consume();
            }
            p.tapEmpty = p.rxState == RxPath.WAIT_TAP && (revents(base + TAP)
                    & (LinuxConstants.POLLIN | LinuxConstants.POLLERR | LinuxConstants.POLLHUP)) == 0;
        }
        spinning = BUSY_POLL_NANOS > 0;
        idleSince = 0;
        // STOP is left signalled: the flag ends the loop; TAP readiness is re-tested by readv/writev.
        return true;
    }

    /**
     * One round over every pair not stopped: each pair's transmit then receive path, up to its
     * budget; a pair that meets bad guest input is stopped alone ({@link #stopPair}) and the
     * round goes on with the others. Any other exception leaves the round (and ends the worker).
     *
     * @param quiet busy-polling: empty rings leave notifications off
     * @return whether a pair has more work right away
     */
    boolean round(CallState s, boolean quiet) throws NativeCallException {
        boolean more = false;
        boolean moved = false;
        ServedPair[] pairs = this.pairs;
        try {
            for (int i = 0; i < pairs.length; i++) {
                ServedPair p = pairs[i];
                if (p.stopped) {
                    continue;
                }
                current = p;
                try {
                    more |= p.service(s, quiet);
                } catch (RuntimeException e) {
                    if (!UserspaceDatapath.isGuestFault(e)) {
                        throw e;
                    }
                    // Frames it published before the fault are the guest's: signalled before the
                    // listener hears of the stop (which may reset the device and close the call).
                    p.rx.signalIfAsked();
                    stopPair(p, e);
                    continue;
                }
                current = null;
                moved |= p.moved;
            }
        } catch (Throwable failure) {
            // The round fails (current names the pair): the frames published are the guest's all
            // the same, so their calls still go out; a failure to signal is added to this one.
            try {
                signalReceivers();
            } catch (Throwable alsoFailed) {
                failure.addSuppressed(alsoFailed);
            }
            throw failure;
        }
        current = null;
        // Receive calls once per round, after every pair moved its frames (RxPath.signalIfAsked).
        signalReceivers();
        roundMoved = moved;
        return more;
    }

    /**
     * Each running pair's receive call, if it published since its last and the ring asks for one
     * (a pair stopped in the round signalled before it stopped). A failed signal leaves {@link
     * #current} naming its pair; otherwise {@link #current} is left as it was.
     */
    private void signalReceivers() throws NativeCallException {
        ServedPair before = current;
        for (ServedPair p : this.pairs) {
            if (!p.stopped) {
                current = p;
                p.rx.signalIfAsked();
            }
        }
        current = before;
    }

    /** Whether the last {@link #round} moved a frame on any pair. */
    boolean roundMoved() {
        return roundMoved;
    }

    /** Pairs not stopped on bad guest input. */
    int activePairs() {
        return active;
    }

    /**
     * Stops {@code p} alone after bad guest input: it leaves the poll set, its descriptors are
     * let go, and the datapath records and reports it (the listener may request a stop of the
     * whole datapath from here; the loop sees the flag). Its rings stay as they are: the datapath
     * gives their state when it stops.
     */
    private void stopPair(ServedPair p, RuntimeException fault) {
        current = null;
        p.stopped = true;
        active--;
        int base = base(p);
        setFd(base + TX_KICK, -1);
        setFd(base + RX_KICK, -1);
        setFd(base + TAP, -1);
        p.release();
        owner.pairStopped(p, fault);
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

package io.vhostffm.vhost.device.kernel;

import io.vhostffm.vhost.internal.NativeErrors;
import io.vhostffm.vhost.internal.ParkedThreads;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.os.TapDevice;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicIntegerArray;

/**
 * One kernel quickstart's per-pair steps issued from several threads: each pair has its own
 * {@code /dev/vhost-net}, so pair {@code p}'s SET_VRING_BASE (rx, tx), TUNSETQUEUE and
 * NET_SET_BACKEND (rx, tx) do not wait for another pair's. The pairs are dealt round-robin to
 * {@code threads} shares; the quickstart's own thread runs share 0 and the other shares run on
 * threads started and parked when this is made (at prestart), so no thread starts inside the
 * downtime: each gets its share with one unpark.
 *
 * <p>Failures follow the serial quickstart's rules: a pair stops at its first failed step (its
 * thread starts no further pair, nor does any other thread once one failed), the failure names
 * the pair, the ioctl and the errno ({@link NativeErrors#inContext}), and {@link #bound} says
 * which pairs have their receive queue bound, so the backend unbinds exactly those. The wait for
 * the other threads has a deadline ({@link #DEADLINE}); a pair still running then is abandoned
 * to its thread, which unbinds what it bound once its ioctl returns and issues no further step.
 *
 * <p>Made for one prestart, used by at most one quickstart, then {@link #close closed}.
 */
final class ParallelQuickstart implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(ParallelQuickstart.class.getName());
    /** How long the quickstart waits for the other threads' pairs: a few ioctls each. */
    static final Duration DEADLINE = Duration.ofSeconds(10);
    /** How long {@link #close} waits for each thread to end once its share is done. */
    private static final Duration THREAD_END = Duration.ofSeconds(2);
    // A pair's state: its thread moves it RUNNING -> FINISHED, or the quickstart RUNNING -> ABANDONED.
    private static final int RUNNING = 0;
    private static final int FINISHED = 1;
    private static final int ABANDONED = 2;

    private final String name;
    private final List<VhostNet> vhosts;
    private final TapDevice tap;
    private final int pairs;
    private final int threads;
    private final ParkedThreads parked;
    private final ParkedThreads.Reserved[] helpers;
    /** Share t's work (t >= 1), made here so that the quickstart makes no object. */
    private final Runnable[] shares;
    private final CountDownLatch helpersDone;
    private final AtomicIntegerArray state;
    /** Per pair, written by its thread before the state's compare-and-set publishes it. */
    private final boolean[] rxBound;
    private final Exception[] failures;
    /** A pair failed: no thread starts another pair. */
    private volatile boolean failed;
    // The quickstart's inputs: written before the helpers are unparked (a volatile write each), read by them after.
    private int[] bases;
    private boolean[] enabled;
    private boolean used;

    /**
     * Starts {@code threads - 1} parked threads for the first {@code pairs} pairs of
     * {@code vhosts} on {@code tap}; {@code name} goes into failures and thread names.
     */
    ParallelQuickstart(String name, List<VhostNet> vhosts, TapDevice tap, int pairs, int threads) {
        if (threads < 2 || threads > pairs) {
            throw new IllegalArgumentException(threads + " threads for " + pairs + " pairs: 2 to pairs");
        }
        this.name = name;
        this.vhosts = vhosts;
        this.tap = tap;
        this.pairs = pairs;
        this.threads = threads;
        this.state = new AtomicIntegerArray(pairs);
        this.rxBound = new boolean[pairs];
        this.failures = new Exception[pairs];
        this.helpersDone = new CountDownLatch(threads - 1);
        this.parked = ParkedThreads.start(threads - 1, "vhost-net quickstart " + tap.name());
        this.helpers = new ParkedThreads.Reserved[threads - 1];
        this.shares = new Runnable[threads];
        for (int t = 1; t < threads; t++) {
            int first = t;
            helpers[t - 1] = parked.reserve("vhost-net quickstart " + tap.name() + " share " + t);
            shares[t] = () -> {
                try {
                    runShare(first);
                } finally {
                    helpersDone.countDown();
                }
            };
        }
    }

    /**
     * Issues every pair's steps with the bases {@code bases} (two per pair, in virtqueue order)
     * and binds the pairs {@code enabled} says; returns once every pair finished, or throws the
     * first failed pair's failure (by pair order; the others suppressed), or an {@link IOException}
     * naming the pairs that missed the deadline. Either way {@link #bound} then tells which pairs
     * the caller must unbind.
     */
    void run(int[] bases, boolean[] enabled) throws IOException {
        if (used) {
            throw new IllegalStateException(name + ": a parallel quickstart runs once per prestart");
        }
        used = true;
        this.bases = bases;
        this.enabled = enabled;
        for (int t = 1; t < threads; t++) {
            helpers[t - 1].run(shares[t]); // a volatile write, then the unpark: the thread sees the inputs
        }
        runShare(0);
        boolean inTime;
        try {
            inTime = helpersDone.await(DEADLINE.toNanos(), TimeUnit.NANOSECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            inTime = false;
        }
        List<Integer> late = null;
        if (!inTime) {
            for (int p = 0; p < pairs; p++) {
                if (state.compareAndSet(p, RUNNING, ABANDONED)) {
                    if (late == null) {
                        late = new ArrayList<>();
                    }
                    late.add(p);
                }
            }
        }
        IOException lateFailure = late == null ? null : new IOException(String.format(
                "%s: quickstart of queue pair(s) %s did not finish within %d ms (each pair's thread unbinds "
                        + "what it bound once its ioctl returns)", name, late, DEADLINE.toMillis()));
        Exception first = lateFailure;
        for (int p = 0; p < pairs; p++) {
            // The state's volatile read (FINISHED) makes the pair's results visible.
            Exception f = state.get(p) == FINISHED ? failures[p] : null;
            if (f == null) {
                continue;
            }
            if (first == null) {
                first = f;
            } else {
                first.addSuppressed(f);
            }
        }
        if (first instanceof IOException io) {
            throw io;
        }
        if (first instanceof RuntimeException r) {
            throw r;
        }
    }

    /** Whether pair {@code pair}'s receive queue was bound by {@link #run} (the caller unbinds it on failure). */
    boolean bound(int pair) {
        return state.get(pair) == FINISHED && rxBound[pair];
    }

    /** Runs the pairs of share {@code first}: first, first + threads, ... */
    private void runShare(int first) {
        for (int p = first; p < pairs; p += threads) {
            runPair(p);
        }
    }

    /** Pair {@code p}'s steps, then its state: FINISHED, or its own unbinding if the quickstart gave up on it. */
    private void runPair(int p) {
        VhostNet v = vhosts.get(p);
        boolean rx = false;
        Exception failure = null;
        try {
            if (!failed && state.get(p) == RUNNING) {
                v.setVringBase(VhostNet.RX_QUEUE, bases[2 * p]);
                v.setVringBase(VhostNet.TX_QUEUE, bases[2 * p + 1]);
                if (tap.queues().size() > 1 && state.get(p) == RUNNING) {
                    tap.setQueueAttached(p, enabled[p]);
                }
                if (enabled[p] && state.get(p) == RUNNING) {
                    v.setBackend(VhostNet.RX_QUEUE, tap.queue(p));
                    rx = true; // from here a failure must unbind rx too
                    v.setBackend(VhostNet.TX_QUEUE, tap.queue(p));
                }
            }
        } catch (NativeCallException e) {
            failure = NativeErrors.inContext(name + ", queue pair " + p, e);
        } catch (RuntimeException e) {
            failure = new IllegalStateException(name + ", queue pair " + p + ": " + e.getMessage(), e);
        }
        if (failure != null) {
            failed = true;
        }
        rxBound[p] = rx;
        failures[p] = failure;
        if (!state.compareAndSet(p, RUNNING, FINISHED) && rx) {
            // The quickstart gave up waiting and left this pair to this thread: unbind it here.
            try {
                v.clearBackend(VhostNet.RX_QUEUE);
                v.clearBackend(VhostNet.TX_QUEUE);
            } catch (NativeCallException | RuntimeException e) {
                LOG.log(Level.WARNING, name + ": cannot unbind queue pair " + p + " after an abandoned quickstart", e);
            }
        }
    }

    /**
     * Ends the threads: those never given a share are given nothing to do; each is waited for
     * ({@link #THREAD_END} each) unless a pair was abandoned, whose thread may still be in an ioctl.
     */
    @Override
    public void close() {
        if (!used) {
            used = true;
            for (ParkedThreads.Reserved h : helpers) {
                h.run(() -> helpersDone.countDown());
            }
        }
        for (int p = 0; p < pairs; p++) {
            if (state.get(p) == ABANDONED) {
                return; // its thread ends on its own once the kernel answers
            }
        }
        for (ParkedThreads.Reserved h : helpers) {
            try {
                if (!h.thread().join(THREAD_END)) {
                    LOG.log(Level.WARNING, name + ": quickstart thread " + h.thread().getName() + " did not end within "
                            + THREAD_END);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }
}

package io.vhostffm.vhost.internal;

import java.time.Duration;
import java.util.concurrent.locks.LockSupport;

/**
 * Datapath threads started ahead of time and parked until they are given their work: a
 * prestarted backend (and the control queue of a prestarted device) starts them at prestart,
 * and quickstart hands each its worker
 * with one unpark instead of a {@link Thread#start()}, which waits until the new thread has run
 * (a scheduling round trip per thread, milliseconds on a loaded host) inside the downtime.
 * Each thread runs one worker and ends; unused threads end at {@link #release()}.
 */
public final class ParkedThreads {
    private final Slot[] slots;
    private int next;

    /** One parked thread and the work it waits for. */
    private static final class Slot implements Runnable {
        private volatile Runnable work;
        private Thread thread;

        @Override
        public void run() {
            Runnable w;
            while ((w = work) == null) {
                LockSupport.park(this); // a spurious return re-checks the field
            }
            w.run();
        }
    }

    private static final Runnable NOTHING = () -> {};

    private ParkedThreads(int count, String name) {
        slots = new Slot[count];
        for (int i = 0; i < count; i++) {
            Slot s = new Slot();
            s.thread = Thread.ofPlatform().daemon().name(name + " (parked)").unstarted(s);
            slots[i] = s;
        }
        for (Slot s : slots) {
            s.thread.start();
        }
    }

    /** Starts {@code count} parked daemon threads named after {@code name}. */
    public static ParkedThreads start(int count, String name) {
        return new ParkedThreads(count, name);
    }

    /** A parked thread reserved for one worker. */
    public static final class Reserved {
        private final Slot slot;

        private Reserved(Slot slot) {
            this.slot = slot;
        }

        /** The thread, already running (parked). */
        public Thread thread() {
            return slot.thread;
        }

        /** Gives the thread its worker and wakes it. */
        public void run(Runnable worker) {
            slot.work = worker; // volatile write: the thread sees the worker and everything it reaches
            LockSupport.unpark(slot.thread);
        }
    }

    /**
     * Reserves the next parked thread, renamed {@code name} (or, when all are taken, a new one,
     * started and parked now).
     */
    public synchronized Reserved reserve(String name) {
        Slot s;
        if (next < slots.length) {
            s = slots[next++];
            s.thread.setName(name);
        } else {
            s = new Slot();
            s.thread = Thread.ofPlatform().daemon().name(name).unstarted(s);
            s.thread.start();
        }
        return new Reserved(s);
    }

    /** How long {@link #release} waits for each released thread to end (it has nothing to run). */
    private static final Duration RELEASED_THREAD_END = Duration.ofSeconds(2);
    /** The first slot released and not yet waited for, or -1 (guarded by this). */
    private int releasedFrom = -1;

    /**
     * Ends the threads not given work, and returns once they have ended (each within a bounded
     * wait; they run nothing and take no lock, so only a starved scheduler delays them), so a
     * stop or reset that releases them leaves no thread behind for a resource count to see.
     */
    public void release() {
        releaseLater();
        awaitReleased();
    }

    /**
     * Ends the threads not given work without waiting for them: a stop inside a migration's
     * downtime does not wait for threads that never ran anything. {@link #awaitReleased} waits.
     */
    public void releaseLater() {
        int from;
        int to;
        synchronized (this) {
            from = next;
            to = slots.length;
            next = slots.length;
            if (releasedFrom < 0) {
                releasedFrom = from;
            }
        }
        for (int i = from; i < to; i++) {
            slots[i].work = NOTHING;
            LockSupport.unpark(slots[i].thread);
        }
    }

    /** Waits (bounded, each) for the threads {@link #releaseLater} released to end. */
    public void awaitReleased() {
        int from;
        synchronized (this) {
            from = releasedFrom;
            releasedFrom = -1;
        }
        if (from < 0) {
            return;
        }
        for (int i = from; i < slots.length; i++) {
            Thread t = slots[i].thread;
            if (t == Thread.currentThread()) {
                continue;
            }
            try {
                if (!t.join(RELEASED_THREAD_END)) {
                    System.getLogger(ParkedThreads.class.getName()).log(System.Logger.Level.WARNING,
                            "released parked thread " + t.getName() + " did not end within " + RELEASED_THREAD_END);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }
}

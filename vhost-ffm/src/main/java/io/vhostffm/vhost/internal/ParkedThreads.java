package io.vhostffm.vhost.internal;

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

    /** Ends the threads not given work. */
    public synchronized void release() {
        while (next < slots.length) {
            Slot s = slots[next++];
            s.work = NOTHING;
            LockSupport.unpark(s.thread);
        }
    }
}

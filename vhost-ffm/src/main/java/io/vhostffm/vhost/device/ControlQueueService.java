package io.vhostffm.vhost.device;

import io.vhostffm.vhost.internal.ParkedThreads;

import io.vhostffm.vhost.os.DescriptorClosedException;
import io.vhostffm.vhost.os.DescriptorPoller;
import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.virtio.net.ControlAck;
import io.vhostffm.vhost.virtio.net.VirtioNetDevice;
import io.vhostffm.vring.DescriptorChain;
import io.vhostffm.vring.DeviceQueue;
import io.vhostffm.vring.GuestMemory;
import io.vhostffm.vring.QueueGeometry;
import io.vhostffm.vring.QueueState;
import io.vhostffm.vring.RestoreMode;
import io.vhostffm.vring.VirtqueueException;
import java.lang.System.Logger.Level;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;

/**
 * The control virtqueue served in Java, for either backend: a thread waits on the queue's kick
 * eventfd, takes each chain with vring's device side, hands the device-readable buffers to
 * {@link VirtioNetDevice#handleControl}, writes the ack into the first device-writable byte,
 * publishes the chain as used (length 1) and signals the call eventfd when the driver wants it.
 *
 * <p>Every chain is served with the device model's lock held, so whoever holds that lock (the
 * runtime stopping or switching the datapath) knows no command is half done, and the queue's
 * state it saves is exact. Stopping only raises a flag (under that lock) and wakes the thread;
 * it never waits for the thread, because it may be called from the thread itself (bad input on
 * this queue puts the device into NEEDS_RESET, which stops the datapath). {@link #join} waits.
 */
final class ControlQueueService implements Runnable {
    private static final System.Logger LOG = System.getLogger(ControlQueueService.class.getName());

    private final VirtioNetDevice model;
    private final GuestMemory memory;
    private final DeviceQueue queue;
    private final QueueState initial;
    private final EventFd kick;
    private final EventFd call;
    private final EventFd wake;
    private final DescriptorPoller poller;
    private final Supplier<DirtyLog> dirtyLog;
    private final Thread thread;
    private final DescriptorChain chain;
    private final List<MemorySegment> readable = new ArrayList<>();
    private boolean stopped; // guarded by model

    /**
     * Restores the control queue from {@code state} and starts its thread.
     *
     * @throws VirtqueueException when the state does not hold up against guest memory
     */
    ControlQueueService(VirtioNetDevice model, GuestMemory memory, int index, QueueState state, RestoreMode mode,
            EventFd kick, EventFd call, Supplier<DirtyLog> dirtyLog) throws NativeCallException {
        this(model, memory, index, state, mode, kick, call, dirtyLog, (Prepared) null);
    }

    /**
     * As above, from {@code prepared} (made at a prestart by {@link #prepare}) when it was made
     * for this queue index and kick eventfd: its wake-up eventfd, poller and parked thread are
     * taken over, so no thread starts, no eventfd is created and no class of this service loads
     * inside a migration's downtime. Otherwise (null, or made for another index) the service
     * makes its own and {@code prepared} is left to its owner to {@link Prepared#close}.
     */
    ControlQueueService(VirtioNetDevice model, GuestMemory memory, int index, QueueState state, RestoreMode mode,
            EventFd kick, EventFd call, Supplier<DirtyLog> dirtyLog, Prepared prepared)
            throws NativeCallException {
        this.model = model;
        this.memory = memory;
        this.queue = DeviceQueues.open(index, memory, state, mode);
        this.initial = state;
        this.kick = kick;
        this.call = call;
        this.dirtyLog = dirtyLog;
        this.chain = queue.newChain();
        if (prepared != null && prepared.fits(index, kick)) {
            ParkedThreads.Reserved reserved = prepared.take().reserve("virtio-net-ctrl-vq-" + index);
            this.wake = prepared.wake;
            this.poller = prepared.poller;
            this.thread = reserved.thread();
            reserved.run(this); // every field is set: the volatile hand-over publishes them
            return;
        }
        this.wake = EventFd.create("control queue " + index + " wake-up");
        this.poller = new DescriptorPoller(List.of(kick.fd(), wake.fd()));
        this.thread = Thread.ofPlatform().daemon().name("virtio-net-ctrl-vq-" + index).unstarted(this);
        thread.start();
    }

    /**
     * What a control queue service needs that does not depend on the queue's position, made at
     * a prestart: the wake-up eventfd, the poller over kick and wake-up, and a parked thread.
     * Making it also loads this service's class and runs, once, the native calls the serving
     * thread starts with (a non-blocking read of its own fresh wake-up eventfd, which finds it
     * empty, and a zero-timeout poll, which changes nothing), so their call paths are linked
     * before a switchover. Either a service takes it over or {@link #close} releases it.
     */
    static final class Prepared implements AutoCloseable {
        private final int index;
        private final EventFd kick;
        private final EventFd wake;
        private final DescriptorPoller poller;
        private ParkedThreads parked; // null once taken or closed

        private Prepared(int index, EventFd kick, EventFd wake, DescriptorPoller poller, ParkedThreads parked) {
            this.index = index;
            this.kick = kick;
            this.wake = wake;
            this.poller = poller;
            this.parked = parked;
        }

        private boolean fits(int queueIndex, EventFd queueKick) {
            return parked != null && index == queueIndex && kick == queueKick;
        }

        private ParkedThreads take() {
            ParkedThreads p = parked;
            parked = null;
            return p;
        }

        /** Whether a service took it over or it was closed. */
        boolean released() {
            return parked == null;
        }

        /** Ends the parked thread and closes the eventfd and poller, unless a service took them. */
        @Override
        public void close() {
            ParkedThreads p = take();
            if (p == null) {
                return;
            }
            poller.close();
            wake.close();
            p.release(); // the parked thread ends
        }
    }

    /**
     * Prepares a service for queue {@code index} with kick eventfd {@code kick} (see
     * {@link Prepared}); nothing is read from or written to guest memory or {@code kick}.
     */
    static Prepared prepare(int index, EventFd kick) throws NativeCallException {
        EventFd wake = EventFd.create("control queue " + index + " wake-up");
        DescriptorPoller poller = null;
        try {
            poller = new DescriptorPoller(List.of(kick.fd(), wake.fd()));
            wake.consume(); // fresh: reads nothing; the serving thread's first call has this shape (kick.consume)
            poller.poll(0); // does not consume: the thread's wait, with no wait
            return new Prepared(index, kick, wake, poller, ParkedThreads.start(1, "virtio-net-ctrl-vq"));
        } catch (NativeCallException | RuntimeException e) {
            if (poller != null) {
                poller.close();
            }
            wake.close();
            throw e;
        }
    }

    /** The virtqueue index. */
    int index() {
        return queue.queueIndex();
    }

    /**
     * Stops serving (the thread ends after the chain it may be waiting to serve) and returns the
     * queue's state. Call with the model's lock held.
     */
    QueueState stop() {
        QueueState state = stopWithoutWaking();
        wakeToEnd();
        return state;
    }

    /**
     * Stops serving and returns the queue's state, leaving the thread asleep: it sees the stop
     * (under the model's lock, before it could touch the queue) whenever it wakes, and {@link
     * #wakeToEnd} wakes it. For a migration source's quiesce: woken there, the thread would
     * contend for the model's lock the caller holds, and the caller would pay for waking it again
     * when it lets go, both inside the downtime. Call with the model's lock held.
     */
    QueueState stopWithoutWaking() {
        if (!Thread.holdsLock(model)) {
            throw new IllegalStateException("stop the control queue with the device model's lock held");
        }
        stopped = true;
        return queue.isBroken() ? initial : queue.saveState();
    }

    /**
     * Wakes a stopped thread so that it ends; harmless when it already has (its wake-up eventfd
     * is then closed) or was woken before.
     */
    void wakeToEnd() {
        try {
            wake.signal();
        } catch (NativeCallException | DescriptorClosedException e) {
            // Closed: the thread already ended (it closes the wake-up eventfd on its way out).
            LOG.log(Level.DEBUG, "control queue " + index() + ": its thread has already ended", e);
        }
    }

    /** Whether the serving thread has ended (it ends after {@link #stop}, or on a native error). */
    boolean ended() {
        return !thread.isAlive();
    }

    /**
     * Waits up to {@code millis} ms for the thread to end (after {@link #stop}); true when it has.
     * Call without the model's lock. On the serving thread itself it returns false at once.
     */
    boolean awaitEnd(long millis) {
        if (Thread.currentThread() == thread) {
            return false;
        }
        try {
            return thread.join(Duration.ofMillis(millis));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    /** Waits for the thread to end (after {@link #stop}); call without the model's lock. */
    void join() throws InterruptedException {
        thread.join();
    }

    /**
     * The serving thread's body (the service is its own {@link Runnable}: no lambda is made, and
     * no class loaded for one, when a migration's switchover starts it).
     */
    @Override
    public void run() {
        try (DescriptorPoller p = poller) {
            for (;;) {
                synchronized (model) {
                    if (stopped) {
                        return;
                    }
                    // Kicks are consumed before the ring is looked at: a kick that arrives after
                    // this read makes the next poll return, so none is lost.
                    kick.consume();
                    serveAvailable();
                    if (stopped) {
                        return;
                    }
                }
                poller.poll(-1);
            }
        } catch (NativeCallException | RuntimeException e) {
            LOG.log(Level.ERROR, "control queue " + index() + " stopped", e);
        } finally {
            // The thread owns its wake-up eventfd: closing it here, not when the device closes,
            // keeps a device that is stopped and started many times at a constant fd count.
            // A signal that meets the closed eventfd (wakeToEnd after the thread saw 'stopped'
            // on a kick, or after an abnormal end) is a DescriptorClosedException through
            // FileDescriptor, never a write to a reused number.
            wake.close();
        }
    }

    /** Serves every available chain, then re-enables notifications; loops if the driver raced us. */
    private void serveAvailable() throws NativeCallException {
        try {
            do {
                queue.disableNotifications();
                while (!stopped && queue.take(chain)) {
                    if (!serve()) {
                        return;
                    }
                }
                if (queue.needsNotification()) {
                    call.signal();
                }
                markEventArea();
            } while (!stopped && queue.enableNotifications());
        } catch (VirtqueueException e) {
            // Bad guest input: the device needs a reset; this thread ends (needsReset stops us).
            model.reportBadGuestInput("control " + e.getMessage());
        }
    }

    /** Serves one chain; false when it was malformed (the device is then in NEEDS_RESET). */
    private boolean serve() {
        readable.clear();
        for (int i = 0; i < chain.readableCount(); i++) {
            readable.add(chain.buffer(i));
        }
        if (chain.writableCount() == 0 || chain.length(chain.readableCount()) == 0) {
            model.reportBadGuestInput(String.format(
                    "control virtqueue %d: chain at head %d has no device-writable byte for the ack (%d readable, %d writable buffers)",
                    index(), chain.headId(), chain.readableCount(), chain.writableCount()));
            return false;
        }
        ControlAck ack = model.handleControl(readable);
        int ackBuffer = chain.readableCount();
        // Plain store into the guest's buffer: published by the release store of used.idx in publishUsed.
        chain.regionSegment(ackBuffer).set(ValueLayout.JAVA_BYTE, chain.regionOffset(ackBuffer), ack.ackByte());
        DirtyLog log = dirtyLog.get();
        if (log != null) {
            log.mark(chain.address(ackBuffer), 1);
            markUsedElement(log);
        }
        queue.publishUsed(chain, 1);
        return true;
    }

    /**
     * What publishUsed is about to change. Split: the used ring's flags/idx and the used element.
     * Packed: the one used descriptor written at the used position (id, len, flags).
     */
    private void markUsedElement(DirtyLog log) {
        QueueState s = queue.saveState();
        QueueGeometry g = s.geometry();
        int usedIdx = s.position().usedIdx();
        if (g.packed()) {
            log.mark(g.descTableAddress() + 16L * usedIdx, 16); // sizeof(struct pvirtq_desc)
            return;
        }
        long used = g.deviceAreaAddress();
        log.mark(used, 4); // flags, idx
        log.mark(used + 4 + 8L * (usedIdx & (g.size() - 1)), 8);
    }

    /**
     * What toggling notifications writes: split under EVENT_IDX, avail_event; packed, the device
     * event suppression structure (flags, and the offset word under EVENT_IDX).
     */
    private void markEventArea() {
        DirtyLog log = dirtyLog.get();
        if (log == null) {
            return;
        }
        QueueGeometry g = queue.saveState().geometry();
        if (g.packed()) {
            log.mark(g.deviceAreaAddress(), 4); // struct pvirtq_event_suppress
        } else if (queue.eventIdx()) {
            log.mark(g.deviceAreaAddress() + 4 + 8L * g.size(), 2);
        }
    }

    @Override
    public String toString() {
        return "control queue " + index() + " over " + memory;
    }
}

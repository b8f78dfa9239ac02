package io.vhostffm.vhost.vhostuser.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.vhost.device.BackendListener;
import io.vhostffm.vhost.device.BackendStart;
import io.vhostffm.vhost.device.NetBackend;
import io.vhostffm.vhost.device.QueueBinding;
import io.vhostffm.vhost.os.DescriptorPoller;
import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.FileDescriptor;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vring.DriverQueue;
import io.vhostffm.vring.PackedDriverQueue;
import io.vhostffm.vring.QueueGeometry;
import io.vhostffm.vring.QueuePosition;
import io.vhostffm.vring.QueueState;
import io.vhostffm.vring.SplitDriverQueue;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.ArrayDeque;
import java.util.BitSet;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * A driver-side guest for the frontend peer tests: vring's driver queues (split or packed) over
 * memfd guest memory, one frame per chain, a 12-byte virtio-net header in front of each frame
 * (VERSION_1, no mergeable buffers), numbered frames ({@link Frames}) sent on each pair's transmit
 * queue and expected back, MAC-swapped, on the same pair's receive queue exactly once.
 */
final class FrontendGuest implements AutoCloseable {
    static final int SIZE = 256;
    static final int HEADER = 12;
    static final int SLOT = 2048;
    /** Frames in flight per pair: fewer than the receive buffers posted, so the peer never lacks one. */
    static final int WINDOW = 128;
    private static final long RING_STRIDE = 0x4000;
    /** Rings from 64 KiB: DPDK refuses a log address of 0 (a packed ring's at guest address 0). */
    private static final long RINGS = 0x10000;
    private static final long BUFFERS = 0x100000;

    final boolean packed;
    final int pairs;
    final MemfdGuestMemory memory;
    final DriverQueue[] queues;
    final EventFd[] kicks;
    final EventFd[] calls;
    final QueueState[] initial;
    final LinkedBlockingQueue<String> events = new LinkedBlockingQueue<>();
    private final int[][] slotOfId;
    private final ArrayDeque<Integer>[] freeSlots;
    private final BitSet back = new BitSet();
    private final int[] ids = new int[SIZE];
    private final int[] lengths = new int[SIZE];
    private final long[] txPerQueue;
    private long nextFrame;
    private long returned;
    private DescriptorPoller callPoller;

    /** A guest of {@code pairs} pairs whose rings start at {@code start} (split: both indices; packed: position/lap). */
    @SuppressWarnings("unchecked")
    FrontendGuest(boolean packed, int pairs, int start, boolean startWrap) throws NativeCallException {
        this.packed = packed;
        this.pairs = pairs;
        int n = 2 * pairs;
        memory = MemfdGuestMemory.create("frontend-guest", List.of(new MemfdGuestMemory.RegionSpec(0,
                BUFFERS + (long) n * SIZE * SLOT)));
        queues = new DriverQueue[n];
        kicks = new EventFd[n];
        calls = new EventFd[n];
        initial = new QueueState[n];
        slotOfId = new int[n][SIZE];
        freeSlots = new ArrayDeque[n];
        txPerQueue = new long[n];
        try {
            for (int q = 0; q < n; q++) {
                long base = RINGS + q * RING_STRIDE;
                if (packed) {
                    QueueGeometry g = QueueGeometry.packed(SIZE, base, base + 0x1000, base + 0x2000, false);
                    initial[q] = QueueState.of(g, QueuePosition.packed(start, startWrap, start, startWrap, 0));
                    queues[q] = new PackedDriverQueue(q, memory, initial[q]);
                } else {
                    SplitDriverQueue s = new SplitDriverQueue(q, memory, SIZE, base, base + 0x1000, base + 0x2000, false, start);
                    queues[q] = s;
                    initial[q] = s.initialDeviceState();
                }
                kicks[q] = EventFd.create("guest kick " + q);
                calls[q] = EventFd.create("guest call " + q);
                freeSlots[q] = new ArrayDeque<>();
                for (int s = 0; s < SIZE; s++) {
                    freeSlots[q].add(s);
                }
            }
        } catch (RuntimeException | NativeCallException e) {
            close();
            throw e;
        }
    }

    /** Guest address of queue {@code q}'s device area (split: used ring; packed: device event suppression). */
    long deviceArea(int q) {
        return RINGS + q * RING_STRIDE + 0x2000;
    }

    /** Guest address of queue {@code q}'s descriptor table (ring). */
    long descriptors(int q) {
        return RINGS + q * RING_STRIDE;
    }

    long features() {
        return VirtioFeature.VERSION_1.mask() | (packed ? VirtioFeature.RING_PACKED.mask() : 0);
    }

    /** The start a device hands a backend for these rings, reporting the backend's events into {@link #events}. */
    BackendStart start() {
        List<QueueBinding> bindings = new ArrayList<>();
        for (int q = 0; q < queues.length; q++) {
            bindings.add(new QueueBinding(q, initial[q], kicks[q], calls[q]));
        }
        BackendListener listener = new BackendListener() {
            @Override
            public void badGuestInput(int queueIndex, String reason) {
                events.add("bad input on " + queueIndex + ": " + reason);
            }

            @Override
            public void backendClosed(NetBackend backend) {
                events.add("closed: " + backend);
            }

            @Override
            public void backendGone(NetBackend backend, String reason) {
                events.add("gone: " + reason);
            }
        };
        return new BackendStart(memory, features(), bindings, pairs, 0, null, listener);
    }

    /** Guest address of buffer slot {@code slot} of queue {@code q}. */
    long slotAddress(int q, int slot) {
        return BUFFERS + ((long) q * SIZE + slot) * SLOT;
    }

    /** Posts a receive buffer into every free descriptor of each receive queue. */
    void postRx() throws NativeCallException {
        for (int p = 0; p < pairs; p++) {
            int q = 2 * p;
            boolean added = false;
            while (queues[q].freeDescriptors() > 0 && !freeSlots[q].isEmpty()) {
                int slot = freeSlots[q].poll();
                int id = queues[q].add(new long[] {slotAddress(q, slot)}, new int[] {SLOT}, 0, 1);
                assertTrue(id >= 0, "rx add on " + q);
                slotOfId[q][id] = slot;
                added = true;
            }
            if (added && queues[q].needsKick()) {
                kicks[q].signal();
            }
        }
    }

    /**
     * Sends {@code count} more numbered frames, round-robin over the pairs, at most {@link #WINDOW}
     * per pair in flight, and waits until each came back (or fails after {@code timeoutMillis}
     * without progress).
     */
    void roundTrip(long count, int timeoutMillis) throws NativeCallException {
        long target = nextFrame + count;
        long lastProgress = System.nanoTime();
        postRx();
        while (returned < target) {
            boolean progress = false;
            for (int p = 0; p < pairs && nextFrame < target; p++) {
                int q = 2 * p + 1;
                int sentHere = 0;
                while (nextFrame < target && inFlight() < (long) WINDOW * pairs && queues[q].freeDescriptors() > 0
                        && !freeSlots[q].isEmpty()) {
                    transmit(q, nextFrame++);
                    sentHere++;
                }
                if (sentHere > 0 && queues[q].needsKick()) {
                    kicks[q].signal();
                }
            }
            for (int q = 0; q < queues.length; q++) {
                calls[q].consume();
            }
            progress |= collect();
            if (progress) {
                lastProgress = System.nanoTime();
                continue;
            }
            long left = timeoutMillis - (System.nanoTime() - lastProgress) / 1_000_000;
            if (left <= 0) {
                throw new AssertionError(returned + " of " + target + " frames came back; none for " + timeoutMillis
                        + " ms (sent " + nextFrame + ")");
            }
            awaitAnyCall((int) Math.min(left, 100));
        }
    }

    long inFlight() {
        return nextFrame - returned;
    }

    private void awaitAnyCall(int millis) throws NativeCallException {
        if (callPoller == null) {
            List<FileDescriptor> fds = new ArrayList<>();
            for (EventFd c : calls) {
                fds.add(c.fd());
            }
            callPoller = new DescriptorPoller(fds);
        }
        callPoller.poll(millis);
    }

    private void transmit(int q, long n) {
        int slot = freeSlots[q].poll();
        byte[] frame = Frames.numbered((int) n, Frames.lengthOf((int) n), Frames.HOST_MAC, Frames.GUEST_MAC);
        MemorySegment buffer = memory.slice(slotAddress(q, slot), HEADER + frame.length);
        buffer.asSlice(0, HEADER).fill((byte) 0);
        MemorySegment.copy(frame, 0, buffer, ValueLayout.JAVA_BYTE, HEADER, frame.length);
        int id = queues[q].add(new long[] {slotAddress(q, slot)}, new int[] {HEADER + frame.length}, 1, 0);
        assertTrue(id >= 0, "tx add on " + q);
        slotOfId[q][id] = slot;
        txPerQueue[q]++;
    }

    /** Collects used chains of every queue: transmit slots freed, received frames checked and reposted. */
    private boolean collect() throws NativeCallException {
        boolean progress = false;
        for (int p = 0; p < pairs; p++) {
            int tx = 2 * p + 1;
            int got = queues[tx].collectUsed(ids, lengths, SIZE);
            for (int i = 0; i < got; i++) {
                freeSlots[tx].add(slotOfId[tx][ids[i]]);
            }
            progress |= got > 0;
            int rx = 2 * p;
            got = queues[rx].collectUsed(ids, lengths, SIZE);
            for (int i = 0; i < got; i++) {
                int slot = slotOfId[rx][ids[i]];
                check(rx, slot, lengths[i]);
                freeSlots[rx].add(slot);
            }
            progress |= got > 0;
        }
        if (progress) {
            postRx();
        }
        return progress;
    }

    private void check(int rx, int slot, int written) {
        assertTrue(written > HEADER && written <= SLOT, "rx " + rx + " wrote " + written + " bytes");
        byte[] frame = memory.slice(slotAddress(rx, slot) + HEADER, written - HEADER).toArray(ValueLayout.JAVA_BYTE);
        int n = Frames.numberOf(frame, frame.length);
        assertTrue(n >= 0 && n < nextFrame, "rx " + rx + ": a frame that is not one of ours (number " + n + ")");
        assertTrue(!back.get(n), "frame " + n + " came back twice");
        byte[] sent = Frames.numbered(n, Frames.lengthOf(n), Frames.HOST_MAC, Frames.GUEST_MAC);
        assertArrayEquals(Frames.macSwapped(sent), frame, "frame " + n + " as it came back on rx " + rx);
        back.set(n);
        returned++;
    }

    /** Frames sent so far. */
    long sent() {
        return nextFrame;
    }

    /** Frames that came back so far. */
    long returned() {
        return returned;
    }

    /** Transmits {@code count} frames round-robin over the pairs without waiting for them (e.g. before a kill). */
    void transmitOnly(int count) throws NativeCallException {
        for (int i = 0; i < count; i++) {
            int q = 2 * (i % pairs) + 1;
            transmit(q, nextFrame++);
        }
        for (int p = 0; p < pairs; p++) {
            kicks[2 * p + 1].signal();
        }
    }

    /**
     * Checks a backend's stop positions against the guest's own indices: transmit queues have
     * everything taken and used (last avail = what the driver made available), receive queues have
     * taken exactly the buffers they used, nothing in use.
     */
    void assertPositionsAgree(List<QueuePosition> positions) throws NativeCallException {
        // The backend may have used chains the driver has not reaped yet (a round trip ends when
        // the last frame came back, not when the last transmit completion was collected): reap
        // them, so the driver's own indices are the whole truth the positions are compared with.
        while (collect()) {
            // until nothing more was used
        }
        assertEquals(queues.length, positions.size(), "positions");
        for (int q = 0; q < queues.length; q++) {
            QueuePosition at = positions.get(q);
            assertEquals(0, at.inuse(), "queue " + q + " inuse: " + at);
            if (queues[q] instanceof PackedDriverQueue d) {
                boolean rx = q % 2 == 0;
                int expected = rx ? d.nextUsed() : d.nextAvail();
                boolean wrap = rx ? d.usedWrapCounter() : d.availWrapCounter();
                assertEquals(expected, at.lastAvailIdx(), "packed queue " + q + " last avail: " + at);
                assertEquals(wrap, at.lastAvailWrapCounter(), "packed queue " + q + " avail wrap counter: " + at);
                assertEquals(d.nextUsed(), at.usedIdx(), "packed queue " + q + " used: " + at);
                assertEquals(d.usedWrapCounter(), at.usedWrapCounter(), "packed queue " + q + " used wrap: " + at);
            } else {
                var state = queues[q].saveState();
                int used = state.lastUsedIdx();
                assertEquals(used, at.usedIdx(), "split queue " + q + " used idx: " + at);
                assertEquals(used, at.lastAvailIdx(), "split queue " + q + " last avail idx: " + at);
                if (q % 2 == 1) {
                    assertEquals(state.availIdx(), at.lastAvailIdx(), "split tx queue " + q + ": all taken: " + at);
                }
            }
        }
    }

    /** The next event a backend reported, within {@code millis}, or null. */
    String awaitEvent(int millis) throws InterruptedException {
        return events.poll(millis, TimeUnit.MILLISECONDS);
    }

    @Override
    public void close() {
        if (callPoller != null) {
            callPoller.close();
        }
        for (EventFd e : kicks) {
            if (e != null) e.close();
        }
        for (EventFd e : calls) {
            if (e != null) e.close();
        }
        memory.close();
    }
}

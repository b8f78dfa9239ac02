package io.vhostffm.jmh;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

import io.vhostffm.vhost.os.DescriptorPoller;
import io.vhostffm.vhost.os.FileDescriptor;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.device.userspace.UserspaceDatapath;
import io.vhostffm.vring.DriverQueue;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * The userspace datapath with a real TAP (benchmark 6): frames per second out of the guest into
 * the TAP (TX) and from the TAP into the guest (RX), over {@link #pairs} queue pairs, event idx on,
 * mergeable receive buffers. The guest is vring's split driver over memfd memory (on the benchmark thread);
 * the datapath runs on its own thread, as in a device; the network side is an AF_PACKET socket
 * bound to the TAP, created and removed with it in the trial set-up and tear-down (needs root).
 *
 * <p>One operation is one frame of {@link #frameSize} bytes (Ethernet header included, vnet
 * header not), delivered end to end: an invocation moves {@value #BATCH} frames and returns only
 * when all of them have arrived on the far side (TX: read from the AF_PACKET socket; RX: published
 * used in the guest's receive ring, the EtherType checked in guest memory). The score is
 * therefore frames per second through guest ring, datapath thread, TAP and the kernel's packet
 * path together, with the guest's and the network side's own system calls included.
 *
 * <p>With more than one pair the guest (still one thread) spreads each TX batch evenly over the
 * pairs' transmit queues and collects RX from all receive queues, waiting on all their call
 * eventfds at once. The network side always sends {@value #FLOWS} UDP flows in turn (frames that
 * differ in their source port), so that the TAP's flow hash spreads them over its queues; which
 * queue each frame came out of is counted ({@link #rxPerQueue}).
 *
 * <p>{@link #impl} {@code c} is the baseline: the same work done by C ({@link DatapathBaseline}) on
 * the same fixture, one system call per frame, with no guest and no datapath thread, one thread over
 * all the TAP's queues: TX, a writev of vnet header + frame into the TAP per frame (the queues in
 * turn), then the same AF_PACKET reader until the batch arrived; RX, the same AF_PACKET sends,
 * then a readv from the TAP's queues in turn into a buffer per frame (poll on all of them when all
 * are empty; with more than one queue they are made non-blocking). The
 * report divides the Java score by the C score per direction and frame size.
 *
 * <p>An invocation that does not see its frames within {@value #TIMEOUT_MS} ms fails rather than
 * reporting a rate for lost frames.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(1)
public class UserspaceDatapathBenchmark {
    static final int BATCH = 32;
    static final int RX_BUFFER = 2048;
    /** Distinct UDP flows the network side sends in turn: enough that the TAP's hash uses every queue. */
    static final int FLOWS = 16;
    private static final int TIMEOUT_MS = 5_000;

    /** Ethernet frame size: minimum (64 with FCS, 60 on the wire here) and a full 1500-byte MTU frame. */
    @Param({"64", "1514"})
    public int frameSize;

    /** {@code java}: the guest and the userspace datapath; {@code c}: the C baseline doing the same work. */
    @Param({"java", "c"})
    public String impl = "java";

    /** Queue pairs: the TAP's queues, the device's pairs, the guest's queues. */
    @Param({"1", "2"})
    public int pairs = 1;

    /**
     * The datapath's worker threads ({@code impl=java}): {@code shared}, one thread serving every
     * pair; {@code per-pair}, a thread per pair (with one pair both are one thread). The C
     * baseline is one thread either way; it runs under both so that each Java figure has its C
     * figure from the same stretch of the run.
     */
    @Param({"shared", "per-pair"})
    public String workers = "shared";

    /**
     * How the datapath's transmit hands its writevs to the kernel ({@code impl=java}):
     * {@code writev}, one system call per chain; {@code io_uring}, a round's chains with one
     * io_uring_enter ({@code UserspaceDatapath.TransmitIo}). Receive is the same under both. The
     * C baseline (one writev per frame) runs under both, so each Java figure has its C figure
     * from the same stretch of the run.
     */
    @Param({"writev", "io_uring"})
    public String io = "writev";

    TapGuest guest;
    private TapGuest.Pair[] pairList;
    private UserspaceDatapath datapath;
    private Arena arena;
    private MemorySegment frame;
    /** The {@value #FLOWS} RX frames, back to back, each {@code frame.byteSize()} bytes. */
    private MemorySegment flows;
    /** The same, sliced once per flow: no allocation per frame. */
    private final MemorySegment[] flowFrames = new MemorySegment[FLOWS];
    private long frameLength;
    private MemorySegment tapFds;
    private MemorySegment perQueue;
    private DescriptorPoller rxCalls;
    private MemorySegment wireBuffer;
    private MemorySegment packet;
    private DatapathBaseline baseline;
    private int tapsAcquired;
    private int wireNumber = -1;
    private final long[] address = new long[1];
    private final int[] length = new int[1];
    private final int[] ids = new int[TapGuest.SIZE];
    private final int[] lens = new int[TapGuest.SIZE];
    private int[][] rxSlotOfHead;
    /** Each pair's receive slots' frames (after the vnet header), sliced once: no allocation per frame. */
    private MemorySegment[][] rxFrames;
    private int[] txSlot;
    private int[] txInFlight;
    long framesSent;
    long framesArrived;
    /** Frames received per TAP queue (and so per pair), over the trial. */
    long[] rxPerQueue;
    /**
     * Waits of the guest for a call that ended without one (its timeout ran out, or, rarely, a
     * signal cut it short): a timeout is a lost notification or a thread that did not run for
     * that long, which the figures alone would only show as a lower rate; printed at the end of
     * a trial when not zero.
     */
    long callWaitsRunOut;
    /** Transmit chains the datapath gave back used, per pair, over the trial ({@code impl=java}). */
    long[] txCompleted;

    /** Creates the TAP and the guest, fills every transmit slot with the frame, posts receive buffers, starts the datapath. */
    @Setup(Level.Trial)
    public void setUp() throws NativeCallException, IOException {
        int onWire = frameSize - 4; // the FCS is not part of what a TAP or socket carries
        if (pairs < 1 || BATCH % pairs != 0) {
            throw new IllegalArgumentException("pairs divides the batch of " + BATCH + ": " + pairs);
        }
        guest = new TapGuest(pairs);
        pairList = guest.pairs.toArray(TapGuest.Pair[]::new);
        rxSlotOfHead = new int[pairs][TapGuest.SIZE];
        rxFrames = new MemorySegment[pairs][TapGuest.SIZE];
        txSlot = new int[pairs];
        txInFlight = new int[pairs];
        rxPerQueue = new long[pairs];
        txCompleted = new long[pairs];
        arena = Arena.ofShared();
        int length = Math.max(onWire, 60);
        byte[] bytes = TapGuest.frame(TapGuest.DEVICE_MAC, length);
        frame = arena.allocate(bytes.length);
        MemorySegment.copy(bytes, 0, frame, JAVA_BYTE, 0, bytes.length);
        frameLength = length;
        flows = arena.allocate((long) FLOWS * length);
        for (int f = 0; f < FLOWS; f++) {
            byte[] flow = TapGuest.flowFrame(TapGuest.DEVICE_MAC, length, f);
            MemorySegment.copy(flow, 0, flows, JAVA_BYTE, (long) f * length, length);
            flowFrames[f] = flows.asSlice((long) f * length, length);
        }
        wireBuffer = arena.allocate(2048);
        for (TapGuest.Pair pair : pairList) {
            for (int s = 0; s < TapGuest.SIZE; s++) {
                MemorySegment slot = guest.at(pair.txSlots + s * TapGuest.SLOT, TapGuest.SLOT);
                slot.asSlice(0, TapGuest.HEADER).fill((byte) 0);
                MemorySegment.copy(frame, 0, slot, TapGuest.HEADER, frame.byteSize());
            }
            // One 2 KiB buffer per receive chain: a 1514-byte frame and its header fit in one.
            for (int s = 0; s < TapGuest.SIZE; s++) {
                rxFrames[pair.index][s] = guest.at(pair.rxSlots + s * TapGuest.SLOT + TapGuest.HEADER, length);
                postRx(pair, s);
            }
        }
        if (impl.equals("c")) {
            // The same header + frame the guest's transmit slots hold, in one buffer.
            packet = arena.allocate(TapGuest.HEADER + frame.byteSize());
            MemorySegment.copy(frame, 0, packet, TapGuest.HEADER, frame.byteSize());
            perQueue = arena.allocate(ValueLayout.JAVA_LONG, pairs);
            tapFds = arena.allocate(ValueLayout.JAVA_INT, pairs);
            baseline = new DatapathBaseline();
            for (int q = 0; q < pairs; q++) {
                tapFds.setAtIndex(ValueLayout.JAVA_INT, q, guest.tap.queue(q).acquire());
                tapsAcquired++;
            }
            if (pairs > 1) {
                // Read in turn, so none may block while the frames sit on another queue.
                for (int q = 0; q < pairs; q++) {
                    baseline.nonblocking(tapFds.getAtIndex(ValueLayout.JAVA_INT, q));
                }
            }
            wireNumber = guest.wire.fd().acquire();
        } else if (impl.equals("java")) {
            List<FileDescriptor> calls = new ArrayList<>();
            for (TapGuest.Pair pair : pairList) {
                calls.add(pair.rxCall.fd());
            }
            rxCalls = new DescriptorPoller(calls);
            int threads = switch (workers) {
                case "shared" -> 1;
                case "per-pair" -> pairs;
                default -> throw new IllegalArgumentException("workers is shared or per-pair: " + workers);
            };
            UserspaceDatapath.TransmitIo transmitIo = switch (io) {
                case "writev" -> UserspaceDatapath.TransmitIo.WRITEV;
                case "io_uring" -> UserspaceDatapath.TransmitIo.IO_URING;
                default -> throw new IllegalArgumentException("io is writev or io_uring: " + io);
            };
            datapath = UserspaceDatapath.start(guest.memory, guest.configs(), guest.device, null, threads, transmitIo);
        } else {
            throw new IllegalArgumentException("impl is java or c: " + impl);
        }
    }

    /** Stops the datapath, removes the TAP, frees guest memory. */
    @TearDown(Level.Trial)
    public void tearDown() {
        if (callWaitsRunOut > 0) {
            System.err.println("UserspaceDatapath: " + callWaitsRunOut + " waits for a call ended without one"
                    + " (a lost notification, or a thread that did not run for the whole wait)");
        }
        try {
            if (datapath != null) {
                datapath.stop();
            }
            if (baseline != null) {
                baseline.close();
            }
            if (rxCalls != null) {
                rxCalls.close();
            }
        } finally {
            for (int q = 0; q < tapsAcquired; q++) {
                guest.tap.queue(q).release();
            }
            if (wireNumber >= 0) {
                guest.wire.fd().release();
            }
            guest.close();
            arena.close();
        }
        if (!guest.needsReset.isEmpty()) {
            throw new IllegalStateException("the datapath stopped on bad guest input: " + guest.needsReset);
        }
    }

    private void postRx(TapGuest.Pair pair, int slot) {
        address[0] = pair.rxSlots + slot * TapGuest.SLOT;
        length[0] = RX_BUFFER;
        int head = pair.rx.add(address, length, 0, 1);
        if (head < 0) {
            throw new IllegalStateException("receive ring " + pair.index + " full");
        }
        rxSlotOfHead[pair.index][head] = slot;
    }

    /**
     * The guest makes {@value #BATCH} frames available on its transmit queues, the same number on
     * each (one descriptor of header + frame each), and kicks each when asked; the invocation ends when all of them have been
     * read from the AF_PACKET socket on the TAP.
     */
    @Benchmark
    @OperationsPerInvocation(BATCH)
    public long transmit() throws NativeCallException {
        if (baseline != null) {
            return transmitC();
        }
        int each = BATCH / pairList.length;
        for (TapGuest.Pair pair : pairList) {
            int p = pair.index;
            DriverQueue tx = pair.tx;
            while (txInFlight[p] > TapGuest.SIZE - each) {
                collectTx(pair, true);
            }
            for (int i = 0; i < each; i++) {
                address[0] = pair.txSlots + txSlot[p] * TapGuest.SLOT;
                length[0] = TapGuest.HEADER + (int) frame.byteSize();
                txSlot[p] = (txSlot[p] + 1) % TapGuest.SIZE;
                if (tx.add(address, length, 1, 0) < 0) {
                    throw new IllegalStateException("transmit ring " + p + " full with " + txInFlight[p] + " in flight");
                }
                txInFlight[p]++;
            }
            if (tx.needsKick()) {
                pair.txKick.signal();
            }
        }
        framesSent += BATCH;
        int arrived = 0;
        while (arrived < BATCH) {
            long n = guest.wire.receive(wireBuffer, TIMEOUT_MS);
            if (n < 0) {
                throw new IllegalStateException(arrived + " of " + BATCH + " frames reached the wire in "
                        + TIMEOUT_MS + " ms; datapath " + datapath.stats());
            }
            if (n == frame.byteSize() && TapGuest.ours(wireBuffer)) {
                arrived++;
            }
        }
        framesArrived += arrived;
        for (TapGuest.Pair pair : pairList) {
            collectTx(pair, false);
        }
        return framesArrived;
    }

    private void collectTx(TapGuest.Pair pair, boolean wait) throws NativeCallException {
        int n = pair.tx.collectUsed(ids, lens, TapGuest.SIZE);
        txInFlight[pair.index] -= n;
        txCompleted[pair.index] += n;
        if (n == 0 && wait) {
            if (!pair.tx.enableUsedNotifications() && !pair.txCall.poll(TIMEOUT_MS)) {
                callWaitsRunOut++;
            }
            pair.txCall.consume();
            pair.tx.disableUsedNotifications();
        }
    }

    /**
     * The network side sends {@value #BATCH} frames into the TAP, the {@value #FLOWS} flows in
     * turn; the invocation ends when the guest has collected all of them from its receive rings
     * (reposting each buffer at once), waiting on all the rings' call eventfds when all are empty.
     */
    @Benchmark
    @OperationsPerInvocation(BATCH)
    public long receive() throws NativeCallException {
        if (baseline != null) {
            return receiveC();
        }
        for (int i = 0; i < BATCH; i++) {
            guest.wire.send(flowFrames[i % FLOWS]);
        }
        framesSent += BATCH;
        int arrived = 0;
        long deadline = 0;
        while (arrived < BATCH) {
            int collected = 0;
            for (TapGuest.Pair pair : pairList) {
                DriverQueue rx = pair.rx;
                int p = pair.index;
                int n = rx.collectUsed(ids, lens, TapGuest.SIZE);
                for (int i = 0; i < n; i++) {
                    int slot = rxSlotOfHead[p][ids[i]];
                    if (lens[i] == TapGuest.HEADER + frameLength && TapGuest.ours(rxFrames[p][slot])) {
                        arrived++;
                        rxPerQueue[p]++;
                    }
                    postRx(pair, slot);
                }
                if (n > 0 && rx.needsKick()) {
                    pair.rxKick.signal();
                }
                collected += n;
            }
            if (collected > 0) {
                continue;
            }
            if (deadline == 0) {
                deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(TIMEOUT_MS);
            } else if (System.nanoTime() > deadline) {
                throw new IllegalStateException(arrived + " of " + BATCH + " frames reached the guest in "
                        + TIMEOUT_MS + " ms; datapath " + datapath.stats());
            }
            boolean pending = false;
            for (TapGuest.Pair pair : pairList) {
                pending |= pair.rx.enableUsedNotifications();
            }
            if (!pending) {
                if (rxCalls.poll(100) == 0) {
                    callWaitsRunOut++;
                }
                // Only the calls that came (as a guest takes only the interrupts raised): a read
                // of one not signalled would be a failed system call per wait. One signalled
                // while the guest was not waiting stays readable, and the next poll returns at once.
                for (TapGuest.Pair pair : pairList) {
                    if (rxCalls.isReadable(pair.index)) {
                        pair.rxCall.consume();
                    }
                }
            }
            for (TapGuest.Pair pair : pairList) {
                pair.rx.disableUsedNotifications();
            }
        }
        framesArrived += arrived;
        return framesArrived;
    }

    private long transmitC() {
        framesSent += BATCH;
        long arrived = baseline.transmit(tapFds, pairs, wireNumber, packet, wireBuffer, BATCH, TIMEOUT_MS);
        if (arrived < BATCH) {
            throw new IllegalStateException(arrived + " of " + BATCH + " frames reached the wire in " + TIMEOUT_MS
                    + " ms (C baseline)");
        }
        framesArrived += arrived;
        return framesArrived;
    }

    private long receiveC() {
        framesSent += BATCH;
        long arrived = baseline.receive(wireNumber, tapFds, pairs, flows, frameLength, FLOWS, wireBuffer, BATCH,
                TIMEOUT_MS, perQueue);
        if (arrived < BATCH) {
            throw new IllegalStateException(arrived + " of " + BATCH + " frames came out of the TAP in " + TIMEOUT_MS
                    + " ms (C baseline)");
        }
        framesArrived += arrived;
        for (int q = 0; q < pairs; q++) {
            rxPerQueue[q] = perQueue.getAtIndex(ValueLayout.JAVA_LONG, q);
        }
        return framesArrived;
    }
}

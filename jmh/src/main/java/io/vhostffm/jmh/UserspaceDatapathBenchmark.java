package io.vhostffm.jmh;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.device.userspace.UserspaceDatapath;
import io.vhostffm.vring.DriverQueue;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
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
 * the TAP (TX) and from the TAP into the guest (RX), one queue pair, event idx on, mergeable
 * receive buffers. The guest is vring's split driver over memfd memory (on the benchmark thread);
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
 * <p>{@link #impl} {@code c} is the baseline: the same work done by C ({@link DatapathBaseline}) on
 * the same fixture, one system call per frame, with no guest and no datapath thread: TX, a writev
 * of vnet header + frame into the TAP per frame, then the same AF_PACKET reader until the batch
 * arrived; RX, the same AF_PACKET sends, then a readv from the TAP into a buffer per frame. The
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
    private static final int TIMEOUT_MS = 5_000;

    /** Ethernet frame size: minimum (64 with FCS, 60 on the wire here) and a full 1500-byte MTU frame. */
    @Param({"64", "1514"})
    public int frameSize;

    /** {@code java}: the guest and the userspace datapath; {@code c}: the C baseline doing the same work. */
    @Param({"java", "c"})
    public String impl = "java";

    TapGuest guest;
    private TapGuest.Pair pair;
    private UserspaceDatapath datapath;
    private Arena arena;
    private MemorySegment frame;
    private MemorySegment wireBuffer;
    private MemorySegment packet;
    private DatapathBaseline baseline;
    private int tapNumber = -1;
    private int wireNumber = -1;
    private final long[] address = new long[1];
    private final int[] length = new int[1];
    private final int[] ids = new int[TapGuest.SIZE];
    private final int[] lens = new int[TapGuest.SIZE];
    private final int[] rxSlotOfHead = new int[TapGuest.SIZE];
    /** Each receive slot's frame (after the vnet header), sliced once: no allocation per frame. */
    private final MemorySegment[] rxFrames = new MemorySegment[TapGuest.SIZE];
    private int txSlot;
    private int txInFlight;
    long framesSent;
    long framesArrived;

    /** Creates the TAP and the guest, fills every transmit slot with the frame, posts receive buffers, starts the datapath. */
    @Setup(Level.Trial)
    public void setUp() throws NativeCallException, IOException {
        int onWire = frameSize - 4; // the FCS is not part of what a TAP or socket carries
        guest = new TapGuest(1);
        pair = guest.pairs.get(0);
        arena = Arena.ofShared();
        byte[] bytes = TapGuest.frame(TapGuest.DEVICE_MAC, Math.max(onWire, 60));
        frame = arena.allocate(bytes.length);
        MemorySegment.copy(bytes, 0, frame, JAVA_BYTE, 0, bytes.length);
        wireBuffer = arena.allocate(2048);
        for (int s = 0; s < TapGuest.SIZE; s++) {
            MemorySegment slot = guest.at(pair.txSlots + s * TapGuest.SLOT, TapGuest.SLOT);
            slot.asSlice(0, TapGuest.HEADER).fill((byte) 0);
            MemorySegment.copy(frame, 0, slot, TapGuest.HEADER, frame.byteSize());
        }
        // One 2 KiB buffer per receive chain: a 1514-byte frame and its header fit in one.
        for (int s = 0; s < TapGuest.SIZE; s++) {
            rxFrames[s] = guest.at(pair.rxSlots + s * TapGuest.SLOT + TapGuest.HEADER, frame.byteSize());
            postRx(s);
        }
        if (impl.equals("c")) {
            // The same header + frame the guest's transmit slots hold, in one buffer.
            packet = arena.allocate(TapGuest.HEADER + frame.byteSize());
            MemorySegment.copy(frame, 0, packet, TapGuest.HEADER, frame.byteSize());
            baseline = new DatapathBaseline();
            tapNumber = guest.tap.queue(0).acquire();
            wireNumber = guest.wire.fd().acquire();
        } else if (impl.equals("java")) {
            datapath = UserspaceDatapath.start(guest.memory, guest.configs(), guest.device, null);
        } else {
            throw new IllegalArgumentException("impl is java or c: " + impl);
        }
    }

    /** Stops the datapath, removes the TAP, frees guest memory. */
    @TearDown(Level.Trial)
    public void tearDown() {
        try {
            if (datapath != null) {
                datapath.stop();
            }
            if (baseline != null) {
                baseline.close();
            }
        } finally {
            if (tapNumber >= 0) {
                guest.tap.queue(0).release();
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

    private void postRx(int slot) {
        address[0] = pair.rxSlots + slot * TapGuest.SLOT;
        length[0] = RX_BUFFER;
        int head = pair.rx.add(address, length, 0, 1);
        if (head < 0) {
            throw new IllegalStateException("receive ring full");
        }
        rxSlotOfHead[head] = slot;
    }

    /**
     * The guest makes {@value #BATCH} frames available on its transmit queue (one descriptor of
     * header + frame each) and kicks when asked; the invocation ends when all of them have been
     * read from the AF_PACKET socket on the TAP.
     */
    @Benchmark
    @OperationsPerInvocation(BATCH)
    public long transmit() throws NativeCallException {
        if (baseline != null) {
            return transmitC();
        }
        DriverQueue tx = pair.tx;
        while (txInFlight > TapGuest.SIZE - BATCH) {
            collectTx(true);
        }
        for (int i = 0; i < BATCH; i++) {
            address[0] = pair.txSlots + txSlot * TapGuest.SLOT;
            length[0] = TapGuest.HEADER + (int) frame.byteSize();
            txSlot = (txSlot + 1) % TapGuest.SIZE;
            if (tx.add(address, length, 1, 0) < 0) {
                throw new IllegalStateException("transmit ring full with " + txInFlight + " in flight");
            }
            txInFlight++;
        }
        framesSent += BATCH;
        if (tx.needsKick()) {
            pair.txKick.signal();
        }
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
        collectTx(false);
        return framesArrived;
    }

    private void collectTx(boolean wait) throws NativeCallException {
        int n = pair.tx.collectUsed(ids, lens, TapGuest.SIZE);
        txInFlight -= n;
        if (n == 0 && wait) {
            if (!pair.tx.enableUsedNotifications()) {
                pair.txCall.poll(TIMEOUT_MS);
            }
            pair.txCall.consume();
            pair.tx.disableUsedNotifications();
        }
    }

    /**
     * The network side sends {@value #BATCH} frames into the TAP; the invocation ends when the
     * guest has collected all of them from its receive ring (reposting each buffer at once).
     */
    @Benchmark
    @OperationsPerInvocation(BATCH)
    public long receive() throws NativeCallException {
        if (baseline != null) {
            return receiveC();
        }
        for (int i = 0; i < BATCH; i++) {
            guest.wire.send(frame);
        }
        framesSent += BATCH;
        DriverQueue rx = pair.rx;
        int arrived = 0;
        long deadline = 0;
        while (arrived < BATCH) {
            int n = rx.collectUsed(ids, lens, TapGuest.SIZE);
            for (int i = 0; i < n; i++) {
                int slot = rxSlotOfHead[ids[i]];
                if (lens[i] == TapGuest.HEADER + frame.byteSize() && TapGuest.ours(rxFrames[slot])) {
                    arrived++;
                }
                postRx(slot);
            }
            if (n > 0) {
                if (rx.needsKick()) {
                    pair.rxKick.signal();
                }
                continue;
            }
            if (deadline == 0) {
                deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(TIMEOUT_MS);
            } else if (System.nanoTime() > deadline) {
                throw new IllegalStateException(arrived + " of " + BATCH + " frames reached the guest in "
                        + TIMEOUT_MS + " ms; datapath " + datapath.stats());
            }
            if (!rx.enableUsedNotifications()) {
                pair.rxCall.poll(100);
            }
            pair.rxCall.consume();
            rx.disableUsedNotifications();
        }
        framesArrived += arrived;
        return framesArrived;
    }

    private long transmitC() {
        framesSent += BATCH;
        long arrived = baseline.transmit(tapNumber, wireNumber, packet, wireBuffer, BATCH, TIMEOUT_MS);
        if (arrived < BATCH) {
            throw new IllegalStateException(arrived + " of " + BATCH + " frames reached the wire in " + TIMEOUT_MS
                    + " ms (C baseline)");
        }
        framesArrived += arrived;
        return framesArrived;
    }

    private long receiveC() {
        framesSent += BATCH;
        long arrived = baseline.receive(wireNumber, tapNumber, frame, wireBuffer, BATCH, TIMEOUT_MS);
        if (arrived < BATCH) {
            throw new IllegalStateException(arrived + " of " + BATCH + " frames came out of the TAP in " + TIMEOUT_MS
                    + " ms (C baseline)");
        }
        framesArrived += arrived;
        return framesArrived;
    }
}

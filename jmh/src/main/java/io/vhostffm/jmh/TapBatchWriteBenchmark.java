package io.vhostffm.jmh;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.vhost.os.FileDescriptor;
import io.vhostffm.vhost.os.IoUring;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.os.TapDevice;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
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
 * The system-call lever of the userspace datapath's transmit side, alone: a batch of
 * {@value #BATCH} frames (vnet header + Ethernet frame, one buffer each, as the guest's
 * one-descriptor chains) written into a real TAP queue whose link is up, either with one system
 * call per frame or all of them through io_uring with one {@code io_uring_enter}, in Java (through
 * FFM: {@link FileDescriptor#write}, {@link IoUring}) and in C ({@code tap-batch-baseline.c}, raw
 * system calls both ways) in the same run. Nothing reads the far side: the kernel takes each
 * frame into its receive path and drops it (an experimental ethertype to a broadcast address, no
 * IPv6 on the link), the same work for every variant, so the differences are the submission's.
 * One operation is one frame.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(1)
public class TapBatchWriteBenchmark {
    static final int BATCH = 32;

    /** Ethernet frame size: minimum (64 with FCS, 60 on the wire here) and a full 1500-byte MTU frame. */
    @Param({"64", "1514"})
    public int frameSize;

    /**
     * {@code java-write}: a write per frame; {@code java-io_uring}: the batch through {@link IoUring};
     * {@code java-io_uring-linked}: the same, each writev linked to the next and not waiting for
     * room ({@link IoUring#LINK_NEXT}, {@link IoUring#NO_WAIT}), as the userspace datapath's
     * transmit queues them; {@code c-writev}, {@code c-io_uring}: the same in C.
     */
    @Param({"java-write", "java-io_uring", "java-io_uring-linked", "c-writev", "c-io_uring"})
    public String impl;

    private TapDevice tap;
    private FileDescriptor queue;
    private Arena arena;
    private final MemorySegment[] packets = new MemorySegment[BATCH];
    private MemorySegment iovecs;
    private IoUring ring;
    private final long[] tags = new long[BATCH];
    private final int[] results = new int[BATCH];
    private TapBatchBaseline c;
    private int tapNumber = -1;

    /** Creates the TAP (link up, IPv6 off), the frames and their iovecs, and the ring or the C library. */
    @Setup(Level.Trial)
    public void setUp() throws NativeCallException, IOException {
        tap = TapDevice.create("vffbw%d", 1, TapDevice.VHOST_FLAGS);
        tap.setVnetHeaderSize(FakeGuest.HEADER);
        try {
            Files.writeString(Path.of("/proc/sys/net/ipv6/conf", tap.name(), "disable_ipv6"), "1");
        } catch (IOException e) {
            // no IPv6 on this kernel: nothing chatters on the link anyway
        }
        tap.setLinkUp(true);
        queue = tap.queue(0);
        arena = Arena.ofShared();
        byte[] frame = TapGuest.frame(TapGuest.DEVICE_MAC, frameSize - 4); // no FCS through a TAP
        frame[0] = frame[1] = frame[2] = frame[3] = frame[4] = frame[5] = (byte) 0xff; // broadcast
        frame[12] = (byte) 0x88; // IEEE local experimental ethertype: no protocol of the kernel takes it
        frame[13] = (byte) 0xb5;
        iovecs = arena.allocate(16L * BATCH, 8);
        for (int i = 0; i < BATCH; i++) {
            packets[i] = arena.allocate(FakeGuest.HEADER + frame.length, 64);
            MemorySegment.copy(frame, 0, packets[i], JAVA_BYTE, FakeGuest.HEADER, frame.length);
            iovecs.set(JAVA_LONG, 16L * i, packets[i].address());
            iovecs.set(JAVA_LONG, 16L * i + 8, packets[i].byteSize());
        }
        switch (impl) {
            case "java-write" -> { }
            case "java-io_uring", "java-io_uring-linked" -> ring = IoUring.open(BATCH);
            case "c-writev", "c-io_uring" -> {
                c = new TapBatchBaseline();
                tapNumber = queue.acquire();
                if (impl.equals("c-io_uring")) {
                    c.openRing(BATCH);
                }
            }
            default -> throw new IllegalArgumentException("impl " + impl);
        }
    }

    /** One batch; returns the bytes written (frames, for C). */
    @Benchmark
    @OperationsPerInvocation(BATCH)
    public long write() throws NativeCallException {
        return switch (impl) {
            case "java-write" -> {
                long bytes = 0;
                for (int i = 0; i < BATCH; i++) {
                    bytes += queue.write(packets[i]);
                }
                yield bytes;
            }
            case "java-io_uring", "java-io_uring-linked" -> {
                boolean linked = impl.equals("java-io_uring-linked");
                for (int i = 0; i < BATCH; i++) {
                    int flags = linked ? IoUring.NO_WAIT | (i + 1 < BATCH ? IoUring.LINK_NEXT : 0) : 0;
                    ring.queueWritev(queue, iovecs, 16L * i, 1, i, flags);
                }
                ring.submit(BATCH);
                int done = ring.completions(tags, results);
                long bytes = 0;
                for (int i = 0; i < done; i++) {
                    if (results[i] < 0) {
                        throw IoUring.failure("writev", queue, results[i]);
                    }
                    bytes += results[i];
                }
                if (done != BATCH) {
                    throw new IllegalStateException(done + " of " + BATCH + " completions after waiting for all");
                }
                yield bytes;
            }
            case "c-writev" -> c.writevBatch(tapNumber, iovecs, BATCH);
            default -> c.uringWritevBatch(tapNumber, iovecs, BATCH);
        };
    }

    /** The TAP's interface name, for a fixture test's packet socket. */
    String tapName() {
        return tap.name();
    }

    /** Closes the ring or the C library, then the TAP. */
    @TearDown(Level.Trial)
    public void tearDown() {
        if (ring != null) {
            ring.close();
        }
        if (c != null) {
            c.close();
        }
        if (tapNumber >= 0) {
            queue.release();
        }
        arena.close();
        tap.close();
    }
}

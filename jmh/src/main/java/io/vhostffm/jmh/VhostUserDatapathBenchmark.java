package io.vhostffm.jmh;

import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.testkit.Frames;
import io.vhostffm.testkit.GuestLayout;
import io.vhostffm.testkit.GuestTransport;
import io.vhostffm.testkit.NetworkSide;
import io.vhostffm.testkit.RxFrame;
import io.vhostffm.testkit.Testpmd;
import io.vhostffm.testkit.TxShape;
import io.vhostffm.vhost.device.NetBackend;
import io.vhostffm.vhost.device.NetDeviceRuntime;
import io.vhostffm.vhost.device.userspace.UserspaceNetBackend;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.TapDevice;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vhost.virtio.net.VirtioNetOptions;
import io.vhostffm.vhost.vhostuser.frontend.VhostUserFrontendBackend;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
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
 * Frames per second the driver side gets through a device whose datapath is an external
 * vhost-user backend: the testkit's {@link FakeGuest} (memfd guest memory, one queue pair of 256
 * entries, mergeable 2 KiB receive buffers, event index) drives a {@link NetDeviceRuntime} whose
 * backend is our frontend ({@link VhostUserFrontendBackend}) on DPDK testpmd's net_vhost, which
 * forwards every frame back to the guest with its MACs swapped ({@code --forward-mode=macswap},
 * one forwarding core polling). One invocation is a batch of {@value #BATCH} numbered frames of
 * {@link #frameSize} bytes transmitted and all {@value #BATCH} received back, checked in order by
 * sequence number and length; the score is frames per second (round trips).
 *
 * <p>The baseline in the same run ({@code backend=userspace}): the same guest and device on our own
 * userspace datapath ({@link UserspaceNetBackend}) on a TAP, with a {@link TapReflector} thread on
 * the TAP's AF_PACKET socket doing testpmd's part (the MAC swap, each frame sent back into the
 * TAP). It is the device's other backend doing the same round trip, not a floor under the
 * vhost-user one: the datapath thread, the TAP and the reflector share the 2 cores with the guest,
 * where testpmd's forwarding core polls one of them at 100%.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(1)
public class VhostUserDatapathBenchmark {
    /** Frames per invocation. */
    static final int BATCH = 32;
    private static final long DEADLINE_NANOS = TimeUnit.SECONDS.toNanos(5);
    private static final int WAIT_MILLIS = 50;
    private static final Duration TESTPMD_START = Duration.ofSeconds(60);
    private static final Duration TESTPMD_STOP = Duration.ofSeconds(30);
    /** Longer than a trial: testpmd prints no port statistics during one. */
    private static final Duration TESTPMD_STATISTICS = Duration.ofHours(1);

    /** {@code split} or {@code packed} rings. */
    @Param({"split", "packed"})
    public String format;

    /** Bytes of each Ethernet frame the guest sends (no FCS). */
    @Param({"64", "1514"})
    public int frameSize;

    /** {@code dpdk}: our vhost-user frontend on testpmd; {@code userspace}: the baseline on a TAP. */
    @Param({"dpdk", "userspace"})
    public String backend;

    MemfdGuestMemory memory;
    Path socketDirectory;
    Path socket;
    Testpmd testpmd;
    TapDevice tap;
    TapReflector reflector;
    NetBackend datapath;
    NetDeviceRuntime device;
    FakeGuest guest;
    private byte[] frame;
    private MemorySegment frameSegment;
    private final List<RxFrame> arrived = new ArrayList<>();
    private long nextSeq;
    private long expectedSeq;
    /** Frames that came back, all invocations. */
    long framesBack;
    /** Waits for a used buffer that ended at their 50 ms deadline instead of a notification. */
    long waitsTimedOut;
    /** Waits for a used buffer, all invocations. */
    long waits;
    /**
     * Of {@link #waitsTimedOut}, those after which used buffers were waiting on the ring: the
     * backend had used them but no notification woke the guest (a late or lost one), as opposed
     * to a backend that had not got to them.
     */
    long timedOutWithUsedWaiting;

    /** Starts the backend (testpmd, or the TAP and its reflector), the device, and boots the guest. */
    @Setup(Level.Trial)
    public void setUp() throws Exception {
        GuestLayout layout = GuestLayout.of(1);
        memory = layout.createMemory("jmh-vhost-user-datapath");
        try {
            switch (backend) {
                case "dpdk" -> {
                    socketDirectory = Files.createTempDirectory("vhostffm-jmh-vud");
                    socket = socketDirectory.resolve("vhost.sock");
                    testpmd = Testpmd.start(socket, "jmh-vud", 1, TESTPMD_STATISTICS, TESTPMD_START, null);
                    datapath = VhostUserFrontendBackend.connect(socket, Duration.ofSeconds(10), 1);
                }
                case "userspace" -> {
                    tap = TapDevice.create("vffu%d", 1, TapDevice.VHOST_FLAGS);
                    NetworkSide.quiet(tap.name()); // no router solicitations or MLD reports
                    tap.setLinkUp(true);
                    reflector = new TapReflector(tap.name(), FakeGuest.MAC);
                    datapath = UserspaceNetBackend.open(tap);
                }
                default -> throw new IllegalArgumentException("backend " + backend + ": dpdk or userspace");
            }
            List<VirtioFeature> features = new ArrayList<>(List.of(VirtioFeature.MRG_RXBUF, VirtioFeature.EVENT_IDX,
                    VirtioFeature.INDIRECT_DESC, VirtioFeature.MAC, VirtioFeature.STATUS));
            switch (format) {
                case "packed" -> features.add(VirtioFeature.RING_PACKED);
                case "split" -> { }
                default -> throw new IllegalArgumentException("format " + format + ": split or packed");
            }
            VirtioNetOptions options = VirtioNetOptions.builder(FakeGuest.MAC)
                    .features(features.toArray(VirtioFeature[]::new)).maxQueuePairs(1).build();
            device = new NetDeviceRuntime(options, memory, datapath);
            guest = FakeGuest.boot(GuestTransport.of(device), memory, layout, FakeGuest.FEATURES);
            if (guest.packed() != format.equals("packed")) {
                throw new IllegalStateException("the guest negotiated " + (guest.packed() ? "packed" : "split")
                        + " rings; asked for " + format);
            }
            guest.postRxBuffers();
            frame = new byte[frameSize];
            frameSegment = MemorySegment.ofArray(frame);
        } catch (Exception | Error e) {
            tearDown();
            throw e;
        }
    }

    /** A batch of {@value #BATCH} frames out and all of them back. */
    @Benchmark
    @OperationsPerInvocation(BATCH)
    public long roundTrip() throws IOException {
        int sent = 0;
        int back = 0;
        long deadline = System.nanoTime() + DEADLINE_NANOS;
        while (back < BATCH) {
            if (sent < BATCH) {
                sent += transmit(BATCH - sent);
            }
            guest.collectTx();
            int got = receive();
            back += got;
            if (got == 0) {
                if (System.nanoTime() - deadline > 0) {
                    throw new IllegalStateException(String.format("%s, %s, %d bytes: %d of %d frames back after 5 s "
                            + "(%d sent; device status 0x%x%s)", backend, format, frameSize, back, BATCH, sent,
                            guest.status(), reflector != null && reflector.failure() != null
                                    ? "; reflector failed: " + reflector.failure() : ""));
                }
                // Frames out and not back: wait for the receive ring; all back: for the transmit ring's chains.
                int queue = back < sent ? 0 : 1;
                waits++;
                if (!guest.awaitUsed(queue, WAIT_MILLIS)) {
                    waitsTimedOut++;
                    if (guest.queue(queue).enableUsedNotifications()) {
                        timedOutWithUsedWaiting++;
                    }
                }
            }
        }
        framesBack += back;
        return expectedSeq;
    }

    /** Makes up to {@code count} numbered frames available on the transmit ring and kicks if asked. */
    private int transmit(int count) throws IOException {
        int added = 0;
        while (added < count) {
            Frames.write(frameSegment, Frames.BROADCAST, FakeGuest.MAC, 0, nextSeq, frameSize, -1);
            if (guest.transmit(0, frame, TxShape.SINGLE) < 0) {
                break;
            }
            nextSeq++;
            added++;
        }
        if (added > 0) {
            guest.kickIfNeeded(1);
        }
        return added;
    }

    /** Collects the receive ring; checks each numbered frame is the next in sequence and whole. */
    private int receive() throws IOException {
        guest.receive(0, arrived);
        int numbered = 0;
        for (RxFrame f : arrived) {
            byte[] bytes = f.frame();
            if (!Frames.isNumbered(bytes)) {
                continue; // the host's own traffic on the TAP
            }
            long seq = Frames.sequence(bytes);
            if (seq != expectedSeq || bytes.length != frameSize) {
                throw new IllegalStateException(String.format("%s, %s: frame %d of %d bytes came back where frame %d "
                        + "of %d bytes was due", backend, format, seq, bytes.length, expectedSeq, frameSize));
            }
            expectedSeq++;
            numbered++;
        }
        arrived.clear();
        return numbered;
    }

    /** Stops and closes everything the set-up made, in reverse. */
    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        System.err.printf("%s, %s, %d bytes: %d frames back; %d waits for a used buffer, %d of them ended by "
                + "their %d ms deadline, %d of those with used buffers waiting (no notification)%n", backend, format,
                frameSize, framesBack, waits, waitsTimedOut, WAIT_MILLIS, timedOutWithUsedWaiting);
        if (reflector != null) {
            reflector.close();
        }
        if (device != null) {
            device.close();
        }
        if (datapath != null) {
            datapath.close();
        }
        if (testpmd != null) {
            testpmd.terminate(TESTPMD_STOP);
        }
        if (socketDirectory != null) {
            Files.deleteIfExists(socket);
            Files.deleteIfExists(socketDirectory);
        }
        if (tap != null) {
            tap.close();
        }
        memory.close();
    }
}

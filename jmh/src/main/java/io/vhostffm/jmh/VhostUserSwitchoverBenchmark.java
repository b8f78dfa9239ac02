package io.vhostffm.jmh;

import io.vhostffm.testkit.Testpmd;
import io.vhostffm.vhost.device.BackendListener;
import io.vhostffm.vhost.device.BackendStart;
import io.vhostffm.vhost.device.QueueBinding;
import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vhost.vhostuser.frontend.VhostUserFrontendBackend;
import io.vhostffm.vring.QueueGeometry;
import io.vhostffm.vring.QueuePosition;
import io.vhostffm.vring.QueueState;
import java.io.IOException;
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
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * The switchover with a vhost-user backend process: DPDK testpmd's net_vhost (started by the
 * fixture, {@code --no-huge}), our frontend ({@link VhostUserFrontendBackend}) on memfd guest
 * memory with {@link #pairs} split queue pairs of 256 entries. One operation is one switchover:
 * <ul>
 * <li>{@link #quickstart}: early migration's switchover on a connected, prestarted backend:
 *     per ring SET_VRING_BASE and SET_VRING_ENABLE(1), then SET_STATUS with DRIVER_OK, each
 *     acknowledged (REPLY_ACK) by testpmd.</li>
 * <li>{@link #classic}: from no connection: connect, GET_FEATURES, GET/SET_PROTOCOL_FEATURES,
 *     GET_QUEUE_NUM, SET_OWNER, SET_FEATURES, SET_STATUS, SET_MEM_TABLE (testpmd maps the memfd),
 *     per ring NUM, ADDR, KICK, CALL, ERR, then what quickstart sends.</li>
 * <li>{@link #bareMessages}: the protocol's floor under quickstart: the same requests, encoded
 *     before the operation into native memory, written straight on the socket of a
 *     {@link BareVhostUserFrontend} (no backend object, no observer, no watcher thread, no
 *     checks of the positions), each acknowledgement read and checked before the next request.</li>
 * </ul>
 * Set-up (prestart) and tear-down (stop: disable, SET_STATUS(0), GET_VRING_BASE per ring; for
 * classic also closing the connection) run outside the measured time ({@code Level.Invocation}),
 * their CPU time declared to {@link CpuTimeProfiler#excludeSetup}; the bare frontend's set-up and
 * tear-down send exactly the backend's prestart and stop requests, so testpmd is in the same state
 * around every operation of quickstart and bareMessages.
 * testpmd's forwarding core polls a core at 100% throughout, for both variants alike: compare the
 * two in the same run, not with other benchmarks. Needs {@code dpdk-testpmd} (bin/peer-bench
 * installs it).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(1)
public class VhostUserSwitchoverBenchmark {
    private static final Duration REPLY = Duration.ofSeconds(10);
    private static final Duration TESTPMD_START = Duration.ofSeconds(60);
    private static final Duration TESTPMD_STOP = Duration.ofSeconds(30);
    /** Longer than a trial: testpmd prints no port statistics during one. */
    private static final Duration TESTPMD_STATISTICS = Duration.ofHours(1);

    /** testpmd, the guest memory and the queues' eventfds, for one trial. */
    @State(Scope.Benchmark)
    public static class Peer {
        /** Queue pairs of the device (and of testpmd's port). */
        @Param({"1", "4", "16"})
        public int pairs;

        Testpmd testpmd;
        Path socketDirectory;
        Path socket;
        MemfdGuestMemory memory;
        final List<EventFd> eventFds = new ArrayList<>();
        BackendStart start;

        /**
         * Starts testpmd on a socket in a new temporary directory and waits until its port (and
         * the socket's listen) is started.
         */
        @Setup(Level.Trial)
        public void setUp() throws Exception {
            socketDirectory = Files.createTempDirectory("vhostffm-jmh-vu");
            socket = socketDirectory.resolve("vhost.sock");
            try {
                testpmd = Testpmd.start(socket, "jmh-vu", pairs, TESTPMD_STATISTICS, TESTPMD_START, null);
            } catch (IOException | RuntimeException e) {
                Files.deleteIfExists(socket); // made by testpmd if it got as far as its port
                Files.deleteIfExists(socketDirectory);
                throw e;
            }
            int queues = 2 * pairs;
            memory = MemfdGuestMemory.create("jmh-vhost-user", List.of(new MemfdGuestMemory.RegionSpec(0, 1 << 20)));
            List<QueueBinding> bindings = new ArrayList<>();
            for (int q = 0; q < queues; q++) {
                long base = q * 0x4000L;
                QueueState state = QueueState.fresh(QueueGeometry.split(256, base, base + 0x1000, base + 0x2000, false));
                EventFd kick = EventFd.create("jmh kick " + q);
                EventFd call = EventFd.create("jmh call " + q);
                eventFds.add(kick);
                eventFds.add(call);
                bindings.add(new QueueBinding(q, state, kick, call));
            }
            BackendListener listener = (queue, reason) -> {
                throw new IllegalStateException("backend reported: " + reason);
            };
            start = new BackendStart(memory, VirtioFeature.VERSION_1.mask(), bindings, pairs, 0, null, listener);
        }

        List<QueuePosition> positions() {
            return start.positions();
        }

        /**
         * Stops testpmd (SIGTERM, then SIGKILL), removes its socket and directory, and frees the
         * memory and eventfds.
         */
        @TearDown(Level.Trial)
        public void tearDown() throws Exception {
            testpmd.terminate(TESTPMD_STOP);
            Files.deleteIfExists(socket);
            Files.deleteIfExists(socketDirectory);
            eventFds.forEach(EventFd::close);
            memory.close();
        }
    }

    /**
     * A connection to testpmd made once per trial, prestarted before each operation and stopped
     * after it, outside the measured time, the CPU time of both declared to
     * {@link CpuTimeProfiler#excludeSetup}; the subclass says what the connection is.
     */
    @State(Scope.Thread)
    public abstract static class PrestartedConnection {
        @Setup(Level.Trial)
        public void connect(Peer peer) throws IOException {
            open(peer);
        }

        @Setup(Level.Invocation)
        public void prestart(Peer peer) throws IOException {
            long cpu = CpuTimeProfiler.currentThreadCpuNanos();
            try {
                prestartConnection(peer.start);
            } finally {
                CpuTimeProfiler.excludeSetup(CpuTimeProfiler.currentThreadCpuNanos() - cpu);
            }
        }

        @TearDown(Level.Invocation)
        public void stop() throws IOException {
            long cpu = CpuTimeProfiler.currentThreadCpuNanos();
            try {
                stopConnection();
            } finally {
                CpuTimeProfiler.excludeSetup(CpuTimeProfiler.currentThreadCpuNanos() - cpu);
            }
        }

        @TearDown(Level.Trial)
        public void close() {
            closeConnection();
        }

        /** Connects to {@code peer}'s testpmd. */
        abstract void open(Peer peer) throws IOException;

        abstract void prestartConnection(BackendStart start) throws IOException;

        abstract void stopConnection() throws IOException;

        abstract void closeConnection();
    }

    /** Our frontend's connection; prestarted before each operation, stopped after it. */
    @State(Scope.Thread)
    public static class Prestarted extends PrestartedConnection {
        VhostUserFrontendBackend backend;

        @Override
        void open(Peer peer) throws IOException {
            backend = VhostUserFrontendBackend.connect(peer.socket, REPLY, peer.pairs);
        }

        @Override
        void prestartConnection(BackendStart start) throws IOException {
            backend.prestart(start);
        }

        @Override
        void stopConnection() throws IOException {
            backend.stop();
        }

        @Override
        void closeConnection() {
            backend.close();
        }
    }

    /** No connection before the operation; the tear-down stops and closes what it made. */
    @State(Scope.Thread)
    public static class Unconnected {
        VhostUserFrontendBackend backend;

        @TearDown(Level.Invocation)
        public void stopAndClose() throws IOException {
            VhostUserFrontendBackend b = backend;
            backend = null;
            long cpu = CpuTimeProfiler.currentThreadCpuNanos();
            if (b != null) {
                try {
                    if (b.isPrestarted()) {
                        b.stop();
                    }
                } finally {
                    b.close();
                    CpuTimeProfiler.excludeSetup(CpuTimeProfiler.currentThreadCpuNanos() - cpu);
                }
            }
        }
    }

    /**
     * The floor: a bare frontend on its own connection (made once per trial), programmed before
     * each operation and stopped after it with exactly the backend's requests, so testpmd is in
     * the same state around each operation as for {@link #quickstart}.
     */
    @State(Scope.Thread)
    public static class Bare extends PrestartedConnection {
        BareVhostUserFrontend frontend;

        @Override
        void open(Peer peer) throws IOException {
            frontend = BareVhostUserFrontend.connect(peer.socket, REPLY, peer.pairs);
        }

        @Override
        void prestartConnection(BackendStart start) throws IOException {
            frontend.prestart(start);
        }

        @Override
        void stopConnection() throws IOException {
            frontend.stop();
        }

        @Override
        void closeConnection() {
            frontend.close();
        }
    }

    /** Early migration's switchover: the final positions into a prestarted backend, rings enabled, DRIVER_OK. */
    @Benchmark
    public VhostUserFrontendBackend quickstart(Peer peer, Prestarted state) throws IOException {
        state.backend.quickstart(peer.positions());
        return state.backend;
    }

    /**
     * The protocol's floor: quickstart's requests (per ring SET_VRING_BASE and SET_VRING_ENABLE(1),
     * then SET_STATUS with DRIVER_OK), encoded before, written straight on the socket, each
     * acknowledgement read and checked before the next request.
     */
    @Benchmark
    public BareVhostUserFrontend bareMessages(Bare state) throws IOException {
        state.frontend.quickstart();
        return state.frontend;
    }

    /** A classic start from nothing: connect, negotiate, program every ring, enable. */
    @Benchmark
    public VhostUserFrontendBackend classic(Peer peer, Unconnected state) throws IOException {
        VhostUserFrontendBackend b = VhostUserFrontendBackend.connect(peer.socket, REPLY, peer.pairs);
        state.backend = b; // the tear-down closes it even if start fails
        b.start(peer.start);
        return b;
    }
}

package io.vhostffm.programs.demo;

import io.vhostffm.migration.DeviceDowntime;
import io.vhostffm.migration.MigrationException;
import io.vhostffm.migration.net.MigrationDeadlines;
import io.vhostffm.migration.net.NetMigrationDestination;
import io.vhostffm.migration.net.UnixSocketChannel;
import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.testkit.FakeGuestState;
import io.vhostffm.testkit.GuestLayout;
import io.vhostffm.testkit.GuestTransport;
import io.vhostffm.testkit.NetworkSide;
import io.vhostffm.testkit.OpenDescriptors;
import io.vhostffm.testkit.QuickstartFloorTiming;
import io.vhostffm.testkit.StreamCheck;
import io.vhostffm.testkit.Testpmd;
import io.vhostffm.testkit.Traffic;
import io.vhostffm.vhost.device.NetDeviceRuntime;
import io.vhostffm.vhost.os.CompilerThreads;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.TapDevice;
import io.vhostffm.vhost.os.UnixSocket;
import io.vhostffm.vhost.os.UnixSocketListener;
import io.vhostffm.vhost.virtio.VirtioFeature;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.HdrHistogram.Histogram;

/**
 * The device-downtime benchmark: N two-process migrations of one device back and forth between
 * this process and a child JVM, with traffic between migrations and frames in flight at every
 * pause, each migration's {@link DeviceDowntime} recorded (both processes read one
 * CLOCK_MONOTONIC); p50 / p99 / max over all but the first, and the first (a fresh destination
 * process) on its own line. Every frame is checked at the end: exactly once, in order.
 *
 * <pre>
 * java ... DowntimeBench [--pairs N] [--migrations N] [--frames N] [--delta] [--packed]
 *     [--backend default|vhost-user] [--label L] [--out DIR]
 * </pre>
 *
 * <p>This process owns the TAP's network side and starts as the source; migration {@code i}
 * goes from this process to the child when {@code i} is even, back when odd; each migration
 * runs on a new connection to this process's socket. The source waits for the destination's
 * early load ({@link LocalMigration.Source#awaitEarlyLoad}) before it pauses the guest, as a
 * hypervisor's RAM precopy would give it time to. With {@code --delta} the guest adds a VLAN
 * just before each pause with precopy deltas off, so every stop-and-copy carries a delta.
 *
 * <p>On the kernel's vhost-net the baseline is measured in the same run: after the migrations,
 * the floor of a quickstart ({@code QuickstartFloor}: SET_VRING_BASE per virtqueue, TUNSETQUEUE
 * per pair, NET_SET_BACKEND per virtqueue) timed in this process on prestarted vhost-net devices
 * of the same shape ({@link QuickstartFloorTiming}), as many rounds as migrations; its p50 and p99
 * and the ratios downtime / floor and quickstart part / floor are printed and written beside the
 * downtime's.
 *
 * <p>With {@code --backend vhost-user} each process starts its own DPDK testpmd ({@link Testpmd}:
 * {@code net_vhost}, macswap) and the device's primary is our vhost-user frontend on it ({@link
 * Backends#vhostUser}; the TAP still moves, for the userspace fallback). The destination prestarts
 * against its testpmd while the guest runs at the source, and the switchover is the quickstart.
 * The guest's frames go out to testpmd and come back MAC-swapped ({@link EchoTraffic}): each comes
 * back once and in order, or is counted in a testpmd's own TX-dropped, read from both testpmds'
 * final statistics (the child sends its own at the end, with any descriptor it left open).
 */
public final class DowntimeBench {
    private static final Duration TRAFFIC_TIMEOUT = Duration.ofSeconds(60);
    /** Frames the guest transmits right before each pause, per pair: in flight at the stop. */
    private static final int IN_FLIGHT = 16;
    /** How long a testpmd may take to start forwarding, or to exit on SIGTERM. */
    private static final Duration TESTPMD = Duration.ofSeconds(60);
    /** How long a pipe left after a child process ended may take to be closed by the JDK itself. */
    static final Duration PIPE_SETTLE = Duration.ofSeconds(2);
    /** How long each reply of a backend process may take. */
    private static final Duration REPLY = Duration.ofSeconds(10);
    /** The child's testpmd's socket, next to the migration socket. */
    private static final String PEER_BACKEND_SOCKET = "peer-backend.sock";

    private DowntimeBench() {}

    /**
     * The settings of one configuration.
     *
     * @param packed whether the guest acknowledges packed rings
     * @param vhostUser whether each process's primary is its own testpmd through our vhost-user frontend
     */
    record Settings(int pairs, int migrations, int frames, boolean delta, String label, Path out, boolean packed,
            boolean vhostUser) {
        Settings(int pairs, int migrations, int frames, boolean delta, String label, Path out) {
            this(pairs, migrations, frames, delta, label, out, false, false);
        }
    }

    /**
     * One migration's downtime, as the source measured it with the destination's timeline.
     *
     * @param prestarted whether the destination's early load prestarted its primary
     * @param switchoverRequests the switchover's work on the destination's primary (vhost ioctls or
     *     vhost-user requests), in order
     * @param fineChanges the stop-and-copy's changes the destination applied without a full reload
     */
    public record Sample(int index, boolean toChild, long totalNanos, List<DeviceDowntime.Part> parts, String path,
            boolean prestarted, List<String> switchoverRequests, List<String> fineChanges) {}

    /** What the source tells the destination after a migration (the downtime is known at the source). */
    public record SampleMessage(long totalNanos, List<DeviceDowntime.Part> parts, String path, boolean prestarted,
            List<String> switchoverRequests, List<String> fineChanges) {}

    /**
     * The child's last word with a vhost-user backend: its testpmd's final counters, and the
     * descriptors it left open (sockets, TAPs, memfds, eventfds, pipes).
     */
    public record PeerEnd(long rxPackets, long txPackets, long txDropped, List<String> leaked) {}

    /**
     * The traffic the guest runs in the child after a migration.
     *
     * @param transmit frames more to transmit per pair
     * @param rxTotal per pair, the count of frames the network will have sent to the guest
     * @param timeoutMillis deadline
     */
    public record TrafficRound(int transmit, long[] rxTotal, long timeoutMillis) {}

    /** The child's word that the traffic after a migration is done. */
    public record TrafficDone(long transmitted) {}

    public static void main(String[] args) throws Exception {
        // Under --realtime (chrt -f) the JIT's compilations would hold processors ahead of the
        // migration; -Dvhostffm.downtime.compilersRealTime=true keeps them there, to compare.
        List<Integer> moved = Boolean.getBoolean("vhostffm.downtime.compilersRealTime") ? List.of()
                : CompilerThreads.moveToLowestRealTimePriority();
        if (!moved.isEmpty()) {
            System.out.println("real-time policy: " + moved.size() + " JIT compiler threads moved to real-time priority 1");
        }
        if (args.length >= 1 && args[0].equals("--peer")) {
            peer(Path.of(args[1]), Integer.parseInt(args[2]), Integer.parseInt(args[3]), Boolean.parseBoolean(args[4]),
                    Boolean.parseBoolean(args[5]));
            return;
        }
        int pairs = 1;
        int migrations = 100;
        int frames = 64;
        boolean delta = false;
        boolean packed = false;
        boolean vhostUser = false;
        boolean matrix = false;
        int fresh = 0;
        String label = null;
        Path out = Path.of("results", "downtime");
        Path summaryJson = null;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--pairs" -> pairs = Integer.parseInt(args[++i]);
                case "--migrations" -> migrations = Integer.parseInt(args[++i]);
                case "--frames" -> frames = Integer.parseInt(args[++i]);
                case "--delta" -> delta = true;
                case "--packed" -> packed = true;
                case "--backend" -> vhostUser = switch (args[++i]) {
                    case "vhost-user" -> true;
                    case "default" -> false;
                    default -> throw new IllegalArgumentException("--backend " + args[i] + ": default or vhost-user");
                };
                case "--matrix" -> matrix = true;
                case "--fresh" -> fresh = Integer.parseInt(args[++i]);
                case "--label" -> label = args[++i];
                case "--out" -> out = Path.of(args[++i]);
                // The VM bench's JMH mode appends "-rf json -rff FILE" and wants a non-empty JSON there.
                case "-rf" -> i++;
                case "-rff" -> summaryJson = Path.of(args[++i]);
                default -> {
                    System.err.println("usage: DowntimeBench [--pairs N | --matrix] [--migrations N] [--frames N] "
                            + "[--delta] [--packed] [--backend default|vhost-user] [--label L] [--out DIR] [--fresh N] "
                            + "[-rff SUMMARY.json]");
                    System.exit(2);
                }
            }
        }
        migrations += migrations % 2; // an even count brings the guest home for the final check
        List<Settings> configurations = new ArrayList<>();
        if (matrix) { // 1, 4, 16 pairs, without and with a delta
            for (int p : new int[] {1, 4, 16}) {
                for (boolean d : new boolean[] {false, true}) {
                    String l = defaultLabel(p, d, vhostUser, packed);
                    configurations.add(new Settings(p, migrations, frames, d, l, out, packed, vhostUser));
                }
            }
        } else {
            configurations.add(new Settings(pairs, migrations, frames, delta,
                    label != null ? label : defaultLabel(pairs, delta, vhostUser, packed), out, packed, vhostUser));
        }
        StringBuilder json = new StringBuilder("[");
        boolean ok = true;
        for (Settings s : configurations) {
            Result r = measure(s, System.out);
            ok &= r.samples().size() == s.migrations();
            if (fresh > 0) {
                FirstMigrations.report(s, FirstMigrations.measure(s, fresh), r.samples(), System.out);
            }
            json.append(json.length() > 1 ? ",\n" : "\n").append(Report.json(s, r.samples(), r.floorNanos()));
        }
        if (summaryJson != null) {
            Files.writeString(summaryJson, json.append("\n]\n"));
        }
        System.exit(ok ? 0 : 1);
    }

    /**
     * {@code kernel-4p-nodelta}: the datapath this host gives (or vhost-user), pairs, delta or not
     * ({@code -packed} appended for packed rings).
     */
    private static String defaultLabel(int pairs, boolean delta, boolean vhostUser, boolean packed) {
        String datapath = vhostUser ? "vhost-user" : Files.exists(Path.of("/dev/vhost-net")) ? "kernel" : "userspace";
        return datapath + "-" + pairs + "p-" + (delta ? "delta" : "nodelta") + (packed ? "-packed" : "");
    }

    /**
     * One configuration's figures.
     *
     * @param floorNanos on the kernel's vhost-net, the quickstart floor timed in this process after
     *     the migrations ({@link QuickstartFloorTiming}), one round per migration; otherwise null
     */
    record Result(List<Sample> samples, long[] floorNanos) {}

    /** Runs one configuration; returns the samples (also written under {@code out}). */
    static List<Sample> run(Settings s, PrintStream log) throws Exception {
        return measure(s, log).samples();
    }

    /**
     * Runs one configuration; returns the samples and, on the kernel's vhost-net, the quickstart
     * floor measured in the same run (all also written under {@code out}).
     */
    static Result measure(Settings s, PrintStream log) throws Exception {
        int pairs = s.pairs();
        Path dir = Files.createTempDirectory("vhostffm-downtime");
        Path socketPath = dir.resolve("migration.sock");
        Path childLog = dir.resolve("peer.log");
        Path backendSocket = dir.resolve("backend.sock");
        GuestLayout layout = DemoDevice.layout(pairs);
        List<Sample> samples = new ArrayList<>();
        Process child = null;
        Holder home = null;
        Testpmd testpmd = null;
        boolean kernel = false;
        try (UnixSocketListener listener = UnixSocketListener.bind(socketPath)) {
            Backends.Opener opener = Backends.DEFAULT;
            if (s.vhostUser()) {
                testpmd = Testpmd.start(backendSocket, "downtime-" + s.label(), pairs, TESTPMD, null);
                opener = Backends.vhostUser(backendSocket, REPLY);
            }
            MemfdGuestMemory memory = DemoDevice.memory(layout);
            TapDevice tap = TapDevice.create("vffmdt%d", pairs, TapDevice.VHOST_FLAGS);
            tap.setLinkUp(true);
            Backends backends = opener.open(tap);
            kernel = backends.kernel();
            NetDeviceRuntime device = new NetDeviceRuntime(DemoDevice.options(pairs, backends.offerAgainst()),
                    backends.offerAgainst(), memory,
                    backends.primary());
            home = new Holder(memory, tap, backends, device, null);
            try (NetworkSide wire = new NetworkSide(tap.name(), pairs, layout.spec().queueSize());
                    ExecutorService network = Executors.newSingleThreadExecutor(
                            r -> Thread.ofPlatform().daemon().name("network-side").unstarted(r))) {
                network.submit(() -> { }).get(); // its thread started before the first pause
                long wanted = s.packed() ? DemoDevice.FEATURES | VirtioFeature.RING_PACKED.mask() : DemoDevice.FEATURES;
                FakeGuest guest = FakeGuest.boot(GuestTransport.of(device), memory, layout, wanted);
                if (guest.packed() != s.packed()) {
                    throw new IllegalStateException("the device offered " + (s.packed() ? "no" : "") + " packed rings");
                }
                guest.postRxBuffers();
                if (pairs > 1 && guest.setQueuePairs(pairs) != 0) {
                    throw new IllegalStateException("VQ_PAIRS_SET " + pairs + " refused");
                }
                home.guest = guest;
                traffic(guest, s.vhostUser() ? null : wire, s.frames());
                log.println(s.label() + ": " + backends.description() + "; " + s.migrations()
                        + " migrations back and forth" + (s.packed() ? ", packed rings" : ""));
                child = MigrationDemo.spawnJava(List.of(DowntimeBench.class.getName(), "--peer", socketPath.toString(),
                        Integer.toString(pairs), Integer.toString(s.migrations()), Boolean.toString(s.delta()),
                        Boolean.toString(s.vhostUser())), childLog);
                // With a vhost-user backend testpmd is the network: nothing passes the TAP.
                NetworkSide tapWire = s.vhostUser() ? null : wire;
                for (int i = 0; i < s.migrations(); i++) {
                    try (UnixSocket socket = listener.accept()) {
                        if (i % 2 == 0) {
                            SampleMessage m = migrateAway(socket, home, i, s.delta(), tapWire, network);
                            home = null;
                            samples.add(new Sample(i, true, m.totalNanos(), m.parts(), m.path(), m.prestarted(),
                                    m.switchoverRequests(), m.fineChanges()));
                            // The guest runs in the child now: drive the network side while it runs its traffic.
                            UnixSocketChannel channel = new UnixSocketChannel(socket);
                            long[] rx = new long[pairs];
                            for (int p = 0; p < pairs; p++) {
                                rx[p] = wire.sentToGuest(p) + (tapWire == null ? 0 : s.frames());
                            }
                            Messages.send(channel, TrafficRound.class,
                                    new TrafficRound(s.frames(), rx, TRAFFIC_TIMEOUT.toMillis()));
                            for (int p = 0; p < pairs && tapWire != null; p++) {
                                wire.sendToGuest(p, s.frames());
                            }
                            TrafficDone done = Messages.receive(channel, TrafficDone.class);
                            if (tapWire != null) {
                                wire.receiveFromGuest(done.transmitted(), (int) TRAFFIC_TIMEOUT.toMillis());
                            }
                        } else {
                            home = migrateHere(socket, opener);
                            SampleMessage m = Messages.receive(home.destination.channel(), SampleMessage.class);
                            samples.add(new Sample(i, false, m.totalNanos(), m.parts(), m.path(), m.prestarted(),
                                    m.switchoverRequests(), m.fineChanges()));
                            traffic(home.guest, tapWire, s.frames());
                        }
                    }
                }
                List<String> problems;
                if (s.vhostUser()) {
                    problems = endWithBackendProcesses(home, testpmd, listener, log);
                    home = null;
                } else {
                    problems = check(home.guest, wire, pairs);
                }
                if (!problems.isEmpty()) {
                    throw new IllegalStateException("frames lost, duplicated or reordered: " + problems);
                }
            }
            if (!child.waitFor(60, TimeUnit.SECONDS) || child.exitValue() != 0) {
                throw new IllegalStateException("the peer process failed: " + Files.readString(childLog));
            }
            long[] floor = kernel ? quickstartFloor(layout, s.migrations()) : null;
            Report.write(s, samples, floor, log);
            return new Result(samples, floor);
        } catch (Exception | Error e) {
            if (child != null && child.isAlive()) {
                child.destroyForcibly();
            }
            String tail = Files.exists(childLog) ? Files.readString(childLog) : "";
            String backend = testpmd == null ? "" : testpmd.output();
            throw new IllegalStateException(s.label() + ": " + e + (tail.isEmpty() ? "" : "\npeer:\n" + tail)
                    + (backend.isEmpty() ? "" : "\ntestpmd:\n" + backend), e);
        } finally {
            if (home != null) {
                home.close();
            }
            if (testpmd != null) {
                testpmd.close();
            }
            if (child != null) {
                child.waitFor(60, TimeUnit.SECONDS); // its log is deleted below
            }
            Files.deleteIfExists(socketPath);
            Files.deleteIfExists(backendSocket);
            Files.deleteIfExists(dir.resolve(PEER_BACKEND_SOCKET)); // a child that failed left it
            Files.deleteIfExists(childLog);
            Files.deleteIfExists(dir);
        }
    }

    /**
     * The baseline of a kernel configuration, in the same run: the floor of a quickstart
     * ({@code QuickstartFloor}: SET_VRING_BASE per virtqueue, TUNSETQUEUE per pair,
     * NET_SET_BACKEND per virtqueue) on prestarted vhost-net devices shaped as the migrated one,
     * in this process, {@code rounds} times.
     */
    private static long[] quickstartFloor(GuestLayout layout, int rounds) throws IOException {
        try (QuickstartFloorTiming timing = QuickstartFloorTiming.open(layout, DemoDevice.FEATURES)) {
            return timing.time(rounds);
        }
    }

    /**
     * The end of a run with vhost-user backends, the guest home: its datapath stops for good, both
     * testpmds exit (the child's sends its counters on one more connection), and every frame is
     * accounted for against their counters. Closes {@code home}.
     *
     * @return problems, none when empty
     */
    private static List<String> endWithBackendProcesses(Holder home, Testpmd testpmd, UnixSocketListener listener,
            PrintStream log) throws Exception {
        FakeGuest guest = home.guest;
        List<String> problems = new ArrayList<>();
        try {
            home.device.stopDatapath(); // testpmd drops (and counts) what it holds now
            problems.addAll(EchoTraffic.drain(guest));
        } finally {
            home.close();
        }
        Testpmd.Counters here = testpmd.stop(TESTPMD);
        PeerEnd there;
        // The child stops its testpmd once its last migration left, as this one just did.
        try (UnixSocket socket = listener.accept(TESTPMD.plus(TESTPMD))) {
            UnixSocketChannel channel = new UnixSocketChannel(socket);
            channel.setReadTimeout(TESTPMD.plus(TESTPMD));
            there = Messages.receive(channel, PeerEnd.class);
        }
        if (!there.leaked().isEmpty()) {
            problems.add("the peer process left descriptors open: " + there.leaked());
        }
        Testpmd.Counters both = here.plus(
                new Testpmd.Counters(there.rxPackets(), there.txPackets(), there.txDropped()));
        problems.addAll(EchoTraffic.check(guest, both));
        log.printf(Locale.ROOT, "  frames: %d sent, %d back through testpmd (MAC-swapped), %d counted TX-dropped by "
                + "the testpmds (this process's %d, the peer's %d)%n", both.rxPackets(), both.txPackets(),
                both.txDropped(), here.txDropped(), there.txDropped());
        return problems;
    }

    /** The child: migration i arrives when i is even and leaves when odd. */
    private static void peer(Path socketPath, int pairs, int migrations, boolean delta, boolean vhostUser)
            throws Exception {
        Map<Integer, String> before = OpenDescriptors.snapshot();
        Path backendSocket = socketPath.resolveSibling(PEER_BACKEND_SOCKET);
        Testpmd testpmd = vhostUser ? Testpmd.start(backendSocket, "downtime-peer", pairs, TESTPMD, System.out) : null;
        Backends.Opener opener = vhostUser ? Backends.vhostUser(backendSocket, REPLY) : Backends.DEFAULT;
        Holder here = null;
        try {
            for (int i = 0; i < migrations; i++) {
                try (UnixSocket socket = UnixSocket.connect(socketPath)) {
                    if (i % 2 == 0) {
                        here = migrateHere(socket, opener);
                        Messages.receive(here.destination.channel(), SampleMessage.class);
                        TrafficRound round = Messages.receive(here.destination.channel(), TrafficRound.class);
                        long[] tx = new long[pairs];
                        long total = 0;
                        for (int p = 0; p < pairs; p++) {
                            tx[p] = here.guest.transmitted(p) + round.transmit();
                            total += tx[p];
                        }
                        Duration timeout = Duration.ofMillis(round.timeoutMillis());
                        if (vhostUser) {
                            EchoTraffic.roundTrip(here.guest, round.transmit(), timeout);
                        } else {
                            Traffic.run(here.guest, null, tx, round.rxTotal(), timeout);
                        }
                        Messages.send(here.destination.channel(), TrafficDone.class, new TrafficDone(total));
                    } else {
                        migrateAway(socket, here, i, delta, null, null);
                        here = null;
                    }
                }
            }
            if (testpmd != null) {
                Testpmd.Counters counted = testpmd.stop(TESTPMD);
                testpmd = null;
                Files.deleteIfExists(backendSocket);
                List<String> leaked = leaked(before);
                try (UnixSocket socket = UnixSocket.connect(socketPath)) {
                    Messages.send(new UnixSocketChannel(socket), PeerEnd.class,
                            new PeerEnd(counted.rxPackets(), counted.txPackets(), counted.txDropped(), leaked));
                }
            }
        } finally {
            if (here != null) {
                here.close();
            }
            if (testpmd != null) {
                testpmd.close();
            }
        }
    }

    /**
     * The descriptors open now and not in {@code before} that a run must have closed: sockets,
     * TAPs, memfds, eventfds, vhost-net, pipes (a testpmd's output). Other files (a jar the class
     * loader opened meanwhile) are the JVM's own. Pipes get {@link #PIPE_SETTLE} to be closed by
     * the JDK itself ({@link OpenDescriptors#openedAfterSettling}).
     */
    static List<String> leaked(Map<Integer, String> before) {
        return OpenDescriptors.openedAfterSettling(before, PIPE_SETTLE).stream()
                .filter(d -> d.kind() != OpenDescriptors.Kind.OTHER || d.target().startsWith("pipe:"))
                .map(d -> d.target().startsWith("pipe:")
                        ? d + " (also held by " + OpenDescriptors.holders(d.target()) + ")" : d.toString())
                .toList();
    }

    /**
     * Migrates the device held in {@code from} to the peer on {@code socket}; sends the peer the
     * downtime and returns it. {@code wire}, when this process has it, sends frames towards the
     * paused guest.
     */
    private static SampleMessage migrateAway(UnixSocket socket, Holder from, int index, boolean delta,
            NetworkSide wire, ExecutorService network) throws Exception {
        FakeGuest guest = from.guest;
        int pairs = guest.pairs();
        // A vhost-user primary stays with this process's backend process: the fallback's TAP moves.
        LocalMigration.Source source = new LocalMigration.Source(socket, from.device, from.memory,
                from.backends.endpoint(), guest);
        try {
            boolean prestarted = source.awaitEarlyLoad();
            if (delta) {
                source.migration().setPrecopyDeltas(false); // found and carried by the stop-and-copy
                guest.addVlan(1 + index % 4000);
            }
            for (int p = 0; p < pairs; p++) {
                guest.transmitNumbered(p, IN_FLIGHT);
            }
            // The network keeps sending towards the paused guest, on its own thread as a real
            // network would: the frames wait in the TAP for the destination, and the source's
            // stop does not wait for their system calls.
            AtomicReference<Future<?>> arrivals = new AtomicReference<>();
            source.pauseAndStopAndCopy(() -> {
                if (wire != null) {
                    arrivals.set(network.submit(() -> {
                        for (int p = 0; p < pairs; p++) {
                            wire.sendWithinWindow(p, IN_FLIGHT);
                        }
                        return null;
                    }));
                }
            });
            DestinationFigures figures = source.awaitDestination();
            if (arrivals.get() != null) {
                arrivals.get().get(TRAFFIC_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
            }
            DeviceDowntime d = source.migration().report().downtime();
            SampleMessage m = new SampleMessage(d.totalNanos(), d.parts(), figures.path(), prestarted,
                    figures.switchoverIoctls(), figures.fineChanges());
            Messages.send(source.channel(), SampleMessage.class, m);
            return m;
        } finally {
            source.close();
            from.close(); // the destination holds its own descriptors of the memory and the TAP
        }
    }

    /**
     * Receives the device from the peer on {@code socket}, its backends opened by {@code opener};
     * the guest resumes here.
     */
    private static Holder migrateHere(UnixSocket socket, Backends.Opener opener) throws Exception {
        LocalMigration.Destination destination = new LocalMigration.Destination(socket, null,
                MigrationDeadlines.defaults(), LocalMigration.FaultPoints.NONE, opener);
        try {
            destination.announceEarlyLoad();
            FakeGuest guest = destination.receive();
            return new Holder(destination, guest);
        } catch (IOException | MigrationException | RuntimeException e) {
            destination.close();
            throw e;
        }
    }

    /**
     * {@code frames} more each way per pair, with the network side in this process; with no
     * {@code wire} (a vhost-user backend), {@code frames} per pair out to the backend process and back.
     */
    private static void traffic(FakeGuest guest, NetworkSide wire, int frames) throws Exception {
        if (wire == null) {
            EchoTraffic.roundTrip(guest, frames, TRAFFIC_TIMEOUT);
            return;
        }
        int pairs = guest.pairs();
        long[] tx = new long[pairs];
        long[] rx = new long[pairs];
        for (int p = 0; p < pairs; p++) {
            tx[p] = guest.transmitted(p) + frames;
            rx[p] = wire.sentToGuest(p) + frames;
        }
        Traffic.run(guest, wire, tx, rx, TRAFFIC_TIMEOUT);
    }

    /** Every frame of every pair exactly once and in order, both ways. */
    private static List<String> check(FakeGuest guest, NetworkSide wire, int pairs) throws Exception {
        // The last frames towards the guest may still wait in the TAP: collect them.
        long[] tx = new long[pairs];
        long[] rx = new long[pairs];
        for (int p = 0; p < pairs; p++) {
            tx[p] = guest.transmitted(p);
            rx[p] = wire.sentToGuest(p);
        }
        Traffic.run(guest, wire, tx, rx, TRAFFIC_TIMEOUT);
        FakeGuestState state = guest.saveState();
        List<String> problems = new ArrayList<>();
        for (int p = 0; p < pairs; p++) {
            String a = StreamCheck.exactlyOnceInOrderPerQueue("pair " + p + " network -> guest",
                    state.received().get(p), rx[p]);
            String b = StreamCheck.exactlyOnceInOrder("pair " + p + " guest -> network", wire.fromGuest(p), tx[p]);
            if (a != null) {
                problems.add(a);
            }
            if (b != null) {
                problems.add(b);
            }
        }
        return problems;
    }

    /** What one process holds of the device between migrations. */
    private static final class Holder implements AutoCloseable {
        final MemfdGuestMemory memory;
        final TapDevice tap;
        final Backends backends;
        final NetDeviceRuntime device;
        final LocalMigration.Destination destination;
        FakeGuest guest;

        Holder(MemfdGuestMemory memory, TapDevice tap, Backends backends, NetDeviceRuntime device,
                FakeGuest guest) {
            this.memory = memory;
            this.tap = tap;
            this.backends = backends;
            this.device = device;
            this.destination = null;
            this.guest = guest;
        }

        Holder(LocalMigration.Destination destination, FakeGuest guest) {
            this.memory = destination.memory();
            this.tap = destination.tap();
            this.backends = destination.backends();
            this.device = destination.device();
            this.destination = destination;
            this.guest = guest;
        }

        @Override
        public void close() {
            if (destination != null) {
                destination.close();
                return;
            }
            device.close();
            backends.close();
            tap.close();
            memory.close();
        }
    }

    /** The percentiles, the first migration, the files under {@code out}. */
    static final class Report {
        private Report() {}

        /**
         * Writes the figures; {@code floor}, when not null, is the same run's quickstart floor
         * (one round per migration): its percentiles and the ratios go beside the downtime's.
         */
        static void write(Settings s, List<Sample> samples, long[] floor, PrintStream log) throws IOException {
            Histogram all = new Histogram(3_600_000_000_000L, 3);
            StringBuilder csv = new StringBuilder("index,direction,path,total_ns");
            for (DeviceDowntime.Part p : samples.get(0).parts()) {
                csv.append(',').append(p.name().replaceAll("[^A-Za-z0-9]+", "_")).append("_ns");
            }
            if (floor != null) {
                csv.append(",bare_ioctls_ns"); // round i of the floor, not a part of migration i
            }
            csv.append('\n');
            for (Sample x : samples) {
                if (x.index() > 0) {
                    all.recordValue(Math.max(0, x.totalNanos()));
                }
                csv.append(x.index()).append(',').append(x.toChild() ? "to-child" : "to-parent").append(',')
                        .append(x.path()).append(',').append(x.totalNanos());
                for (DeviceDowntime.Part p : x.parts()) {
                    csv.append(',').append(p.nanos());
                }
                if (floor != null) {
                    csv.append(',').append(x.index() < floor.length ? floor[x.index()] : -1);
                }
                csv.append('\n');
            }
            Sample first = samples.get(0);
            String summary = String.format(Locale.ROOT,
                    "%-28s n=%d  p50 %8.3f ms  p99 %8.3f ms  max %8.3f ms%n%-28s first migration (fresh destination process) %8.3f ms (%.1fx p50)%n",
                    s.label(), all.getTotalCount(), ms(all.getValueAtPercentile(50)), ms(all.getValueAtPercentile(99)),
                    ms(all.getMaxValue()), "", ms(first.totalNanos()),
                    first.totalNanos() / (double) Math.max(1, all.getValueAtPercentile(50)));
            log.print(summary);
            log.println(partsLine("  median parts", samples));
            FloorFigures bare = floor == null ? null : FloorFigures.of(samples, floor);
            if (bare != null) {
                log.println(bare.line());
            }
            Files.createDirectories(s.out());
            Files.writeString(s.out().resolve(s.label() + ".csv"), csv);
            Files.writeString(s.out().resolve(s.label() + ".summary"), String.format(Locale.ROOT,
                    "label=%s%nmigrations=%d%np50_ns=%d%np90_ns=%d%np99_ns=%d%nmax_ns=%d%nfirst_ns=%d%n", s.label(),
                    all.getTotalCount(), all.getValueAtPercentile(50), all.getValueAtPercentile(90),
                    all.getValueAtPercentile(99), all.getMaxValue(), first.totalNanos())
                    + (bare == null ? "" : bare.summaryLines()));
            try (PrintStream h = new PrintStream(s.out().resolve(s.label() + ".hgrm").toFile())) {
                all.outputPercentileDistribution(h, 1000.0); // microseconds
            }
        }

        /** One configuration's figures as a JSON object; {@code floor} as for {@link #write}. */
        static String json(Settings s, List<Sample> samples, long[] floor) {
            Histogram all = new Histogram(3_600_000_000_000L, 3);
            for (Sample x : samples) {
                if (x.index() > 0) {
                    all.recordValue(Math.max(0, x.totalNanos()));
                }
            }
            StringBuilder parts = new StringBuilder();
            int n = samples.get(0).parts().size();
            for (int k = 0; k < n; k++) {
                Histogram h = new Histogram(3_600_000_000_000L, 3);
                for (Sample x : samples) {
                    if (x.index() > 0 && x.parts().size() == n) {
                        h.recordValue(Math.max(0, x.parts().get(k).nanos()));
                    }
                }
                parts.append(k == 0 ? "" : ", ").append(String.format(Locale.ROOT, "\"%s\": %d",
                        samples.get(0).parts().get(k).name(), h.getValueAtPercentile(50)));
            }
            return String.format(Locale.ROOT, "  {\"label\": \"%s\", \"pairs\": %d, \"delta\": %b, \"migrations\": %d, "
                    + "\"p50_ns\": %d, \"p99_ns\": %d, \"max_ns\": %d, \"first_ns\": %d, \"median_parts_ns\": {%s}%s}",
                    s.label(), s.pairs(), s.delta(), samples.size(), all.getValueAtPercentile(50),
                    all.getValueAtPercentile(99), all.getMaxValue(), samples.get(0).totalNanos(), parts,
                    floor == null ? "" : ", " + FloorFigures.of(samples, floor).jsonFields());
        }

        /**
         * The same run's quickstart floor beside the downtime, each over all but the first
         * migration (and all but the floor's first round): p50 and p99 of the floor, of the
         * downtime and of the destination's quickstart part (migrations without one left out),
         * and the ratios downtime / floor and quickstart part / floor at each percentile.
         */
        record FloorFigures(long n, long p50, long p99, long downtimeP50, long downtimeP99, long quickstartP50,
                long quickstartP99) {
            static FloorFigures of(List<Sample> samples, long[] floor) {
                Histogram bare = new Histogram(3_600_000_000_000L, 3);
                for (int i = 1; i < floor.length; i++) {
                    bare.recordValue(Math.max(0, floor[i]));
                }
                Histogram downtime = new Histogram(3_600_000_000_000L, 3);
                Histogram quickstart = new Histogram(3_600_000_000_000L, 3);
                for (Sample x : samples) {
                    if (x.index() == 0) {
                        continue;
                    }
                    downtime.recordValue(Math.max(0, x.totalNanos()));
                    for (DeviceDowntime.Part p : x.parts()) {
                        if (p.name().equals(NetMigrationDestination.STEP_QUICKSTART)) {
                            quickstart.recordValue(Math.max(0, p.nanos()));
                        }
                    }
                }
                return new FloorFigures(bare.getTotalCount(), bare.getValueAtPercentile(50),
                        bare.getValueAtPercentile(99), downtime.getValueAtPercentile(50),
                        downtime.getValueAtPercentile(99), quickstart.getValueAtPercentile(50),
                        quickstart.getValueAtPercentile(99));
            }

            private static double ratio(long a, long b) {
                return a / (double) Math.max(1, b);
            }

            /** The printed line. */
            String line() {
                return String.format(Locale.ROOT, "  bare ioctls (quickstart floor, same run, n=%d): p50 %.3f ms  p99 %.3f ms;"
                        + " downtime / bare: p50 %.1fx  p99 %.1fx; quickstart part / bare: p50 %.1fx  p99 %.1fx",
                        n, ms(p50), ms(p99), ratio(downtimeP50, p50), ratio(downtimeP99, p99),
                        ratio(quickstartP50, p50), ratio(quickstartP99, p99));
            }

            /** Lines of the summary file. */
            String summaryLines() {
                return String.format(Locale.ROOT, "bare_rounds=%d%nbare_p50_ns=%d%nbare_p99_ns=%d%nquickstart_p50_ns=%d%n"
                        + "quickstart_p99_ns=%d%ndowntime_over_bare_p50=%.2f%ndowntime_over_bare_p99=%.2f%n"
                        + "quickstart_over_bare_p50=%.2f%nquickstart_over_bare_p99=%.2f%n", n, p50, p99,
                        quickstartP50, quickstartP99, ratio(downtimeP50, p50), ratio(downtimeP99, p99),
                        ratio(quickstartP50, p50), ratio(quickstartP99, p99));
            }

            /** Fields of the JSON object. */
            String jsonFields() {
                return String.format(Locale.ROOT, "\"bare_p50_ns\": %d, \"bare_p99_ns\": %d, \"quickstart_p50_ns\": %d, "
                        + "\"quickstart_p99_ns\": %d, \"downtime_over_bare_p50\": %.2f, \"downtime_over_bare_p99\": %.2f, "
                        + "\"quickstart_over_bare_p50\": %.2f, \"quickstart_over_bare_p99\": %.2f", p50, p99,
                        quickstartP50, quickstartP99, ratio(downtimeP50, p50), ratio(downtimeP99, p99),
                        ratio(quickstartP50, p50), ratio(quickstartP99, p99));
            }
        }

        /** The median of each part over all but the first migration. */
        private static String partsLine(String title, List<Sample> samples) {
            StringBuilder sb = new StringBuilder(title).append(':');
            int n = samples.get(0).parts().size();
            for (int k = 0; k < n; k++) {
                Histogram h = new Histogram(3_600_000_000_000L, 3);
                for (Sample x : samples) {
                    if (x.index() > 0 && x.parts().size() == n) {
                        h.recordValue(Math.max(0, x.parts().get(k).nanos()));
                    }
                }
                sb.append(String.format(Locale.ROOT, " %s %.3f ms;", samples.get(0).parts().get(k).name(),
                        ms(h.getValueAtPercentile(50))));
            }
            return sb.toString();
        }

        private static double ms(long nanos) {
            return nanos / 1e6;
        }
    }
}

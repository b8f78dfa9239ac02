package io.vhostffm.programs.demo;

import io.vhostffm.migration.MigrationException;
import io.vhostffm.migration.MigrationPeerException;
import io.vhostffm.migration.MigrationPhase;
import io.vhostffm.migration.net.MigrationDeadlines;
import io.vhostffm.testkit.OpenDescriptors;
import java.io.UncheckedIOException;
import io.vhostffm.migration.MigrationReport;
import io.vhostffm.testkit.Traffic;
import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.testkit.FakeGuestState;
import io.vhostffm.testkit.GuestLayout;
import io.vhostffm.testkit.GuestTransport;
import io.vhostffm.testkit.NetworkSide;
import io.vhostffm.testkit.StreamCheck;
import io.vhostffm.vhost.device.NetDeviceRuntime;
import io.vhostffm.vhost.os.CompilerThreads;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.TapDevice;
import io.vhostffm.vhost.os.UnixSocket;
import io.vhostffm.vhost.os.UnixSocketListener;
import java.io.File;
import jdk.jfr.Configuration;
import jdk.jfr.Recording;
import java.io.IOException;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;

/**
 * {@code bin/demo}: a real early live migration of a virtio-net device between two processes on
 * this host. This process is the source: a device on a fresh TAP (kernel vhost-net when
 * {@code /dev/vhost-net} opens, else the userspace datapath), a fake guest exchanging numbered
 * frames with the network side of the TAP. A child JVM is the destination: it receives the guest
 * memory memfds and the TAP's fds over a UNIX socket (SCM_RIGHTS), loads the device state early
 * and prestarts its datapath while the guest still runs here; at stop-and-copy the guest pauses,
 * only the final ring indices go over (or the changed sections), the destination quickstarts,
 * the guest resumes there, and traffic goes on. Every frame is checked: exactly once, in order.
 *
 * <pre>
 * bin/demo [--pairs N] [--frames N] [--delta]
 * </pre>
 */
public final class MigrationDemo {
    private MigrationDemo() {}

    /**
     * The demo's settings.
     *
     * @param pairs queue pairs
     * @param frames frames per direction and pair before and after the migration
     * @param precopyDelta whether the guest changes the device (promiscuous mode off) during precopy
     * @param switchoverDelta whether the guest changes it (a VLAN) right before it pauses, so the
     *     stop-and-copy carries a delta
     * @param copyRam as between two hosts: guest memory is not shared but copied by dirty-log
     *     RAM precopy on a second connection
     */
    public record Settings(int pairs, int frames, boolean precopyDelta, boolean switchoverDelta, boolean copyRam) {}

    /**
     * What happened.
     *
     * @param datapath the source's datapath, in words
     * @param report the source's report with the destination's figures
     * @param destination the destination's own figures
     * @param framesToGuest frames the network sent to the guest, all pairs
     * @param framesFromGuest frames the guest sent, all pairs
     * @param framesBefore frames exchanged before the migration (both directions)
     * @param framesAfter frames exchanged after the stop-and-copy (both directions, downtime included)
     * @param problems what was lost, duplicated or reordered; empty when nothing
     */
    public record Result(String datapath, MigrationReport report, DestinationFigures destination, long framesToGuest,
            long framesFromGuest, long framesBefore, long framesAfter, List<String> problems) {
        public boolean ok() {
            return problems.isEmpty();
        }
    }

    /**
     * A fault test's plan (see {@code MigrationFaultTest}).
     *
     * @param deadlines every wait of both processes
     * @param destinationFault {@code PHASE:ACTION} for the destination child (env {@value #FAULT_ENV}):
     *     at PHASE ({@link MigrationPhase} name, or {@code ram-precopy}) it kills itself (SIGKILL),
     *     stops itself (SIGSTOP) or cuts its connections (shutdown); null for none
     * @param sourceCut the phase at which this process, the source, cuts its connections; null for none
     * @param childLog where the child's output goes (kept; the caller reads it)
     */
    public record FaultPlan(MigrationDeadlines deadlines, String destinationFault, MigrationPhase sourceCut, Path childLog) {}

    /**
     * How a migration under a fault ended, as the source saw it.
     *
     * @param failure the source's exception, or null when the migration completed
     * @param guestAtSource whether the guest went on here
     * @param result the frame check: the migration's when it completed, the resumed guest's when
     *     it stayed here, null when the guest left
     * @param child the destination process (maybe still running, or stopped)
     */
    public record FaultOutcome(MigrationException failure, boolean guestAtSource, Result result, Process child) {}

    /** How long a traffic phase may take at least; {@link #trafficTimeout} adds time for large runs. */
    private static final long TRAFFIC_MILLIS = 60_000;
    /** Frames a traffic phase is given a second for, beyond {@link #TRAFFIC_MILLIS}: a loaded 2-core host moves more. */
    private static final long FRAMES_PER_SECOND = 5_000;
    /**
     * How long the destination's guest waits for a transmit credit once its credit is used up, and
     * how long the source's network side waits for anything to move.
     */
    private static final long CREDIT_TIMEOUT_MILLIS = 20_000;

    /** The environment variable a fault test sets for the destination child: {@code PHASE:kill|stop|cut}. */
    public static final String FAULT_ENV = "VHOSTFFM_DEMO_FAULT";

    public static void main(String[] args) throws Exception {
        // Run under chrt -f, the JIT's compilations would hold processors ahead of the migration.
        CompilerThreads.moveToLowestRealTimePriority();
        if (args.length >= 2 && args[0].equals("--destination")) {
            boolean copyRam = false;
            boolean announce = false;
            MigrationDeadlines deadlines = MigrationDeadlines.defaults();
            for (int i = 2; i < args.length; i++) {
                if (args[i].equals("--copy-ram")) {
                    copyRam = true;
                } else if (args[i].equals("--announce-early-load")) {
                    announce = true;
                } else if (args[i].equals("--deadline-ms")) {
                    deadlines = MigrationDeadlines.uniform(Duration.ofMillis(Long.parseLong(args[++i])));
                }
            }
            System.exit(destination(Path.of(args[1]), copyRam, deadlines, System.getenv(FAULT_ENV), announce));
            return;
        }
        if (args.length >= 2 && args[0].equals("--source")) {
            System.exit(sourceChild(args));
            return;
        }
        int pairs = 1;
        int frames = 2000;
        boolean delta = false;
        boolean copyRam = false;
        Path jfr = null;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--pairs" -> pairs = Integer.parseInt(args[++i]);
                case "--frames" -> frames = Integer.parseInt(args[++i]);
                case "--delta" -> delta = true;
                case "--copy-ram" -> copyRam = true;
                case "--jfr" -> jfr = Path.of(args[++i]).toAbsolutePath();
                default -> {
                    System.err.println("usage: bin/demo [--pairs N] [--frames N] [--delta] [--copy-ram] [--jfr FILE]");
                    System.exit(2);
                }
            }
        }
        Result r;
        if (jfr == null) {
            r = run(new Settings(pairs, frames, delta, delta, copyRam), System.out);
        } else {
            r = runRecorded(new Settings(pairs, frames, delta, delta, copyRam), jfr);
        }
        System.exit(r.ok() ? 0 : 1);
    }

    /**
     * The demo with a JDK Flight Recorder recording in both processes (the library's events:
     * migration phases, switchover steps, stream frames, ioctls; and the JDK's default ones),
     * written as one file: the source's chunk then the destination's (a recording file is a
     * sequence of chunks, so the two concatenate).
     */
    private static Result runRecorded(Settings s, Path file) throws Exception {
        Path destinationFile = Path.of(file + ".destination");
        Path sourceFile = Path.of(file + ".source");
        String flags = System.getProperty("vhostffm.child.jvmflags", "");
        // Class loading too: the destination's loads inside the switchover window show what is still cold.
        System.setProperty("vhostffm.child.jvmflags", flags + " -XX:StartFlightRecording:settings=default,"
                + "jdk.ClassLoad#enabled=true,filename=" + destinationFile);
        Result r;
        try (Recording recording = new Recording(Configuration.getConfiguration("default"))) {
            recording.start();
            r = run(s, System.out);
            recording.dump(sourceFile);
        }
        try (var out = Files.newOutputStream(file)) {
            Files.copy(sourceFile, out);
            Files.copy(destinationFile, out);
        }
        Files.delete(sourceFile);
        Files.delete(destinationFile);
        System.out.println("recording: " + file + " (both processes; open it in JDK Mission Control or `jfr print --events "
                + "'io.vhostffm.*' " + file + "`)");
        return r;
    }

    /** Runs the whole demo, printing as it goes; the destination is a child JVM. */
    public static Result run(Settings s, PrintStream out) throws Exception {
        FaultOutcome o = runWithFaults(s, out, null);
        if (o.failure() != null) {
            throw o.failure();
        }
        return o.result();
    }

    /**
     * The demo under a fault plan (null: none, default deadlines): a failure of the destination or
     * the connection does not escape; it is the outcome. Before the acknowledgement the guest goes
     * on here (frames checked); after it the guest belongs to the destination.
     */
    public static FaultOutcome runWithFaults(Settings s, PrintStream out, FaultPlan plan) throws Exception {
        return runSource(s, out, plan, null, null);
    }

    /**
     * The source's side of the demo. With {@code connectTo} null it spawns the destination child
     * and accepts its connection; else it connects to the destination listening at
     * {@code connectTo} (this process is then the child: {@code --source}), and {@code selfFault}
     * ({@code PHASE:kill|stop|cut}, or null) makes it fail at a phase.
     */
    private static FaultOutcome runSource(Settings s, PrintStream out, FaultPlan plan, Path connectTo, String selfFault)
            throws Exception {
        int pairs = s.pairs();
        MigrationDeadlines deadlines = plan == null ? MigrationDeadlines.defaults() : plan.deadlines();
        Path dir = Files.createTempDirectory("vhostffm-demo");
        Path socketPath = dir.resolve("migration.sock");
        Path childLog = plan == null ? dir.resolve("destination.log") : plan.childLog();
        GuestLayout layout = DemoDevice.layout(pairs);
        try (MemfdGuestMemory memory = DemoDevice.memory(layout);
                TapDevice tap = upTap(pairs);
                Backends backends = Backends.open(tap);
                NetworkSide wire = new NetworkSide(tap.name(), pairs, toGuestWindow(layout))) {
            out.println("source: TAP " + tap.name() + ", " + pairs + " queue pair(s)");
            out.println("source: datapath: " + backends.description());
            try (NetDeviceRuntime device = new NetDeviceRuntime(DemoDevice.options(pairs, backends.offerAgainst()),
                    backends.offerAgainst(), memory,
                    backends.primary())) {
                FakeGuest guest = FakeGuest.boot(GuestTransport.of(device), memory, layout, DemoDevice.FEATURES);
                guest.postRxBuffers();
                if (pairs > 1 && guest.setQueuePairs(pairs) != 0) { // a driver starts with one pair active
                    throw new IllegalStateException("VQ_PAIRS_SET " + pairs + " refused");
                }
                long[] tx1 = filled(pairs, s.frames());
                Traffic.run(guest, wire, tx1, filled(pairs, s.frames()), trafficTimeout(s));
                long before = 2L * pairs * s.frames();
                out.println("source: traffic before the migration: " + before + " frames (" + s.frames()
                        + " each way per pair), the guest runs here");

                Process child = null;
                UnixSocket socket;
                UnixSocket ramSocket = null;
                List<UnixSocket> sockets = new ArrayList<>(); // what a fault cuts
                LocalMigration.FaultPoints selfFaults = faultPoints("source", selfFault, sockets);
                if (connectTo != null) {
                    selfFaults.reached(MigrationPhase.CONNECT.name());
                    try {
                        socket = UnixSocket.connect(connectTo);
                        try {
                            ramSocket = s.copyRam() ? UnixSocket.connect(connectTo) : null;
                        } catch (IOException e) {
                            socket.close();
                            throw e;
                        }
                    } catch (IOException e) {
                        // the destination gave up (or never listened): nothing was sent, the guest goes on here
                        MigrationPeerException failure = MigrationPeerException.of(MigrationPhase.CONNECT,
                                "the destination (" + connectTo + ")", e);
                        out.println("source: " + failure.getMessage() + "; the guest goes on here");
                        return new FaultOutcome(failure, true, goOnHere(s, out, guest, wire, backends, null), null);
                    }
                } else try (UnixSocketListener listener = UnixSocketListener.bind(socketPath)) {
                    child = spawnDestination(socketPath, childLog, s.copyRam(), plan);
                    try {
                        socket = listener.accept(deadlines.connect());
                        if (s.copyRam()) {
                            ramSocket = listener.accept(deadlines.connect());
                        }
                    } catch (IOException e) {
                        // the destination died or stalled before connecting: nothing left here, the guest goes on
                        MigrationPeerException failure = MigrationPeerException.of(MigrationPhase.CONNECT,
                                "the destination (process " + child.pid() + ")", e);
                        out.println("source: " + failure.getMessage() + "; the guest goes on here");
                        if (ramSocket != null) {
                            ramSocket.close();
                        }
                        return new FaultOutcome(failure, true, goOnHere(s, out, guest, wire, backends, null), child);
                    }
                }
                try (socket; UnixSocket ram = ramSocket) {
                    sockets.add(socket);
                    if (ram != null) {
                        sockets.add(ram);
                    }
                    LocalMigration.FaultPoints sourceFaults = plan == null || plan.sourceCut() == null
                            ? selfFaults
                            : point -> {
                                if (point.equals(plan.sourceCut().name())) {
                                    out.println("source: fault point " + point + ": cutting the connection");
                                    cut(socket);
                                    cut(ram);
                                }
                            };
                    LocalMigration.Source source;
                    try {
                        source = new LocalMigration.Source(socket, ram, device, memory, backends.primary(), guest,
                                UnaryOperator.identity(), deadlines, sourceFaults);
                    } catch (MigrationException e) {
                        out.println("source: " + e.getMessage() + "; the guest goes on here");
                        return new FaultOutcome(e, true, goOnHere(s, out, guest, wire, backends, null), child);
                    }
                    DestinationFigures figures;
                    try {
                    if (ram == null) {
                        out.println("source: memfds and TAP fds sent with SCM_RIGHTS; setup state sent; precopy");
                    } else {
                        Traffic.run(guest, wire, plus(guest, pairs, s.frames() / 4), plusWire(wire, pairs, s.frames() / 4),
                                trafficTimeout(s)); // the guest and the datapath dirty pages meanwhile
                        long last = source.ramPrecopy(5, 16);
                        before = 0;
                        for (int p = 0; p < pairs; p++) {
                            before += guest.transmitted(p) + wire.sentToGuest(p);
                        }
                        out.println("source: TAP fds sent with SCM_RIGHTS; guest RAM copied (round 0 and dirty rounds: "
                                + source.ram().pagesSent() + " pages, " + source.ram().rounds() + " rounds, last " + last
                                + " pages); setup state sent; precopy");
                    }
                    if (s.precopyDelta()) {
                        guest.setPromiscuous(false); // a control command while the guest runs (promiscuous after reset): a precopy delta
                        source.migration().drainPrecopy();
                        sourceFaults.reached(PRECOPY_DELTA_SENT);
                    }
                    if (s.switchoverDelta()) {
                        // Changed with precopy deltas off (as the QEMU RFC does): the stop-and-copy finds and carries it.
                        source.migration().setPrecopyDeltas(false);
                        guest.addVlan(42);
                    }
                    if (plan == null) {
                        // As a hypervisor's RAM precopy would: the guest pauses once the destination
                        // is prestarted (the fault runs leave this out: their phases stay as planned).
                        source.awaitEarlyLoad();
                    }
                    // Frames in flight at the pause: made available, not yet taken or not yet used.
                    for (int p = 0; p < pairs; p++) {
                        guest.transmitNumbered(p, 32);
                    }
                    // The network does not stop: the TAP queues these while the datapath is stopped, as
                    // many as the window allows (nothing takes them before the destination starts).
                    int downtimeFrames = Math.max(1, Math.min(64, wire.window() / pairs));
                    List<Integer> sent = source.pauseAndStopAndCopy(() -> {
                        try {
                            for (int p = 0; p < pairs; p++) {
                                wire.sendWithinWindow(p, downtimeFrames);
                            }
                        } catch (Exception e) {
                            throw new IllegalStateException(e);
                        }
                    });
                    if (source.ram() != null) {
                        out.println("source: final RAM pass at stop-and-copy: " + source.ramFinalPassNanos() + " ns; "
                                + source.ram().pagesSent() + " pages in all, " + source.ram().bytesSent() + " bytes");
                    }
                    out.println("source: guest paused; stop-and-copy sent " + (sent.isEmpty()
                            ? "only the final queue indices (no delta)" : "sections " + sent + " and the indices"));
                    try {
                        figures = source.awaitDestination();
                    } finally {
                        source.close();
                    }
                    } catch (MigrationException e) {
                        source.close();
                        boolean here = !(e instanceof MigrationPeerException p) || p.guestStaysAtSource();
                        if (!here) {
                            out.println("source: " + e.getMessage() + "; the guest belongs to the destination, "
                                    + "never run here again");
                            return new FaultOutcome(e, false, null, child);
                        }
                        out.println("source: " + e.getMessage() + "; the datapath restarted where it stopped, "
                                + "the guest goes on here");
                        return new FaultOutcome(e, true, goOnHere(s, out, guest, wire, backends,
                                source.migration().report()), child);
                    }
                    // After the acknowledgement: a fault here leaves the guest with the destination.
                    sourceFaults.reached(ACKNOWLEDGED);
                    if (connectTo != null || plan != null) {
                        try {
                            return completed(s, out, source, guest, wire, backends, figures, before, child, childLog);
                        } catch (IOException | RuntimeException e) {
                            // The guest runs at the destination; the demo's traffic after the migration failed.
                            MigrationPeerException failure = MigrationPeerException.of(MigrationPhase.COMPLETION,
                                    "the destination (" + socket.fd().description() + ")", e);
                            out.println("source: after the migration: " + failure.getMessage()
                                    + "; the guest belongs to the destination, never run here again");
                            return new FaultOutcome(failure, false, null, child);
                        }
                    }
                    return completed(s, out, source, guest, wire, backends, figures, before, child, childLog);
                }
            }
        } finally {
            Files.deleteIfExists(socketPath);
            if (plan == null) {
                Files.deleteIfExists(childLog);
            }
            Files.deleteIfExists(dir);
        }
    }

    /**
     * The fault point after the source sent its precopy delta (the destination may be applying it),
     * still in precopy: not a {@link MigrationPhase} of its own.
     */
    public static final String PRECOPY_DELTA_SENT = "PRECOPY_DELTA_SENT";

    /**
     * The fault point after the source read the destination's acknowledgement (the migration is
     * over; the demo's traffic follows): not a {@link MigrationPhase}, the guest has left.
     */
    public static final String ACKNOWLEDGED = "ACKNOWLEDGED";

    /** The migration completed: the guest runs at the destination, the network side here drives and checks it. */
    private static FaultOutcome completed(Settings s, PrintStream out, LocalMigration.Source source, FakeGuest guest,
            NetworkSide wire, Backends backends, DestinationFigures figures, long before, Process child, Path childLog)
            throws Exception {
        int pairs = s.pairs();
        out.println("destination: switchover path " + figures.path() + ", datapath " + figures.datapath()
                + (figures.fallbackReason().isEmpty() ? "" : " (fallback: " + figures.fallbackReason() + ")"));
        if (!figures.switchoverIoctls().isEmpty()) {
            out.println("destination: switchover vhost ioctls: " + figures.switchoverIoctls());
        }
        // The guest runs on the destination now; the network side stays here.
        long[] txTotal = new long[pairs];
        long[] rxTotal = new long[pairs];
        for (int p = 0; p < pairs; p++) {
            txTotal[p] = guest.transmitted(p) + s.frames();
            rxTotal[p] = wire.sentToGuest(p) + s.frames();
        }
        long wanted = 0;
        for (long t : txTotal) {
            wanted += t;
        }
        // The guest's transmit there is paced by credits from the network side here.
        TransmitCredits.Grantor credits = new TransmitCredits.Grantor(wire, source.channel(),
                NetworkSide.FROM_GUEST_WINDOW, wanted);
        Messages.send(source.channel(), TrafficPlan.class, new TrafficPlan(txTotal, rxTotal, trafficTimeout(s).toMillis(),
                credits.firstCredit(), CREDIT_TIMEOUT_MILLIS));
        credits.run(rxTotal, Duration.ofMillis(CREDIT_TIMEOUT_MILLIS));
        FakeGuestState after;
        try {
            after = Messages.receive(source.channel(), FakeGuestState.class);
        } catch (IOException e) {
            throw new IOException(e.getMessage() + (child == null ? "" : "; " + describeChild(child, childLog)), e);
        }
        List<String> problems = new ArrayList<>();
        long toGuest = 0;
        long fromGuest = 0;
        for (int p = 0; p < pairs; p++) {
            addIfProblem(problems, StreamCheck.exactlyOnceInOrderPerQueue("pair " + p + " network -> guest",
                    after.received().get(p), rxTotal[p]));
            addIfProblem(problems, wire.checkFromGuest("pair " + p + " guest -> network", p, txTotal[p]));
            toGuest += rxTotal[p];
            fromGuest += txTotal[p];
        }
        MigrationReport report = source.migration().report();
        Result result = new Result(backends.description(), report, figures, toGuest, fromGuest, before,
                toGuest + fromGuest - before, problems);
        print(out, result);
        if (child == null) {
            return new FaultOutcome(null, false, result, null);
        }
        if (!child.waitFor(60, TimeUnit.SECONDS)) {
            child.destroyForcibly();
            problems.add("the destination process did not exit");
        } else if (child.exitValue() != 0) {
            problems.add("the destination exited with " + child.exitValue() + ": " + Files.readString(childLog));
        }
        return new FaultOutcome(null, false, result, child);
    }

    /** shutdown(2) of a connection, as a fault. */
    private static void cut(UnixSocket socket) {
        if (socket == null) {
            return;
        }
        try {
            socket.shutdown();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * The migration failed before the acknowledgement: the guest goes on here. As many frames
     * again each way, then every frame of the whole run checked, exactly once and in order.
     */
    private static Result goOnHere(Settings s, PrintStream out, FakeGuest guest, NetworkSide wire, Backends backends,
            MigrationReport report) throws Exception {
        int pairs = s.pairs();
        long[] tx = new long[pairs];
        long[] rx = new long[pairs];
        long before = 0;
        for (int p = 0; p < pairs; p++) {
            before += guest.transmitted(p) + wire.sentToGuest(p);
            tx[p] = guest.transmitted(p) + s.frames();
            rx[p] = wire.sentToGuest(p) + s.frames();
        }
        Traffic.run(guest, wire, tx, rx, trafficTimeout(s));
        List<String> problems = new ArrayList<>();
        long toGuest = 0;
        long fromGuest = 0;
        FakeGuestState state = guest.saveState();
        for (int p = 0; p < pairs; p++) {
            addIfProblem(problems, StreamCheck.exactlyOnceInOrderPerQueue("pair " + p + " network -> guest",
                    state.received().get(p), wire.sentToGuest(p)));
            addIfProblem(problems, wire.checkFromGuest("pair " + p + " guest -> network", p, guest.transmitted(p)));
            toGuest += wire.sentToGuest(p);
            fromGuest += guest.transmitted(p);
        }
        out.println("source: the guest ran on here: to the guest " + toGuest + ", from the guest " + fromGuest + "; "
                + (problems.isEmpty() ? "none lost, none duplicated, all in order" : "PROBLEMS: " + problems));
        return new Result(backends.description(), report, null, toGuest, fromGuest, before, toGuest + fromGuest - before,
                problems);
    }

    /** How long one traffic phase ({@code frames} each way per pair) may take. */
    private static Duration trafficTimeout(Settings s) {
        return Duration.ofMillis(TRAFFIC_MILLIS + 2L * s.pairs() * s.frames() * 1000 / FRAMES_PER_SECOND);
    }

    /**
     * The network side's window towards the guest: the guest's receive buffers of all its pairs,
     * at most what a TAP queue surely holds ({@link NetworkSide#TAP_QUEUE} / 2): frames the guest
     * has no buffer for yet wait in the TAP, and none is dropped even if all hash to one queue.
     */
    private static int toGuestWindow(GuestLayout layout) {
        return (int) Math.min(NetworkSide.TAP_QUEUE / 2, (long) layout.pairs() * layout.spec().queueSize());
    }

    /** A fresh TAP, link up before anything binds to it. */
    private static TapDevice upTap(int pairs) throws IOException {
        TapDevice tap = TapDevice.create("vffmdemo%d", pairs, TapDevice.VHOST_FLAGS);
        try {
            tap.setLinkUp(true);
            return tap;
        } catch (IOException | RuntimeException e) {
            tap.close();
            throw e;
        }
    }

    /** Transmit targets: {@code more} frames more per pair. */
    private static long[] plus(FakeGuest guest, int pairs, long more) {
        long[] t = new long[pairs];
        for (int p = 0; p < pairs; p++) {
            t[p] = guest.transmitted(p) + more;
        }
        return t;
    }

    /** Receive targets: {@code more} frames more per stream than sent so far. */
    private static long[] plusWire(NetworkSide wire, int pairs, int more) {
        long[] t = new long[pairs];
        for (int p = 0; p < pairs; p++) {
            t[p] = wire.sentToGuest(p) + more;
        }
        return t;
    }

    private static void addIfProblem(List<String> problems, String problem) {
        if (problem != null) {
            problems.add(problem);
        }
    }

    private static long[] filled(int n, long value) {
        long[] a = new long[n];
        Arrays.fill(a, value);
        return a;
    }

    private static void print(PrintStream out, Result r) {
        DestinationFigures d = r.destination();
        out.println();
        out.println(r.report());
        out.println(String.format("  %-34s %14d", "destination device start", d.deviceStartNanos()));
        out.println(String.format("  %-34s %s", "destination path", d.path()));
        out.println();
        out.println("frames: " + r.framesBefore() + " before the migration, " + r.framesAfter()
                + " after the pause (downtime included); to the guest " + r.framesToGuest() + ", from the guest "
                + r.framesFromGuest());
        out.println(r.ok() ? "none lost, none duplicated, all in order" : "PROBLEMS: " + r.problems());
    }

    /** The destination's exit status (after up to 10 s) and the last lines it wrote, for an error message. */
    private static String describeChild(Process child, Path log) {
        String status;
        try {
            status = child.waitFor(10, TimeUnit.SECONDS) ? "exited with " + child.exitValue() : "still running";
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            status = "not waited for";
        }
        String tail;
        try {
            List<String> lines = Files.readAllLines(log);
            tail = String.join("\n", lines.subList(Math.max(0, lines.size() - 30), lines.size()));
        } catch (IOException | RuntimeException e) {
            tail = "(its log is unreadable: " + e + ")";
        }
        return "the destination process " + status + "; its last output:\n" + tail;
    }

    /**
     * Starts this class as the destination in a child JVM with this JVM's java, class/module path
     * and -XX options, plus those of the system property {@code vhostffm.child.jvmflags}.
     */
    static Process spawnDestination(Path socket, Path log, boolean copyRam, FaultPlan plan) throws IOException {
        List<String> arguments = new ArrayList<>(List.of(MigrationDemo.class.getName(), "--destination",
                socket.toString()));
        if (copyRam) {
            arguments.add("--copy-ram");
        }
        if (plan != null) {
            arguments.addAll(List.of("--deadline-ms", String.valueOf(plan.deadlines().streamRead().toMillis())));
        } else {
            arguments.add("--announce-early-load");
        }
        return spawnJava(arguments, log, plan == null ? null : plan.destinationFault());
    }

    /**
     * Starts {@code mainAndArguments} (a main class and its arguments) in a child JVM with this
     * JVM's java, class/module path and -XX options, plus those of {@code vhostffm.child.jvmflags};
     * its output goes to {@code log}.
     */
    static Process spawnJava(List<String> mainAndArguments, Path log) throws IOException {
        return spawnJava(mainAndArguments, log, null);
    }

    private static Process spawnJava(List<String> mainAndArguments, Path log, String fault) throws IOException {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Set<String> entries = new LinkedHashSet<>();
        for (String property : new String[] {"jdk.module.path", "java.class.path"}) {
            String value = System.getProperty(property);
            if (value != null && !value.isBlank()) {
                for (String e : value.split(File.pathSeparator)) {
                    if (!e.isBlank()) {
                        entries.add(e);
                    }
                }
            }
        }
        List<String> command = new ArrayList<>(List.of(java, "--enable-native-access=ALL-UNNAMED", "-cp",
                String.join(File.pathSeparator, entries)));
        // This JVM's -XX options (JIT, GC) go to the child too: the kernel suite runs C1 only
        // (-XX:TieredStopAtLevel=1) because C2-tiered JVMs crash under the VM bench's emulation,
        // and a child started without it died there, failing the migration it was part of.
        for (String argument : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            if (argument.startsWith("-XX:")) {
                command.add(argument);
            }
        }
        String tiered = System.getProperty("vhostffm.child.jvmflags");
        if (tiered != null && !tiered.isBlank()) {
            command.addAll(List.of(tiered.trim().split("\\s+")));
        }
        command.addAll(mainAndArguments);
        ProcessBuilder pb = new ProcessBuilder(command);
        pb.environment().remove(FAULT_ENV);
        if (fault != null) {
            pb.environment().put(FAULT_ENV, fault);
        }
        pb.redirectErrorStream(true);
        pb.redirectOutput(log.toFile());
        return pb.start();
    }

    /**
     * The child: connect, receive the device, run the guest as planned, report its state back.
     * A failed migration is discarded: nothing started, everything closed (checked: no descriptor
     * left open), exit status 3. {@code fault} ({@code PHASE:kill|stop|cut}) makes it fail at a
     * phase, for the fault tests.
     *
     * @return the exit status
     */
    private static int destination(Path socketPath, boolean copyRam, MigrationDeadlines deadlines, String fault,
            boolean announceEarlyLoad)
            throws Exception {
        Map<Integer, String> before = OpenDescriptors.snapshot();
        List<UnixSocket> sockets = new ArrayList<>();
        LocalMigration.FaultPoints faults = faultPoints("destination", fault, sockets);
        int status;
        faults.reached(MigrationPhase.CONNECT.name());
        UnixSocket socket;
        UnixSocket ram = null;
        try {
            socket = UnixSocket.connect(socketPath);
            try {
                ram = copyRam ? UnixSocket.connect(socketPath) : null;
            } catch (IOException e) {
                socket.close();
                throw e;
            }
        } catch (IOException e) {
            System.out.println("destination: migration failed: " + MigrationPeerException.of(MigrationPhase.CONNECT,
                    "the source (" + socketPath + ")", e).getMessage());
            System.out.println("destination: outcome: discarded, nothing received");
            return 3;
        }
        try (socket; UnixSocket r = ram) {
            sockets.add(socket);
            if (ram != null) {
                sockets.add(ram);
            }
            status = destinationOn(socket, ram, deadlines, faults, announceEarlyLoad);
        }
        // What a migration holds: sockets, the TAP's queues, memfds, eventfds, vhost. (The JVM opens
        // jars and random devices lazily: those are not the migration's.)
        Map<Integer, String> after = OpenDescriptors.snapshot();
        for (OpenDescriptors.Kind kind : List.of(OpenDescriptors.Kind.SOCKET, OpenDescriptors.Kind.TAP,
                OpenDescriptors.Kind.MEMFD, OpenDescriptors.Kind.EVENTFD, OpenDescriptors.Kind.VHOST)) {
            if (OpenDescriptors.count(after, kind) > OpenDescriptors.count(before, kind)) {
                System.out.println("destination: LEAKED " + OpenDescriptors.diff(before, after));
                return 4;
            }
        }
        return status;
    }

    private static int destinationOn(UnixSocket socket, UnixSocket ram, MigrationDeadlines deadlines,
            LocalMigration.FaultPoints faults, boolean announceEarlyLoad) throws Exception {
        LocalMigration.Destination destination;
        try {
            destination = new LocalMigration.Destination(socket, ram, deadlines, faults);
        } catch (MigrationException e) {
            System.out.println("destination: migration failed: " + e.getMessage());
            System.out.println("destination: outcome: discarded, the device never started");
            return 3;
        }
        try (destination) {
            if (announceEarlyLoad) {
                destination.announceEarlyLoad();
            }
            FakeGuest guest;
            try {
                guest = destination.receive();
            } catch (MigrationException e) {
                System.out.println("destination: migration failed: " + e.getMessage());
                System.out.println("destination: outcome: discarded, the device never started (datapath running: "
                        + destination.device().isDatapathRunning() + ")");
                return 3;
            }
            System.out.println("destination: outcome: the guest runs here");
            TrafficPlan plan;
            try {
                plan = Messages.receive(destination.channel(), TrafficPlan.class);
            } catch (IOException e) {
                System.out.println("destination: the source is gone (" + e.getMessage() + "); the guest runs here");
                return 0;
            }
            // The source drives the network side for as long as the plan lasts, and paces this
            // guest's transmit with credits (TransmitCredits).
            destination.channel().setReadTimeout(Duration.ofMillis(plan.timeoutMillis()));
            try (TransmitCredits.Gate credits = new TransmitCredits.Gate(destination.channel(), plan.transmitUpTo(),
                    Duration.ofMillis(plan.creditTimeoutMillis()))) {
                Traffic.run(guest, null, credits, plan.txTotal(), plan.rxTotal(), Duration.ofMillis(plan.timeoutMillis()));
            }
            Messages.send(destination.channel(), FakeGuestState.class, guest.saveState());
            return 0;
        }
    }

    /**
     * The fault points of a child process: at the point {@code fault} names ({@code PHASE:ACTION},
     * null for none) it kills itself (SIGKILL), stops itself (SIGSTOP) or shuts {@code sockets} down.
     */
    private static LocalMigration.FaultPoints faultPoints(String side, String fault, List<UnixSocket> sockets) {
        if (fault == null) {
            return LocalMigration.FaultPoints.NONE;
        }
        String[] f = fault.split(":");
        return point -> {
            if (!point.equals(f[0])) {
                return;
            }
            System.out.println(side + ": fault point " + point + ": " + f[1]);
            System.out.flush();
            switch (f[1]) {
                case "kill" -> SelfSignal.kill();
                case "stop" -> SelfSignal.stop();
                case "cut" -> sockets.forEach(MigrationDemo::cut);
                default -> throw new IllegalArgumentException("fault action " + f[1]);
            }
        };
    }

    /**
     * How a migration from a source child ended, as this process, the destination, saw it.
     *
     * @param failure the destination's exception when it discarded the migration (the device never
     *     started), or null when the guest runs here
     * @param guestHere whether the guest runs here
     * @param datapathRunning whether the destination's datapath ran when it decided (false when it discarded)
     * @param afterCommit when the guest runs here: why the source could not be reached after its
     *     commit (phase COMPLETION), or null
     * @param problems what is wrong with the frames the guest received here (empty when nothing)
     * @param source the source process (maybe still running, or stopped)
     */
    public record DestinationOutcome(MigrationException failure, boolean guestHere, boolean datapathRunning,
            MigrationPeerException afterCommit, List<String> problems, Process source) {}

    /**
     * The demo with the roles of the processes swapped: this process is the destination, a child
     * JVM ({@code --source}) the source, with the device, the guest and the network side of its
     * TAP. The child connects to this process; {@code sourceFault} ({@code PHASE:kill|stop|cut}, a
     * {@link MigrationPhase} name or {@link #ACKNOWLEDGED}) makes it fail at a phase. A failure of
     * the source does not escape here: it is the outcome. Before the source's commit arrived this
     * side discards everything (the device never starts); after it, the guest runs here.
     */
    public static DestinationOutcome receiveFromSourceChild(Settings s, PrintStream out, MigrationDeadlines deadlines,
            String sourceFault, Path childLog) throws Exception {
        Path dir = Files.createTempDirectory("vhostffm-demo");
        Path socketPath = dir.resolve("migration.sock");
        try {
            Process child;
            UnixSocket socket;
            UnixSocket ramSocket = null;
            try (UnixSocketListener listener = UnixSocketListener.bind(socketPath)) {
                List<String> arguments = new ArrayList<>(List.of(MigrationDemo.class.getName(), "--source",
                        socketPath.toString(), "--frames", String.valueOf(s.frames()), "--pairs", String.valueOf(s.pairs()),
                        "--deadline-ms", String.valueOf(deadlines.streamRead().toMillis())));
                if (s.copyRam()) {
                    arguments.add("--copy-ram");
                }
                if (s.precopyDelta()) {
                    arguments.add("--precopy-delta");
                }
                child = spawnJava(arguments, childLog, sourceFault);
                try {
                    socket = listener.accept(deadlines.connect());
                    if (s.copyRam()) {
                        ramSocket = listener.accept(deadlines.connect());
                    }
                } catch (IOException e) {
                    MigrationPeerException failure = MigrationPeerException.of(MigrationPhase.CONNECT,
                            "the source (process " + child.pid() + ")", e);
                    out.println("destination: " + failure.getMessage() + "; nothing received");
                    if (ramSocket != null) {
                        ramSocket.close();
                    }
                    return new DestinationOutcome(failure, false, false, null, List.of(), child);
                }
            } // the listener closes: a source that comes back later finds nobody
            try (socket; UnixSocket ram = ramSocket) {
                LocalMigration.Destination destination;
                try {
                    destination = new LocalMigration.Destination(socket, ram, deadlines, LocalMigration.FaultPoints.NONE);
                } catch (MigrationException e) {
                    out.println("destination: " + e.getMessage() + "; discarded, nothing built");
                    return new DestinationOutcome(e, false, false, null, List.of(), child);
                }
                try (destination) {
                    FakeGuest guest;
                    try {
                        guest = destination.receive();
                    } catch (MigrationException e) {
                        boolean running = destination.device().isDatapathRunning();
                        out.println("destination: " + e.getMessage() + "; discarded, the device never started");
                        return new DestinationOutcome(e, false, running, null, List.of(), child);
                    }
                    MigrationPeerException after = destination.acknowledgementLost();
                    try {
                        TrafficPlan plan = Messages.receive(destination.channel(), TrafficPlan.class);
                        destination.channel().setReadTimeout(Duration.ofMillis(plan.timeoutMillis()));
                        try (TransmitCredits.Gate credits = new TransmitCredits.Gate(destination.channel(),
                                plan.transmitUpTo(), Duration.ofMillis(plan.creditTimeoutMillis()))) {
                            Traffic.run(guest, null, credits, plan.txTotal(), plan.rxTotal(),
                                    Duration.ofMillis(plan.timeoutMillis()));
                        }
                        Messages.send(destination.channel(), FakeGuestState.class, guest.saveState());
                    } catch (IOException | RuntimeException e) {
                        if (after == null) {
                            after = MigrationPeerException.of(MigrationPhase.COMPLETION,
                                    "the source (process " + child.pid() + ")", e);
                        }
                    }
                    // What reached the guest here: each frame once, in order, none skipped (the network
                    // side, gone with the source, cannot say how many it sent).
                    List<String> problems = new ArrayList<>();
                    FakeGuestState state = guest.saveState();
                    for (int p = 0; p < s.pairs(); p++) {
                        FakeGuestState.Stream got = state.received().get(p);
                        addIfProblem(problems, StreamCheck.exactlyOnceInOrderPerQueue("pair " + p
                                + " network -> guest (here)", got, got.count()));
                    }
                    out.println("destination: the guest runs here" + (after == null ? ""
                            : "; " + after.getMessage()) + (problems.isEmpty() ? "" : "; PROBLEMS: " + problems));
                    return new DestinationOutcome(null, true, destination.device().isDatapathRunning(), after, problems,
                            child);
                }
            }
        } finally {
            Files.deleteIfExists(socketPath);
            Files.deleteIfExists(dir);
        }
    }

    /**
     * {@code --source PATH [--pairs N] [--frames N] [--precopy-delta] [--copy-ram] [--deadline-ms N]}:
     * this process is the source and connects to the destination listening at PATH; {@value
     * #FAULT_ENV} makes it fail at a phase. Prints its outcome; nothing may be left open.
     *
     * @return the exit status: 0 when the outcome is sound, 1 when frames were lost or duplicated,
     *     4 when a descriptor leaked
     */
    private static int sourceChild(String[] args) throws Exception {
        Path path = Path.of(args[1]);
        int pairs = 1;
        int frames = 100;
        boolean precopyDelta = false;
        boolean copyRam = false;
        MigrationDeadlines deadlines = MigrationDeadlines.defaults();
        for (int i = 2; i < args.length; i++) {
            switch (args[i]) {
                case "--pairs" -> pairs = Integer.parseInt(args[++i]);
                case "--frames" -> frames = Integer.parseInt(args[++i]);
                case "--precopy-delta" -> precopyDelta = true;
                case "--copy-ram" -> copyRam = true;
                case "--deadline-ms" -> deadlines = MigrationDeadlines.uniform(Duration.ofMillis(Long.parseLong(args[++i])));
                default -> throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        Map<Integer, String> before = OpenDescriptors.snapshot();
        FaultOutcome o = runSource(new Settings(pairs, frames, precopyDelta, false, copyRam), System.out,
                new FaultPlan(deadlines, null, null, null), path, System.getenv(FAULT_ENV));
        int status;
        if (o.failure() == null) {
            System.out.println("source: outcome: migrated, the guest runs at the destination"
                    + (o.result().ok() ? "" : "; PROBLEMS: " + o.result().problems()));
            status = o.result().ok() ? 0 : 1;
        } else if (o.guestAtSource()) {
            System.out.println("source: outcome: resumed at source (" + named(o.failure()) + "); "
                    + (o.result().ok() ? "none lost, none duplicated, all in order" : "PROBLEMS: " + o.result().problems()));
            status = o.result().ok() ? 0 : 1;
        } else {
            System.out.println("source: outcome: guest left (" + named(o.failure()) + "), never run here again");
            status = 0;
        }
        Map<Integer, String> after = OpenDescriptors.snapshot();
        for (OpenDescriptors.Kind kind : List.of(OpenDescriptors.Kind.SOCKET, OpenDescriptors.Kind.TAP,
                OpenDescriptors.Kind.MEMFD, OpenDescriptors.Kind.EVENTFD, OpenDescriptors.Kind.VHOST)) {
            if (OpenDescriptors.count(after, kind) > OpenDescriptors.count(before, kind)) {
                System.out.println("source: LEAKED " + OpenDescriptors.diff(before, after));
                return 4;
            }
        }
        return status;
    }

    /** A failure as "phase, FAULT" (or "refused" for the destination's plain refusal). */
    static String named(MigrationException e) {
        return e instanceof MigrationPeerException p ? p.phase() + ", " + p.fault() : "refused: " + e.getMessage();
    }
}

package io.vhostffm.programs.demo;

import io.vhostffm.migration.MigrationException;
import io.vhostffm.migration.MigrationReport;
import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.testkit.FakeGuestState;
import io.vhostffm.testkit.GuestLayout;
import io.vhostffm.testkit.GuestTransport;
import io.vhostffm.testkit.NetworkSide;
import io.vhostffm.testkit.StreamCheck;
import io.vhostffm.vhost.device.NetDeviceRuntime;
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

    public static void main(String[] args) throws Exception {
        if (args.length >= 2 && args[0].equals("--destination")) {
            destination(Path.of(args[1]), args.length > 2 && args[2].equals("--copy-ram"));
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
        System.setProperty("vhostffm.child.jvmflags", flags + " -XX:StartFlightRecording:settings=default,filename="
                + destinationFile);
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
        int pairs = s.pairs();
        Path dir = Files.createTempDirectory("vhostffm-demo");
        Path socketPath = dir.resolve("migration.sock");
        Path childLog = dir.resolve("destination.log");
        GuestLayout layout = DemoDevice.layout(pairs);
        try (MemfdGuestMemory memory = DemoDevice.memory(layout);
                TapDevice tap = upTap(pairs);
                Backends backends = Backends.open(tap);
                NetworkSide wire = new NetworkSide(tap.name(), pairs, layout.spec().queueSize())) {
            out.println("source: TAP " + tap.name() + ", " + pairs + " queue pair(s)");
            out.println("source: datapath: " + backends.description());
            try (NetDeviceRuntime device = new NetDeviceRuntime(DemoDevice.options(pairs), backends.offerAgainst(), memory,
                    backends.primary())) {
                FakeGuest guest = FakeGuest.boot(GuestTransport.of(device), memory, layout, DemoDevice.FEATURES);
                guest.postRxBuffers();
                if (pairs > 1 && guest.setQueuePairs(pairs) != 0) { // a driver starts with one pair active
                    throw new IllegalStateException("VQ_PAIRS_SET " + pairs + " refused");
                }
                long[] tx1 = filled(pairs, s.frames());
                Traffic.run(guest, wire, tx1, filled(pairs, s.frames()), Duration.ofSeconds(60));
                long before = 2L * pairs * s.frames();
                out.println("source: traffic before the migration: " + before + " frames (" + s.frames()
                        + " each way per pair), the guest runs here");

                Process child;
                UnixSocket socket;
                UnixSocket ramSocket = null;
                try (UnixSocketListener listener = UnixSocketListener.bind(socketPath)) {
                    child = spawnDestination(socketPath, childLog, s.copyRam());
                    socket = listener.accept();
                    if (s.copyRam()) {
                        ramSocket = listener.accept();
                    }
                }
                try (socket; UnixSocket ram = ramSocket) {
                    LocalMigration.Source source = new LocalMigration.Source(socket, ram, device, memory,
                            backends.primary(), guest, UnaryOperator.identity());
                    if (ram == null) {
                        out.println("source: memfds and TAP fds sent with SCM_RIGHTS; setup state sent; precopy");
                    } else {
                        Traffic.run(guest, wire, plus(guest, pairs, s.frames() / 4), plusWire(wire, pairs, s.frames() / 4),
                                Duration.ofSeconds(60)); // the guest and the datapath dirty pages meanwhile
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
                    }
                    if (s.switchoverDelta()) {
                        // Changed with precopy deltas off (as the QEMU RFC does): the stop-and-copy finds and carries it.
                        source.migration().setPrecopyDeltas(false);
                        guest.addVlan(42);
                    }
                    // As a hypervisor's precopy of RAM would: the guest pauses once the destination is prestarted.
                    source.awaitEarlyLoad();
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
                    DestinationFigures figures;
                    try {
                        figures = source.awaitDestination();
                    } finally {
                        source.close();
                    }
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
                    Messages.send(source.channel(), TrafficPlan.class, new TrafficPlan(txTotal, rxTotal, 60_000));
                    for (int p = 0; p < pairs; p++) {
                        wire.sendToGuest(p, s.frames());
                    }
                    long wanted = 0;
                    for (long t : txTotal) {
                        wanted += t;
                    }
                    wire.receiveFromGuest(wanted, 10_000);
                    FakeGuestState after;
                    try {
                        after = Messages.receive(source.channel(), FakeGuestState.class);
                    } catch (IOException e) {
                        throw new IOException(e.getMessage() + "; " + describeChild(child, childLog), e);
                    }
                    List<String> problems = new ArrayList<>();
                    long toGuest = 0;
                    long fromGuest = 0;
                    for (int p = 0; p < pairs; p++) {
                        long[] got = after.received().get(p).seqs();
                        List<Long> rx = new ArrayList<>();
                        for (long g : got) {
                            rx.add(g);
                        }
                        List<Integer> on = new ArrayList<>();
                        for (int q : after.received().get(p).arrivedOn()) {
                            on.add(q);
                        }
                        addIfProblem(problems, StreamCheck.exactlyOnceInOrderPerQueue("pair " + p + " network -> guest", rx,
                                on, rxTotal[p]));
                        addIfProblem(problems, StreamCheck.exactlyOnceInOrder("pair " + p + " guest -> network",
                                wire.fromGuest(p), txTotal[p]));
                        toGuest += rxTotal[p];
                        fromGuest += txTotal[p];
                    }
                    MigrationReport report = source.migration().report();
                    Result result = new Result(backends.description(), report, figures, toGuest, fromGuest, before,
                            toGuest + fromGuest - before, problems);
                    print(out, result);
                    if (!child.waitFor(60, TimeUnit.SECONDS)) {
                        child.destroyForcibly();
                        problems.add("the destination process did not exit");
                    } else if (child.exitValue() != 0) {
                        problems.add("the destination exited with " + child.exitValue() + ": " + Files.readString(childLog));
                    }
                    return result;
                }
            }
        } finally {
            Files.deleteIfExists(socketPath);
            Files.deleteIfExists(childLog);
            Files.deleteIfExists(dir);
        }
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
    static Process spawnDestination(Path socket, Path log, boolean copyRam) throws IOException {
        List<String> arguments = new ArrayList<>(List.of(MigrationDemo.class.getName(), "--destination",
                socket.toString()));
        if (copyRam) {
            arguments.add("--copy-ram");
        }
        return spawnJava(arguments, log);
    }

    /**
     * Starts {@code mainAndArguments} (a main class and its arguments) in a child JVM with this
     * JVM's java, class/module path and -XX options, plus those of {@code vhostffm.child.jvmflags};
     * its output goes to {@code log}.
     */
    static Process spawnJava(List<String> mainAndArguments, Path log) throws IOException {
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
        pb.redirectErrorStream(true);
        pb.redirectOutput(log.toFile());
        return pb.start();
    }

    /** The child: connect, receive the device, run the guest as planned, report its state back. */
    private static void destination(Path socketPath, boolean copyRam) throws Exception {
        try (UnixSocket socket = UnixSocket.connect(socketPath);
                UnixSocket ram = copyRam ? UnixSocket.connect(socketPath) : null;
                LocalMigration.Destination destination = new LocalMigration.Destination(socket, ram)) {
            destination.announceEarlyLoad();
            FakeGuest guest;
            try {
                guest = destination.receive();
            } catch (MigrationException e) {
                System.err.println("destination: migration refused: " + e.getMessage());
                System.exit(3);
                return;
            }
            TrafficPlan plan = Messages.receive(destination.channel(), TrafficPlan.class);
            Traffic.run(guest, null, plan.txTotal(), plan.rxTotal(), Duration.ofMillis(plan.timeoutMillis()));
            Messages.send(destination.channel(), FakeGuestState.class, guest.saveState());
        }
    }
}

package io.vhostffm.programs.demo;

import io.vhostffm.migration.DeviceDowntime;
import io.vhostffm.migration.MigrationException;
import io.vhostffm.migration.net.UnixSocketChannel;
import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.testkit.FakeGuestState;
import io.vhostffm.testkit.GuestLayout;
import io.vhostffm.testkit.GuestTransport;
import io.vhostffm.testkit.NetworkSide;
import io.vhostffm.testkit.StreamCheck;
import io.vhostffm.testkit.Traffic;
import io.vhostffm.vhost.device.NetDeviceRuntime;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.TapDevice;
import io.vhostffm.vhost.os.UnixSocket;
import io.vhostffm.vhost.os.UnixSocketListener;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
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
 * java ... DowntimeBench [--pairs N] [--migrations N] [--frames N] [--delta] [--label L] [--out DIR]
 * </pre>
 *
 * <p>This process owns the TAP's network side and starts as the source; migration {@code i}
 * goes from this process to the child when {@code i} is even, back when odd; each migration
 * runs on a new connection to this process's socket. The source waits for the destination's
 * early load ({@link LocalMigration.Source#awaitEarlyLoad}) before it pauses the guest, as a
 * hypervisor's RAM precopy would give it time to. With {@code --delta} the guest adds a VLAN
 * just before each pause with precopy deltas off, so every stop-and-copy carries a delta.
 */
public final class DowntimeBench {
    private static final Duration TRAFFIC_TIMEOUT = Duration.ofSeconds(60);
    /** Frames the guest transmits right before each pause, per pair: in flight at the stop. */
    private static final int IN_FLIGHT = 16;

    private DowntimeBench() {}

    /** The settings of one configuration. */
    record Settings(int pairs, int migrations, int frames, boolean delta, String label, Path out) {}

    /** One migration's downtime, as the source measured it with the destination's timeline. */
    public record Sample(int index, boolean toChild, long totalNanos, List<DeviceDowntime.Part> parts, String path) {}

    /** What the source tells the destination after a migration (the downtime is known at the source). */
    public record SampleMessage(long totalNanos, List<DeviceDowntime.Part> parts, String path) {}

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
        if (args.length >= 1 && args[0].equals("--peer")) {
            peer(Path.of(args[1]), Integer.parseInt(args[2]), Integer.parseInt(args[3]), Boolean.parseBoolean(args[4]));
            return;
        }
        int pairs = 1;
        int migrations = 100;
        int frames = 64;
        boolean delta = false;
        boolean matrix = false;
        String label = null;
        Path out = Path.of("results", "downtime");
        Path summaryJson = null;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--pairs" -> pairs = Integer.parseInt(args[++i]);
                case "--migrations" -> migrations = Integer.parseInt(args[++i]);
                case "--frames" -> frames = Integer.parseInt(args[++i]);
                case "--delta" -> delta = true;
                case "--matrix" -> matrix = true;
                case "--label" -> label = args[++i];
                case "--out" -> out = Path.of(args[++i]);
                // The VM bench's JMH mode appends "-rf json -rff FILE" and wants a non-empty JSON there.
                case "-rf" -> i++;
                case "-rff" -> summaryJson = Path.of(args[++i]);
                default -> {
                    System.err.println("usage: DowntimeBench [--pairs N | --matrix] [--migrations N] [--frames N] "
                            + "[--delta] [--label L] [--out DIR] [-rff SUMMARY.json]");
                    System.exit(2);
                }
            }
        }
        migrations += migrations % 2; // an even count brings the guest home for the final check
        List<Settings> configurations = new ArrayList<>();
        if (matrix) { // 1, 4, 16 pairs, without and with a delta
            for (int p : new int[] {1, 4, 16}) {
                for (boolean d : new boolean[] {false, true}) {
                    configurations.add(new Settings(p, migrations, frames, d, defaultLabel(p, d), out));
                }
            }
        } else {
            configurations.add(new Settings(pairs, migrations, frames, delta,
                    label != null ? label : defaultLabel(pairs, delta), out));
        }
        StringBuilder json = new StringBuilder("[");
        boolean ok = true;
        for (Settings s : configurations) {
            List<Sample> samples = run(s, System.out);
            ok &= samples.size() == s.migrations();
            json.append(json.length() > 1 ? ",\n" : "\n").append(Report.json(s, samples));
        }
        if (summaryJson != null) {
            Files.writeString(summaryJson, json.append("\n]\n"));
        }
        System.exit(ok ? 0 : 1);
    }

    /** {@code kernel-4p-nodelta}: the datapath this host gives, pairs, delta or not. */
    private static String defaultLabel(int pairs, boolean delta) {
        String datapath = Files.exists(Path.of("/dev/vhost-net")) ? "kernel" : "userspace";
        return datapath + "-" + pairs + "p-" + (delta ? "delta" : "nodelta");
    }

    /** Runs one configuration; returns the samples (also written under {@code out}). */
    static List<Sample> run(Settings s, PrintStream log) throws Exception {
        int pairs = s.pairs();
        Path dir = Files.createTempDirectory("vhostffm-downtime");
        Path socketPath = dir.resolve("migration.sock");
        Path childLog = dir.resolve("peer.log");
        GuestLayout layout = DemoDevice.layout(pairs);
        List<Sample> samples = new ArrayList<>();
        Process child = null;
        Holder home = null;
        try (UnixSocketListener listener = UnixSocketListener.bind(socketPath)) {
            MemfdGuestMemory memory = DemoDevice.memory(layout);
            TapDevice tap = TapDevice.create("vffmdt%d", pairs, TapDevice.VHOST_FLAGS);
            tap.setLinkUp(true);
            Backends backends = Backends.open(tap);
            NetDeviceRuntime device = new NetDeviceRuntime(DemoDevice.options(pairs, backends.offerAgainst()),
                    backends.offerAgainst(), memory,
                    backends.primary());
            home = new Holder(memory, tap, backends, device, null);
            try (NetworkSide wire = new NetworkSide(tap.name(), pairs, layout.spec().queueSize());
                    ExecutorService network = Executors.newSingleThreadExecutor(
                            r -> Thread.ofPlatform().daemon().name("network-side").unstarted(r))) {
                network.submit(() -> { }).get(); // its thread started before the first pause
                FakeGuest guest = FakeGuest.boot(GuestTransport.of(device), memory, layout, DemoDevice.FEATURES);
                guest.postRxBuffers();
                if (pairs > 1 && guest.setQueuePairs(pairs) != 0) {
                    throw new IllegalStateException("VQ_PAIRS_SET " + pairs + " refused");
                }
                home.guest = guest;
                traffic(guest, wire, s.frames());
                log.println(s.label() + ": " + backends.description() + "; " + s.migrations()
                        + " migrations back and forth");
                child = MigrationDemo.spawnJava(List.of(DowntimeBench.class.getName(), "--peer", socketPath.toString(),
                        Integer.toString(pairs), Integer.toString(s.migrations()), Boolean.toString(s.delta())), childLog);
                for (int i = 0; i < s.migrations(); i++) {
                    try (UnixSocket socket = listener.accept()) {
                        if (i % 2 == 0) {
                            SampleMessage m = migrateAway(socket, home, i, s.delta(), wire, network);
                            home = null;
                            samples.add(new Sample(i, true, m.totalNanos(), m.parts(), m.path()));
                            // The guest runs in the child now: drive the network side while it runs its traffic.
                            UnixSocketChannel channel = new UnixSocketChannel(socket);
                            long[] rx = new long[pairs];
                            for (int p = 0; p < pairs; p++) {
                                rx[p] = wire.sentToGuest(p) + s.frames();
                            }
                            Messages.send(channel, TrafficRound.class,
                                    new TrafficRound(s.frames(), rx, TRAFFIC_TIMEOUT.toMillis()));
                            for (int p = 0; p < pairs; p++) {
                                wire.sendToGuest(p, s.frames());
                            }
                            TrafficDone done = Messages.receive(channel, TrafficDone.class);
                            wire.receiveFromGuest(done.transmitted(), (int) TRAFFIC_TIMEOUT.toMillis());
                        } else {
                            home = migrateHere(socket);
                            SampleMessage m = Messages.receive(home.destination.channel(), SampleMessage.class);
                            samples.add(new Sample(i, false, m.totalNanos(), m.parts(), m.path()));
                            traffic(home.guest, wire, s.frames());
                        }
                    }
                }
                List<String> problems = check(home.guest, wire, pairs);
                if (!problems.isEmpty()) {
                    throw new IllegalStateException("frames lost, duplicated or reordered: " + problems);
                }
            }
            if (!child.waitFor(60, TimeUnit.SECONDS) || child.exitValue() != 0) {
                throw new IllegalStateException("the peer process failed: " + Files.readString(childLog));
            }
            Report.write(s, samples, log);
            return samples;
        } catch (Exception | Error e) {
            if (child != null && child.isAlive()) {
                child.destroyForcibly();
            }
            String tail = Files.exists(childLog) ? Files.readString(childLog) : "";
            throw new IllegalStateException(s.label() + ": " + e + (tail.isEmpty() ? "" : "\npeer:\n" + tail), e);
        } finally {
            if (home != null) {
                home.close();
            }
            Files.deleteIfExists(socketPath);
            Files.deleteIfExists(childLog);
            Files.deleteIfExists(dir);
        }
    }

    /** The child: migration i arrives when i is even and leaves when odd. */
    private static void peer(Path socketPath, int pairs, int migrations, boolean delta) throws Exception {
        Holder here = null;
        try {
            for (int i = 0; i < migrations; i++) {
                try (UnixSocket socket = UnixSocket.connect(socketPath)) {
                    if (i % 2 == 0) {
                        here = migrateHere(socket);
                        Messages.receive(here.destination.channel(), SampleMessage.class);
                        TrafficRound round = Messages.receive(here.destination.channel(), TrafficRound.class);
                        long[] tx = new long[pairs];
                        long total = 0;
                        for (int p = 0; p < pairs; p++) {
                            tx[p] = here.guest.transmitted(p) + round.transmit();
                            total += tx[p];
                        }
                        Traffic.run(here.guest, null, tx, round.rxTotal(), Duration.ofMillis(round.timeoutMillis()));
                        Messages.send(here.destination.channel(), TrafficDone.class, new TrafficDone(total));
                    } else {
                        migrateAway(socket, here, i, delta, null, null);
                        here = null;
                    }
                }
            }
        } finally {
            if (here != null) {
                here.close();
            }
        }
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
        LocalMigration.Source source = new LocalMigration.Source(socket, from.device, from.memory,
                from.backends.primary(), guest);
        try {
            source.awaitEarlyLoad();
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
            SampleMessage m = new SampleMessage(d.totalNanos(), d.parts(), figures.path());
            Messages.send(source.channel(), SampleMessage.class, m);
            return m;
        } finally {
            source.close();
            from.close(); // the destination holds its own descriptors of the memory and the TAP
        }
    }

    /** Receives the device from the peer on {@code socket}; the guest resumes here. */
    private static Holder migrateHere(UnixSocket socket) throws Exception {
        LocalMigration.Destination destination = new LocalMigration.Destination(socket);
        try {
            destination.announceEarlyLoad();
            FakeGuest guest = destination.receive();
            return new Holder(destination, guest);
        } catch (IOException | MigrationException | RuntimeException e) {
            destination.close();
            throw e;
        }
    }

    /** {@code frames} more each way per pair, with the network side in this process. */
    private static void traffic(FakeGuest guest, NetworkSide wire, int frames) throws Exception {
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

        static void write(Settings s, List<Sample> samples, PrintStream log) throws IOException {
            Histogram all = new Histogram(3_600_000_000_000L, 3);
            StringBuilder csv = new StringBuilder("index,direction,path,total_ns");
            for (DeviceDowntime.Part p : samples.get(0).parts()) {
                csv.append(',').append(p.name().replaceAll("[^A-Za-z0-9]+", "_")).append("_ns");
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
            Files.createDirectories(s.out());
            Files.writeString(s.out().resolve(s.label() + ".csv"), csv);
            Files.writeString(s.out().resolve(s.label() + ".summary"), String.format(Locale.ROOT,
                    "label=%s%nmigrations=%d%np50_ns=%d%np90_ns=%d%np99_ns=%d%nmax_ns=%d%nfirst_ns=%d%n", s.label(),
                    all.getTotalCount(), all.getValueAtPercentile(50), all.getValueAtPercentile(90),
                    all.getValueAtPercentile(99), all.getMaxValue(), first.totalNanos()));
            try (PrintStream h = new PrintStream(s.out().resolve(s.label() + ".hgrm").toFile())) {
                all.outputPercentileDistribution(h, 1000.0); // microseconds
            }
        }

        /** One configuration's figures as a JSON object. */
        static String json(Settings s, List<Sample> samples) {
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
                    + "\"p50_ns\": %d, \"p99_ns\": %d, \"max_ns\": %d, \"first_ns\": %d, \"median_parts_ns\": {%s}}",
                    s.label(), s.pairs(), s.delta(), samples.size(), all.getValueAtPercentile(50),
                    all.getValueAtPercentile(99), all.getMaxValue(), samples.get(0).totalNanos(), parts);
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

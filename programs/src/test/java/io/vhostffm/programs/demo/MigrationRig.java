package io.vhostffm.programs.demo;

import io.vhostffm.vhost.virtio.VirtioFeature;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertNull;

import io.vhostffm.migration.MigrationReport;
import io.vhostffm.programs.demo.Backends;
import io.vhostffm.programs.demo.DemoDevice;
import io.vhostffm.programs.demo.DestinationFigures;
import io.vhostffm.programs.demo.LocalMigration;
import io.vhostffm.testkit.Traffic;
import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.testkit.GuestLayout;
import io.vhostffm.testkit.GuestTransport;
import io.vhostffm.testkit.NetworkSide;
import io.vhostffm.testkit.StreamCheck;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.TapDevice;
import io.vhostffm.vhost.os.UnixSocket;
import io.vhostffm.vhost.device.NetDeviceRuntime;
import java.io.IOException;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * A fake guest on a real TAP with a device that migrates, in one process: each migration hands the
 * memory and the TAP over a socketpair (SCM_RIGHTS) to a destination built on a second thread,
 * exactly as between two processes, and the old side is closed afterwards. The network side (the
 * {@link NetworkSide}) stays on the TAP throughout and checks every frame.
 */
final class MigrationRig implements AutoCloseable {
    /** What hooks may do to the guest. */
    @FunctionalInterface
    interface GuestAction {
        void run(FakeGuest guest) throws Exception;
    }

    /** One migration's outcome. */
    record Migrated(MigrationReport report, DestinationFigures figures, List<Integer> switchoverSections,
            LocalMigration.Destination destination) {}

    final int pairs;
    final TapDevice tap;
    final NetworkSide wire;
    final GuestLayout layout;
    private MemfdGuestMemory firstMemory;
    private Backends firstBackends;
    private NetDeviceRuntime device;
    private LocalMigration.Destination current; // null while on the first side
    FakeGuest guest;
    /** Pairs the traffic uses (VQ_PAIRS_SET): the guest sends and posts on these only. */
    int activePairs = 1;
    /** Whether the source sends precopy deltas at once (else changes are found at stop-and-copy). */
    boolean precopyDeltas = true;
    /** Two hosts: guest memory copied by RAM precopy on a second socket instead of shared memfds. */
    boolean ramCopy;
    /** Pages the last RAM precopy sent, all rounds. */
    long lastRamPages;

    /** How the next destination opens its backends (e.g. its own vhost-user backend process). */
    Backends.Opener destinationBackends = Backends.DEFAULT;
    /** Whether the network side sends into the TAP during each downtime (not when no side serves the TAP). */
    boolean wireDuringDowntime = true;

    private MigrationRig(int pairs, boolean eventIdx) throws Exception {
        this(pairs, eventIdx ? DemoDevice.FEATURES : DemoDevice.FEATURES & ~VirtioFeature.EVENT_IDX.mask(),
                Backends.DEFAULT);
    }

    private MigrationRig(int pairs, long wanted, Backends.Opener opener) throws Exception {
        this.pairs = pairs;
        this.layout = DemoDevice.layout(pairs);
        this.firstMemory = DemoDevice.memory(layout);
        this.tap = TapDevice.create("vffmmig%d", pairs, TapDevice.VHOST_FLAGS);
        tap.setLinkUp(true);
        this.wire = new NetworkSide(tap.name(), pairs, layout.spec().queueSize());
        this.firstBackends = opener.open(tap);
        this.device = new NetDeviceRuntime(DemoDevice.options(pairs, firstBackends.offerAgainst()),
                firstBackends.offerAgainst(), firstMemory,
                firstBackends.primary());
        this.guest = bootGuest(wanted);
    }

    static MigrationRig boot(int pairs) throws Exception {
        return new MigrationRig(pairs, true);
    }

    static MigrationRig boot(int pairs, boolean eventIdx) throws Exception {
        return new MigrationRig(pairs, eventIdx);
    }

    /**
     * The guest acknowledging {@code wanted} (e.g. {@link DemoDevice#FEATURES} with packed rings),
     * the first side's backends opened by {@code opener} (e.g. {@link Backends#vhostUser}).
     */
    static MigrationRig boot(int pairs, long wanted, Backends.Opener opener) throws Exception {
        return new MigrationRig(pairs, wanted, opener);
    }

    /**
     * The guest resets the device and boots again acknowledging {@code wanted} (e.g. without
     * EVENT_IDX): new features, fresh rings. The wire's numbering starts again with it.
     */
    void rebootGuest(long wanted) throws Exception {
        Traffic.run(guest, wire, txSoFar(), rxSoFar(), Duration.ofSeconds(30)); // nothing left in flight
        device.model().writeStatus(0);
        wire.reset();
        guest = bootGuest(wanted);
        activePairs = 1;
    }

    private FakeGuest bootGuest(long wanted) throws Exception {
        FakeGuest booted = FakeGuest.boot(GuestTransport.of(device), memory(), layout, wanted);
        booted.postRxBuffers();
        return booted;
    }

    private long[] txSoFar() {
        long[] t = new long[pairs];
        for (int p = 0; p < pairs; p++) {
            t[p] = guest.transmitted(p);
        }
        return t;
    }

    private long[] rxSoFar() {
        long[] t = new long[pairs];
        for (int p = 0; p < pairs; p++) {
            t[p] = wire.sentToGuest(p);
        }
        return t;
    }

    NetDeviceRuntime device() {
        return device;
    }

    MemfdGuestMemory memory() {
        return current == null ? firstMemory : current.memory();
    }

    Backends backends() {
        return current == null ? firstBackends : current.backends();
    }

    /** {@code frames} more each way on every pair; the guest and the wire pumped until done. */
    void traffic(int frames) throws Exception {
        long[] tx = new long[pairs];
        long[] rx = new long[pairs];
        for (int p = 0; p < pairs; p++) {
            int n = p < activePairs ? frames : 0;
            tx[p] = guest.transmitted(p) + n;
            rx[p] = wire.sentToGuest(p) + n;
        }
        Traffic.run(guest, wire, tx, rx, Duration.ofSeconds(60));
    }

    /** Every frame so far, both ways, exactly once and in order (network to guest: on each queue it arrived on). */
    void assertEveryFrameExactlyOnceInOrder() throws IOException {
        for (int p = 0; p < pairs; p++) {
            assertNull(wire.checkFromGuest("pair " + p + " guest -> network", p, guest.transmitted(p)));
            assertNull(StreamCheck.exactlyOnceInOrderPerQueue("pair " + p + " network -> guest", guest.received(p),
                    guest.arrivedOn(p), wire.sentToGuest(p)));
        }
    }

    /**
     * Migrates to a new destination: {@code configure} sees it before it receives (fault
     * injection, classic mode), {@code beforePause} runs on the guest during precopy; frames are in
     * flight at the pause and the network sends more during the downtime.
     */
    Migrated migrate(Consumer<LocalMigration.Destination> configure, GuestAction beforePause) throws Exception {
        try (UnixSocket.Pair pair = UnixSocket.pair(); UnixSocket.Pair ramPair = UnixSocket.pair()) {
            CompletableFuture<LocalMigration.Destination> built = new CompletableFuture<>();
            CompletableFuture<FakeGuest> resumed = new CompletableFuture<>();
            Thread destinationThread = Thread.ofPlatform().name("destination").start(() -> {
                try {
                    LocalMigration.Destination d = new LocalMigration.Destination(pair.second(),
                            ramCopy ? ramPair.second() : null, io.vhostffm.migration.net.MigrationDeadlines.defaults(),
                            LocalMigration.FaultPoints.NONE, destinationBackends);
                    configure.accept(d);
                    built.complete(d);
                    resumed.complete(d.receive());
                } catch (Throwable t) {
                    built.completeExceptionally(t);
                    resumed.completeExceptionally(t);
                }
            });
            LocalMigration.Source source = new LocalMigration.Source(pair.first(), ramCopy ? ramPair.first() : null, device,
                    memory(), backends().endpoint(), guest, java.util.function.UnaryOperator.identity());
            source.migration().setPrecopyDeltas(precopyDeltas);
            if (ramCopy) {
                traffic(64); // the guest and the datapath dirty pages during the RAM precopy
                source.ramPrecopy(5, 8);
            }
            LocalMigration.Destination destination = built.get(60, TimeUnit.SECONDS);
            beforePause.run(guest);
            source.setGuest(guest); // the action may have rebooted the guest
            for (int p = 0; p < activePairs; p++) {
                guest.transmitNumbered(p, 16); // in flight at the pause
            }
            List<Integer> sections = source.pauseAndStopAndCopy(() -> {
                try {
                    for (int p = 0; p < activePairs && wireDuringDowntime; p++) {
                        wire.sendWithinWindow(p, 16); // queued in the TAP while nobody serves it
                    }
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            });
            DestinationFigures figures;
            try {
                figures = source.awaitDestination();
            } catch (Exception e) {
                // The source only sees silence or a closed socket: say why the destination failed.
                resumed.exceptionally(destinationFailure -> {
                    e.addSuppressed(destinationFailure);
                    return null;
                });
                throw e;
            }
            source.close();
            lastRamPages = source.ram() == null ? 0 : source.ram().pagesSent();
            FakeGuest moved = resumed.get(60, TimeUnit.SECONDS);
            destinationThread.join();
            MigrationReport report = source.migration().report();
            // The source side goes away; the destination is the current side from now on.
            closeCurrentSide();
            current = destination;
            device = destination.device();
            guest = moved;
            assertSame(destination.device().call(0), guest.transport().call(0), "the guest reaches the destination's device");
            return new Migrated(report, figures, sections, destination);
        }
    }

    /** A failed migration: what each side saw. */
    record Failed(Throwable destinationFailure, Throwable sourceFailure, boolean destinationDatapathRunning) {}

    /**
     * A migration whose stream passes through {@code corrupt} on its way out: the destination must
     * refuse it and stay unstarted, and the source must keep the guest (its datapath restarted
     * where it stopped). The rig stays on the source side.
     */
    Failed failedMigration(java.util.function.UnaryOperator<java.nio.channels.WritableByteChannel> corrupt,
            boolean connectionLost) throws Exception {
        try (UnixSocket.Pair pair = UnixSocket.pair()) {
            CompletableFuture<Throwable> destinationFailure = new CompletableFuture<>();
            boolean[] running = new boolean[1];
            Thread destinationThread = Thread.ofPlatform().name("destination").start(() -> {
                try (LocalMigration.Destination d = new LocalMigration.Destination(pair.second())) {
                    try {
                        d.receive();
                        destinationFailure.complete(null);
                    } catch (Throwable t) {
                        destinationFailure.complete(t);
                    }
                    running[0] = d.device().isDatapathRunning();
                } catch (Throwable t) {
                    destinationFailure.complete(t);
                }
            });
            LocalMigration.Source source = new LocalMigration.Source(pair.first(), device, memory(),
                    backends().primary(), guest, corrupt);
            Throwable sourceFailure = null;
            try {
                source.pauseAndStopAndCopy(() -> {});
                if (connectionLost) {
                    pair.first().close(); // the rest of the stream never arrives; neither does an answer
                    throw new java.io.IOException("connection lost");
                }
                source.awaitDestination();
            } catch (Exception e) {
                sourceFailure = e;
                source.migration().resumeAtSource();
            } finally {
                source.close();
            }
            Throwable d = destinationFailure.get(60, TimeUnit.SECONDS);
            destinationThread.join();
            return new Failed(d, sourceFailure, running[0]);
        }
    }

    private void closeCurrentSide() {
        if (current == null) {
            device.close();
            firstBackends.close();
            firstMemory.close();
            firstBackends = null;
            firstMemory = null;
        } else {
            current.close();
        }
    }

    @Override
    public void close() {
        closeCurrentSide();
        wire.close();
        tap.close();
    }
}

package io.vhostffm.programs.demo;

import io.vhostffm.migration.CompilerSettle;
import io.vhostffm.migration.MigrationDestination;
import io.vhostffm.migration.MigrationException;
import io.vhostffm.migration.MigrationPeerException;
import io.vhostffm.migration.MigrationPhase;
import io.vhostffm.migration.net.MigrationDeadlines;
import io.vhostffm.migration.ReceivedMigration;
import io.vhostffm.migration.net.LocalHandoff;
import io.vhostffm.migration.net.NetMigrationDestination;
import io.vhostffm.migration.net.NetMigrationSource;
import io.vhostffm.migration.net.RamPrecopy;
import io.vhostffm.vhost.device.DirtyLog;
import io.vhostffm.migration.net.UnixSocketChannel;
import io.vhostffm.migration.stream.MigrationStreamReader;
import io.vhostffm.migration.stream.MigrationStreamWriter;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.TapDevice;
import io.vhostffm.vhost.os.UnixSocket;
import io.vhostffm.vhost.device.NetBackend;
import io.vhostffm.vhost.device.NetDeviceRuntime;
import io.vhostffm.vhost.device.kernel.VhostNetBackend;
import io.vhostffm.vhost.vhostuser.frontend.VhostUserFrontendBackend;
import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.testkit.FakeGuestState;
import io.vhostffm.testkit.GuestLayout;
import io.vhostffm.testkit.GuestTransport;
import io.vhostffm.testkit.IoctlRecorder;
import io.vhostffm.vhost.virtio.VirtioFeature;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.WritableByteChannel;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.UnaryOperator;
import java.io.UncheckedIOException;

/**
 * A migration of a virtio-net device between two processes on one host (or two threads of one,
 * for tests), over a connected UNIX socket: the guest memory memfds and the TAP's queue fds move
 * with SCM_RIGHTS ({@link LocalHandoff}), then the early-migration stream runs on the same
 * socket, then the paused guest's own state, as a hypervisor carries vCPU state.
 */
public final class LocalMigration {
    private LocalMigration() {}

    /**
     * Where a fault test makes a process fail: each side calls {@link #reached} as it enters a
     * phase, on the thread doing it. The default does nothing.
     */
    @FunctionalInterface
    public interface FaultPoints {
        /** Nothing happens at any point. */
        FaultPoints NONE = point -> {};

        /**
         * The process reached {@code point} (a {@link MigrationPhase}, {@code "ram-precopy"} on the
         * destination's RAM thread, or the demo's {@code MigrationDemo.ACKNOWLEDGED}).
         */
        void reached(String point);
    }

    /** The source half. */
    public static final class Source {
        private final UnixSocket socket;
        private final MigrationDeadlines deadlines;
        private final FaultPoints faults;
        private volatile MigrationPhase phase = MigrationPhase.HANDOFF;
        private final UnixSocketChannel ramChannel;
        private final UnixSocketChannel channel;
        private final NetDeviceRuntime device;
        private FakeGuest guest;
        private final NetMigrationSource migration;
        private FakeGuestState paused;
        private List<Integer> switchoverSections;
        private final RamPrecopy.Source ram;
        private final DirtyLog dirtyLog;
        private long ramFinalPassNanos = -1;

        /**
         * Hands the memory and the backend's endpoint over, and sends the setup state.
         *
         * @param backend the backend whose endpoint moves (its {@link NetBackend#transfer()})
         */
        public Source(UnixSocket socket, NetDeviceRuntime device, MemfdGuestMemory memory, NetBackend backend,
                FakeGuest guest) throws IOException, MigrationException {
            this(socket, null, device, memory, backend, guest, UnaryOperator.identity());
        }

        /**
         * As above, with the migration stream written through {@code outbound} (tests: a channel
         * that corrupts or cuts the stream).
         */
        public Source(UnixSocket socket, NetDeviceRuntime device, MemfdGuestMemory memory, NetBackend backend,
                FakeGuest guest, UnaryOperator<WritableByteChannel> outbound) throws IOException, MigrationException {
            this(socket, null, device, memory, backend, guest, outbound);
        }

        /**
         * As above; with {@code ramSocket} not null the guest memory is not shared but copied
         * (two hosts): the device and the guest mark what they write in a dirty log, round 0 of
         * the RAM precopy goes out now on {@code ramSocket}, {@link #ramPrecopy} sends dirty
         * rounds, and the stop-and-copy sends the final pass once the datapath stopped.
         */
        public Source(UnixSocket socket, UnixSocket ramSocket, NetDeviceRuntime device, MemfdGuestMemory memory,
                NetBackend backend, FakeGuest guest, UnaryOperator<WritableByteChannel> outbound)
                throws IOException, MigrationException {
            this(socket, ramSocket, device, memory, backend, guest, outbound, MigrationDeadlines.defaults(), FaultPoints.NONE);
        }

        /**
         * As above, with the deadlines of every wait for the destination, and {@code faults} told
         * each phase as it begins (fault tests).
         *
         * @throws MigrationPeerException when the destination or the connection failed (the guest
         *     was never paused: it goes on here)
         */
        public Source(UnixSocket socket, UnixSocket ramSocket, NetDeviceRuntime device, MemfdGuestMemory memory,
                NetBackend backend, FakeGuest guest, UnaryOperator<WritableByteChannel> outbound,
                MigrationDeadlines deadlines, FaultPoints faults) throws IOException, MigrationException {
            this.socket = socket;
            this.deadlines = deadlines;
            this.faults = faults;
            this.channel = new UnixSocketChannel(socket, deadlines);
            this.device = device;
            this.guest = guest;
            this.ramChannel = ramSocket == null ? null : new UnixSocketChannel(ramSocket, deadlines);
            DirtyLog log = null;
            try {
                enter(MigrationPhase.HANDOFF);
                LocalHandoff.send(socket, memory, ramSocket == null, backend.transfer());
                if (ramSocket != null) {
                    enter(MigrationPhase.RAM_PRECOPY);
                    log = DirtyLog.covering(memory);
                    device.startDirtyLog(log);
                    guest.setDirtyLog(log);
                    ram = new RamPrecopy.Source(memory, log, ramChannel);
                    ram.sendAll();
                } else {
                    ram = null;
                }
                dirtyLog = log;
                GuestLayout layout = guest.layout();
                this.migration = new NetMigrationSource(device,
                        () -> DemoDevice.queueLayouts(layout, VirtioFeature.EVENT_IDX.in(device.model().driverFeatures()),
                                VirtioFeature.RING_PACKED.in(device.model().driverFeatures())),
                        new MigrationStreamWriter(outbound.apply(channel)));
                migration.setPeer(peer());
                enter(MigrationPhase.SETUP);
                migration.setup();
                // The answers and the commit cross inside the downtime: their schemas are built now.
                Messages.prepare(Readiness.class, FakeGuestState.class, DestinationFigures.class);
                enter(MigrationPhase.PRECOPY);
            } catch (IOException | MigrationException e) {
                // The migration module names a failure of the destination or the connection itself
                // (a MigrationPeerException with its phase); an IOException here is this host's own.
                if (log != null) {
                    guest.setDirtyLog(null);
                    stopDirtyLogQuietly();
                    log.close();
                }
                throw e;
            }
        }

        private void enter(MigrationPhase next) {
            phase = next;
            faults.reached(next.name());
        }

        /** The destination, in words, for error messages. */
        private String peer() {
            return "the destination (" + socket.fd().description() + ")";
        }

        /** The phase the source is in. */
        public MigrationPhase phase() {
            return phase;
        }

        /**
         * RAM precopy rounds (two hosts): dirty pages until a round sends at most
         * {@code smallEnough} pages, or {@code maxRounds} rounds.
         *
         * @return pages of the last round
         */
        public long ramPrecopy(int maxRounds, long smallEnough) throws IOException, MigrationException {
            if (ram == null) {
                return 0;
            }
            MigrationPhase was = phase;
            enter(MigrationPhase.RAM_PRECOPY);
            try {
                return ram.iterate(maxRounds, smallEnough); // a peer failure is named RAM_PRECOPY: the guest never paused
            } finally {
                phase = was;
            }
        }

        /**
         * ns of the final RAM pass inside the stop-and-copy (-1: none). The core's report counts
         * it in the backend stop, the hook it runs in.
         */
        public long ramFinalPassNanos() {
            return ramFinalPassNanos;
        }

        /** The RAM precopy's sender, or null when memory is shared. */
        public RamPrecopy.Source ram() {
            return ram;
        }

        /** The source's migration (precopy deltas flow on their own). */
        public NetMigrationSource migration() {
            return migration;
        }

        /**
         * The guest pauses (its driver state saved), then stop-and-copy. {@code whilePaused} runs
         * after the datapath stopped (e.g. the network keeps sending towards the guest).
         */
        public List<Integer> pauseAndStopAndCopy(Runnable whilePaused) throws IOException, MigrationException {
            paused = guest.saveState();
            try {
                migration.drainPrecopy();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted", e);
            }
            enter(MigrationPhase.STOP_AND_COPY);
            try {
                return stopAndCopy(whilePaused);
            } catch (MigrationException | RuntimeException e) {
                // Before the acknowledgement: the guest stays here, its datapath restarted where it
                // stopped. A failure of the destination or the connection is already named by the
                // migration module: PRECOPY (a delta that could not go out), RAM_PRECOPY (the final
                // pass) or STOP_AND_COPY.
                migration.resumeAtSource();
                throw e;
            }
        }

        private List<Integer> stopAndCopy(Runnable whilePaused) throws IOException, MigrationException {
            switchoverSections = migration.stopAndCopy(() -> {
                if (ram != null) {
                    try {
                        long t = System.nanoTime();
                        ram.finalPass(); // the datapath is stopped and the guest paused: nothing writes any more
                        ramFinalPassNanos = System.nanoTime() - t;
                    } catch (MigrationException e) {
                        // NetMigrationSource finds the MigrationPeerException in the cause and throws it
                        throw new IllegalStateException(e.getMessage(), e);
                    }
                }
                whilePaused.run();
            });
            return switchoverSections;
        }

        /**
         * Waits until the destination says its early load is done (model restored, datapath
         * prestarted): pausing before would count the destination's early load as downtime. Only
         * with a destination that {@link Destination#announceEarlyLoad() announces} it.
         *
         * @return whether the destination's prestart succeeded
         */
        public boolean awaitEarlyLoad() throws IOException {
            boolean prestarted = Messages.receive(channel, EarlyLoaded.class).prestarted();
            rehearseCommit();
            return prestarted;
        }

        /**
         * The source's side of the commit, rehearsed before the pause as the destination rehearses
         * its switchover: the readiness decoded and the guest's state encoded as often as
         * {@link MigrationDestination#REHEARSALS_PROPERTY} says, with the library's rehearsal of
         * the stop-and-copy ({@link NetMigrationSource#rehearseStopAndCopy}), which then waits for
         * the compilations of both: the first commit of this process and every stop-and-copy then
         * run compiled code inside the downtime.
         */
        private void rehearseCommit() {
            int times = MigrationDestination.rehearsals();
            if (times <= 0) {
                return;
            }
            Messages.rehearse(Readiness.class, new Readiness(true, ""), times);
            Messages.rehearse(FakeGuestState.class, guest.saveState(), times);
            migration.rehearseStopAndCopy(); // and then waits for the compilations of both
        }

        /**
         * The destination's answer, then the commit. Until the destination's {@link Readiness}
         * arrived (and while the commit, the paused guest's state, could not be handed to the
         * connection in full, so the destination cannot have it), any failure leaves the guest
         * here: the datapath restarts where it stopped, the caller resumes the guest, and the
         * exception says why ({@link MigrationPeerException#guestStaysAtSource()} true, or a
         * plain refusal). Once the commit went out the guest belongs to the destination: a
         * failure after it is a {@link MigrationPeerException} in phase COMPLETION, and the source
         * never runs the guest again.
         */
        public DestinationFigures awaitDestination() throws IOException, MigrationException {
            enter(MigrationPhase.ACKNOWLEDGEMENT);
            // Encoded while the destination reads and validates the stream, not after its answer:
            // the commit then goes out with one write.
            ByteBuffer commit = Messages.encode(FakeGuestState.class, paused); // the vCPU state
            Readiness readiness;
            try {
                channel.setReadTimeout(deadlines.acknowledgement());
                readiness = Messages.receive(channel, Readiness.class);
                if (readiness.ready()) {
                    Messages.write(channel, commit);
                }
            } catch (IOException | RuntimeException e) {
                migration.resumeAtSource();
                throw MigrationPeerException.of(MigrationPhase.ACKNOWLEDGEMENT, peer(), e);
            }
            if (!readiness.ready()) {
                migration.resumeAtSource();
                throw new MigrationException("the destination refused: " + readiness.failure());
            }
            enter(MigrationPhase.COMPLETION); // from here on the source never runs the guest again
            try {
                migration.awaitAcknowledgement(new MigrationStreamReader(channel, Map.of()));
                return Messages.receive(channel, DestinationFigures.class);
            } catch (MigrationException | IOException | RuntimeException e) {
                if (e instanceof MigrationPeerException p) {
                    // The core names it ACKNOWLEDGEMENT: it knows no commit. The commit went out, so
                    // the guest is the destination's: COMPLETION.
                    throw new MigrationPeerException(MigrationPhase.COMPLETION, p.peer(), p.fault(), p.getCause());
                }
                if (isConnectionFailure(e, channel, null)) {
                    throw MigrationPeerException.of(MigrationPhase.COMPLETION, peer(), e);
                }
                // An explicit refusal after the commit: the destination did not start and will
                // not; the datapath and the guest may go on here.
                if (e instanceof MigrationException refused) {
                    migration.resumeAtSource();
                    throw refused;
                }
                throw new MigrationPeerException(MigrationPhase.COMPLETION, peer(), MigrationPeerException.Fault.IO, e);
            } finally {
                channel.setReadTimeout(deadlines.streamRead());
            }
        }

        /** The guest driving the device now (a guest that rebooted during precopy is a new object). */
        public void setGuest(FakeGuest now) {
            this.guest = now;
            if (dirtyLog != null) {
                now.setDirtyLog(dirtyLog);
            }
        }

        /** The guest's state when it paused. */
        public FakeGuestState pausedGuest() {
            return paused;
        }

        /** The byte channel on the socket, for the caller's own messages afterwards. */
        public UnixSocketChannel channel() {
            return channel;
        }

        /** Stops the precopy thread (and the dirty log of a RAM precopy). */
        public void close() {
            migration.close();
            if (dirtyLog != null) {
                guest.setDirtyLog(null);
                stopDirtyLogQuietly();
                dirtyLog.close();
            }
        }

        private void stopDirtyLogQuietly() {
            try {
                device.stopDirtyLog();
            } catch (IOException | RuntimeException e) {
                // the device may already be gone with the source side
            }
        }
    }

    /** The destination half. */
    public static final class Destination implements AutoCloseable {
        private final UnixSocket socket;
        private final UnixSocketChannel channel;
        private final MemfdGuestMemory memory;
        private final TapDevice tap;
        private final Backends backends;
        private final NetDeviceRuntime device;
        private final NetMigrationDestination migration;
        private final IoctlRecorder ioctls;
        /** The requests of a vhost-user primary (counting, fault injection), or null. */
        private final VhostUserMessages messages;
        private final List<Runnable> beforeSwitchover = new CopyOnWriteArrayList<>();
        private ReceivedMigration received;
        private DestinationFigures figures;
        private MigrationPeerException acknowledgementLost;

        private final Thread ramReceiver;
        private volatile Throwable ramFailure;
        private final MigrationDeadlines deadlines;
        private final FaultPoints faults;
        private final UnixSocket ramSocket;
        private UnixSocketChannel ramChannel;
        private final MigrationDestination protocol;
        /** The source's commit (the paused guest's state); null until it arrived. */
        private volatile FakeGuestState committed;

        /** The source, in words, for error messages. */
        private String peer() {
            return "the source (" + socket.fd().description() + ")";
        }

        /** Receives the handoff and builds the device on the received memory and TAP. */
        public Destination(UnixSocket socket) throws IOException, MigrationException {
            this(socket, null);
        }

        /**
         * As above, with a RAM socket (or null), the deadlines of every wait for the source, and
         * {@code faults} told each phase as it begins (fault tests).
         *
         * @throws MigrationPeerException when the source or the connection failed during the
         *     handoff (nothing was built)
         */
        public Destination(UnixSocket socket, UnixSocket ramSocket, MigrationDeadlines deadlines, FaultPoints faults)
                throws IOException, MigrationException {
            this(socket, ramSocket, deadlines, faults, Backends.DEFAULT);
        }

        /**
         * As above, the backends opened on the received TAP by {@code opener} (e.g. {@link
         * Backends#vhostUser}: this side's own vhost-user backend process).
         */
        public Destination(UnixSocket socket, UnixSocket ramSocket, MigrationDeadlines deadlines, FaultPoints faults,
                Backends.Opener opener) throws IOException, MigrationException {
            this(socket, ramSocket, deadlines, faults, handoff(socket, deadlines, faults), opener);
        }

        private static LocalHandoff.Received handoff(UnixSocket socket, MigrationDeadlines deadlines, FaultPoints faults)
                throws IOException, MigrationException {
            faults.reached(MigrationPhase.HANDOFF.name());
            return LocalHandoff.receive(socket, deadlines.handoff()); // names a failed source: HANDOFF
        }

        /**
         * As above; with {@code ramSocket} not null the guest memory is this process's own and
         * filled by RAM precopy from that socket; the switchover waits for its final pass.
         */
        public Destination(UnixSocket socket, UnixSocket ramSocket) throws IOException, MigrationException {
            this(socket, ramSocket, MigrationDeadlines.defaults(), FaultPoints.NONE);
        }

        private Destination(UnixSocket socket, UnixSocket ramSocket, MigrationDeadlines deadlines, FaultPoints faults,
                LocalHandoff.Received handoff, Backends.Opener opener) throws IOException, MigrationException {
            this.socket = socket;
            this.ramSocket = ramSocket;
            this.deadlines = deadlines;
            this.faults = faults;
            this.channel = new UnixSocketChannel(socket, deadlines);
            this.memory = handoff.memory();
            this.tap = TapDevice.fromQueues(handoff.backend().name(), handoff.backend().fds());
            this.backends = opener.open(tap);
            int pairs = tap.queues().size();
            this.device = new NetDeviceRuntime(DemoDevice.options(pairs, backends.offerAgainst()),
                    backends.offerAgainst(), memory, backends.primary());
            this.migration = new NetMigrationDestination(device, backends.fallback());
            if (backends.primary() instanceof VhostNetBackend kernel) {
                this.ioctls = new IoctlRecorder();
                ioctls.attach(kernel, pairs);
                this.messages = null;
            } else if (backends.primary() instanceof VhostUserFrontendBackend frontend) {
                this.ioctls = null;
                this.messages = new VhostUserMessages();
                frontend.setMessageObserver(messages);
            } else {
                this.ioctls = null;
                this.messages = null;
            }
            if (ramSocket != null) {
                ramChannel = new UnixSocketChannel(ramSocket, deadlines);
                RamPrecopy.Destination ram = new RamPrecopy.Destination(memory, ramChannel);
                ramReceiver = Thread.ofPlatform().daemon().name("ram-precopy").start(() -> {
                    try {
                        faults.reached("ram-precopy");
                        ram.receiveAll();
                    } catch (Throwable t) {
                        ramFailure = t;
                    }
                });
            } else {
                ramReceiver = null;
            }
            this.protocol = migration.protocol(); // one instance: its phase and listener are this migration's
            protocol.setPhaseListener(phase -> faults.reached(phase.name()));
            protocol.setPeer(peer());
            protocol.setRehearsalLoop(UnixSocketChannel::loop); // the switchover read rehearsed through the connection's path
            // The commit and the answers cross inside the downtime: their schemas are built now.
            Messages.prepare(Readiness.class, FakeGuestState.class, DestinationFigures.class);
            migration.setBeforeSwitchover(() -> {
                awaitRam();
                awaitCommit();
                for (Runnable hook : beforeSwitchover) { // a loop: a method reference would link in the window
                    hook.run();
                }
                if (ioctls != null) {
                    ioctls.clear();
                }
                if (messages != null) {
                    messages.clear();
                }
            });
        }

        /**
         * Once the early load is done, tells the source (which must then {@link
         * Source#awaitEarlyLoad() wait for it}) that it may pause the guest.
         */
        public void announceEarlyLoad() {
            migration.setAfterEarlyLoad(() -> {
                rehearseCommit();
                try {
                    Messages.send(channel, EarlyLoaded.class, new EarlyLoaded(migration.prestartSucceeded()));
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            });
        }

        /**
         * The destination's side of the commit, rehearsed before it tells the source it may pause,
         * as the source rehearses its own: the readiness encoded and a guest state of this
         * guest's shape ({@link FakeGuestState#shapedLike}) encoded and decoded as often as {@link
         * MigrationDestination#rehearsals()} says, then the compilations waited for ({@link
         * CompilerSettle}; the library's own wait came before this hook). A fresh destination
         * decoded its first commit in 0.6-0.9 ms against 0.1-0.2 ms later.
         */
        private void rehearseCommit() {
            int times = MigrationDestination.rehearsals();
            if (times <= 0) {
                return;
            }
            Messages.rehearse(Readiness.class, new Readiness(true, ""), times);
            Messages.rehearse(FakeGuestState.class, FakeGuestState.shapedLike(DemoDevice.layout(tap.queues().size())),
                    times);
            CompilerSettle.await(MigrationDestination.compilerSettle());
        }

        /**
         * Adds {@code hook} to what runs right before the switchover, after the source's commit
         * and before the switchover's own ioctls are counted. The harness owns the destination's
         * single before-switchover hook (it sends the readiness and waits for the commit there),
         * so a caller adds to it here instead of replacing it.
         */
        public void addBeforeSwitchover(Runnable hook) {
            beforeSwitchover.add(Objects.requireNonNull(hook, "hook"));
        }

        /**
         * The stream validated and the RAM is complete: tell the source, and start nothing until
         * its commit (the paused guest's state) arrived. Without it the switchover fails here,
         * before the device started.
         */
        private void awaitCommit() {
            try {
                Messages.send(channel, Readiness.class, new Readiness(true, ""));
                channel.setReadTimeout(deadlines.acknowledgement());
                FakeGuestState state = Messages.receive(channel, FakeGuestState.class);
                channel.setReadTimeout(deadlines.streamRead());
                faults.reached(MigrationPhase.COMPLETION.name());
                committed = state;
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }

        /** Waits for the RAM precopy's final pass (the switchover must not start on stale memory). */
        private void awaitRam() {
            if (ramReceiver == null) {
                return;
            }
            try {
                // each read of the RAM connection has its deadline: the receiver ends by itself
                ramReceiver.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted waiting for the RAM precopy", e);
            }
            if (ramFailure != null) {
                throw new IllegalStateException("RAM precopy failed: " + ramFailure, ramFailure);
            }
        }

        /** The request recorder of a vhost-user primary (fault injection, counting), or null. */
        public VhostUserMessages messages() {
            return messages;
        }

        /** The ioctl recorder of a kernel primary (fault injection, counting), or null. */
        public IoctlRecorder ioctls() {
            return ioctls;
        }

        /** The destination's migration. */
        public NetMigrationDestination migration() {
            return migration;
        }

        /** The device. */
        public NetDeviceRuntime device() {
            return device;
        }

        /** The backends. */
        public Backends backends() {
            return backends;
        }

        /** The TAP rebuilt from the received queue fds. */
        public TapDevice tap() {
            return tap;
        }

        /** The shared guest memory. */
        public MemfdGuestMemory memory() {
            return memory;
        }

        /**
         * Receives the stream, starts the device, answers; then receives the paused guest's
         * state and resumes the guest here.
         *
         * @throws MigrationException when the stream was malformed or the device did not start
         *     (the negative answer went back: the source keeps the guest)
         */
        public FakeGuest receive() throws IOException, MigrationException {
            MigrationStreamWriter back = new MigrationStreamWriter(channel);
            try {
                received = protocol.receive(protocol.reader(channel));
            } catch (MigrationException e) {
                throw refuse(protocol, back, e);
            }
            // The device runs and the guest is ours: a source that vanishes now changes nothing here.
            // The switchover's work on the primary: vhost ioctls, or vhost-user requests.
            List<String> switchoverIoctls = ioctls != null ? ioctls.names()
                    : messages != null ? messages.names() : List.of();
            String fallbackReason = migration.fallbackReason();
            figures = new DestinationFigures(String.valueOf(migration.path()), datapath(), fallbackReason == null ? ""
                    : fallbackReason, received.earlyLoadNanos(), received.switchoverNanos(), migration.deviceStartNanos(),
                    switchoverIoctls, migration.fullReloadReasons(), migration.fineChanges());
            FakeGuest guest = FakeGuest.resume(GuestTransport.of(device), memory, DemoDevice.layout(tap.queues().size()),
                    committed);
            try {
                MigrationDestination.acknowledge(back, received);
                Messages.send(channel, DestinationFigures.class, figures);
            } catch (MigrationException | IOException e) {
                // The commit arrived before the device started: the guest is ours whatever the source hears.
                acknowledgementLost = new MigrationPeerException(MigrationPhase.COMPLETION, peer(),
                        e instanceof MigrationPeerException p ? p.fault() : MigrationPeerException.classify(e),
                        e instanceof MigrationPeerException ? e.getCause() : e);
                System.getLogger(LocalMigration.class.getName()).log(System.Logger.Level.WARNING,
                        "migration: the source did not get the acknowledgement; the guest runs here: "
                                + acknowledgementLost.getMessage());
            }
            return guest;
        }

        /**
         * After {@link #receive()} returned the guest: why the acknowledgement (or the figures after
         * it) could not reach the source (phase COMPLETION: the source had committed, the guest runs
         * here all the same), or null when it went out.
         */
        public MigrationPeerException acknowledgementLost() {
            return acknowledgementLost;
        }

        /**
         * The migration failed here. Before the commit: nothing started; the source hears "not
         * ready" (a refusal) or, when it is the connection that failed, nothing, and the socket is
         * shut down so that a commit sent late fails at the source too. After the commit (the
         * device failed to start): the negative acknowledgement.
         */
        private MigrationException refuse(MigrationDestination protocol, MigrationStreamWriter back, MigrationException e) {
            MigrationException named;
            if (e instanceof MigrationPeerException) {
                named = e; // the migration module named it: the stream's connection failed
            } else if (ramFailure instanceof MigrationPeerException ram) {
                named = ram; // the RAM connection failed: the switchover's wait for it gave up
            } else if (isConnectionFailure(e, channel, ramChannel)) {
                // the harness's own messages (the readiness, the commit) on the same connection
                named = MigrationPeerException.of(protocol.phase(), peer(), channel.failure() != null ? channel.failure() : e);
            } else {
                named = e;
            }
            boolean connection = named instanceof MigrationPeerException;
            try {
                if (connection) {
                    shutdownQuietly(socket);
                    shutdownQuietly(ramSocket);
                } else if (committed == null) {
                    Messages.send(channel, Readiness.class, new Readiness(false, e.getMessage()));
                } else {
                    MigrationDestination.acknowledgeFailure(back, e);
                }
            } catch (IOException | MigrationException | RuntimeException answerLost) {
                named.addSuppressed(answerLost);
            }
            return named;
        }

        /** The datapath running now, in plain words. */
        public String datapath() {
            return device.backend() instanceof VhostNetBackend ? "kernel vhost-net"
                    : device.backend() instanceof VhostUserFrontendBackend ? "vhost-user backend process"
                    : "userspace datapath";
        }

        /** What the core received. */
        public ReceivedMigration received() {
            return received;
        }

        /** What went back to the source. */
        public DestinationFigures figures() {
            return figures;
        }

        /** The byte channel on the socket. */
        public UnixSocketChannel channel() {
            return channel;
        }

        @Override
        public void close() {
            if (ramReceiver != null) {
                shutdownQuietly(ramSocket); // a receiver still waiting ends now
                try {
                    ramReceiver.join();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            device.close();
            backends.close();
            tap.close();
            memory.close();
        }
    }

    /**
     * Whether {@code failure} is the peer's or the connection's (a read or write failed, timed out
     * or met the end of stream) rather than a malformed stream or a device failure: the channels
     * remember their own failures.
     */
    static boolean isConnectionFailure(Throwable failure, UnixSocketChannel main, UnixSocketChannel ram) {
        if ((main != null && main.failure() != null) || (ram != null && ram.failure() != null)) {
            return true;
        }
        return MigrationPeerException.classify(failure) != MigrationPeerException.Fault.IO;
    }

    private static void shutdownQuietly(UnixSocket socket) {
        if (socket == null) {
            return;
        }
        try {
            socket.shutdown();
        } catch (IOException | RuntimeException e) {
            // already closed, or the peer already gone: the connection is over either way
        }
    }
}

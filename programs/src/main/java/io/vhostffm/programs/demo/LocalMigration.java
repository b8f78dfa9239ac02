package io.vhostffm.programs.demo;

import io.vhostffm.migration.MigrationDestination;
import io.vhostffm.migration.MigrationException;
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
import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.testkit.FakeGuestState;
import io.vhostffm.testkit.GuestLayout;
import io.vhostffm.testkit.GuestTransport;
import io.vhostffm.testkit.IoctlRecorder;
import io.vhostffm.vhost.virtio.VirtioFeature;
import java.io.IOException;
import java.nio.channels.WritableByteChannel;
import java.util.function.UnaryOperator;
import java.util.List;
import java.util.Map;
import java.io.UncheckedIOException;

/**
 * A migration of a virtio-net device between two processes on one host (or two threads of one,
 * for tests), over a connected UNIX socket: the guest memory memfds and the TAP's queue fds move
 * with SCM_RIGHTS ({@link LocalHandoff}), then the early-migration stream runs on the same
 * socket, then the paused guest's own state, as a hypervisor carries vCPU state.
 */
public final class LocalMigration {
    private LocalMigration() {}

    /** The source half. */
    public static final class Source {
        private final UnixSocket socket;
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
                FakeGuest guest) throws IOException {
            this(socket, null, device, memory, backend, guest, UnaryOperator.identity());
        }

        /**
         * As above, with the migration stream written through {@code outbound} (tests: a channel
         * that corrupts or cuts the stream).
         */
        public Source(UnixSocket socket, NetDeviceRuntime device, MemfdGuestMemory memory, NetBackend backend,
                FakeGuest guest, UnaryOperator<WritableByteChannel> outbound) throws IOException {
            this(socket, null, device, memory, backend, guest, outbound);
        }

        /**
         * As above; with {@code ramSocket} not null the guest memory is not shared but copied
         * (two hosts): the device and the guest mark what they write in a dirty log, round 0 of
         * the RAM precopy goes out now on {@code ramSocket}, {@link #ramPrecopy} sends dirty
         * rounds, and the stop-and-copy sends the final pass once the datapath stopped.
         */
        public Source(UnixSocket socket, UnixSocket ramSocket, NetDeviceRuntime device, MemfdGuestMemory memory,
                NetBackend backend, FakeGuest guest, UnaryOperator<WritableByteChannel> outbound) throws IOException {
            this.socket = socket;
            this.channel = new UnixSocketChannel(socket);
            this.device = device;
            this.guest = guest;
            LocalHandoff.send(socket, memory, ramSocket == null, backend.transfer());
            if (ramSocket != null) {
                dirtyLog = DirtyLog.covering(memory);
                device.startDirtyLog(dirtyLog);
                guest.setDirtyLog(dirtyLog);
                ram = new RamPrecopy.Source(memory, dirtyLog, new UnixSocketChannel(ramSocket));
                ram.sendAll();
            } else {
                dirtyLog = null;
                ram = null;
            }
            GuestLayout layout = guest.layout();
            this.migration = new NetMigrationSource(device,
                    () -> DemoDevice.queueLayouts(layout, VirtioFeature.EVENT_IDX.in(device.model().driverFeatures())),
                    new MigrationStreamWriter(outbound.apply(channel)));
            migration.setup();
        }

        /**
         * RAM precopy rounds (two hosts): dirty pages until a round sends at most
         * {@code smallEnough} pages, or {@code maxRounds} rounds.
         *
         * @return pages of the last round
         */
        public long ramPrecopy(int maxRounds, long smallEnough) throws IOException {
            return ram == null ? 0 : ram.iterate(maxRounds, smallEnough);
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
            switchoverSections = migration.stopAndCopy(() -> {
                if (ram != null) {
                    try {
                        long t = System.nanoTime();
                        ram.finalPass(); // the datapath is stopped and the guest paused: nothing writes any more
                        ramFinalPassNanos = System.nanoTime() - t;
                    } catch (IOException e) {
                        throw new UncheckedIOException(e);
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
            return Messages.receive(channel, EarlyLoaded.class).prestarted();
        }

        /**
         * The destination's answer. When it did not start: the source's datapath restarts where it
         * stopped and the guest goes on here (the caller resumes it), and the exception says why.
         */
        public DestinationFigures awaitDestination() throws IOException, MigrationException {
            try {
                migration.awaitAcknowledgement(new MigrationStreamReader(channel, Map.of()));
            } catch (MigrationException e) {
                migration.resumeAtSource();
                throw e;
            } catch (RuntimeException e) {
                migration.resumeAtSource();
                throw new MigrationException("no answer from the destination: " + e, e);
            }
            DestinationFigures figures = Messages.receive(channel, DestinationFigures.class);
            Messages.send(channel, FakeGuestState.class, paused); // the vCPU state, as it were
            return figures;
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
                try {
                    device.stopDirtyLog();
                } catch (IOException | RuntimeException e) {
                    // the device may already be gone with the source side
                }
                dirtyLog.close();
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
        private ReceivedMigration received;
        private DestinationFigures figures;

        private final Thread ramReceiver;
        private volatile Throwable ramFailure;

        /** Receives the handoff and builds the device on the received memory and TAP. */
        public Destination(UnixSocket socket) throws IOException, MigrationException {
            this(socket, null);
        }

        /**
         * As above; with {@code ramSocket} not null the guest memory is this process's own and
         * filled by RAM precopy from that socket; the switchover waits for its final pass.
         */
        public Destination(UnixSocket socket, UnixSocket ramSocket) throws IOException, MigrationException {
            this.socket = socket;
            this.channel = new UnixSocketChannel(socket);
            LocalHandoff.Received handoff = LocalHandoff.receive(socket);
            this.memory = handoff.memory();
            this.tap = TapDevice.fromQueues(handoff.backend().name(), handoff.backend().fds());
            this.backends = Backends.open(tap);
            int pairs = tap.queues().size();
            this.device = new NetDeviceRuntime(DemoDevice.options(pairs), backends.offerAgainst(), memory, backends.primary());
            this.migration = new NetMigrationDestination(device, backends.fallback());
            if (backends.primary() instanceof VhostNetBackend kernel) {
                this.ioctls = new IoctlRecorder();
                ioctls.attach(kernel, pairs);
            } else {
                this.ioctls = null;
            }
            if (ramSocket != null) {
                RamPrecopy.Destination ram = new RamPrecopy.Destination(memory, new UnixSocketChannel(ramSocket));
                ramReceiver = Thread.ofPlatform().daemon().name("ram-precopy").start(() -> {
                    try {
                        ram.receiveAll();
                    } catch (Throwable t) {
                        ramFailure = t;
                    }
                });
            } else {
                ramReceiver = null;
            }
            migration.setBeforeSwitchover(() -> {
                awaitRam();
                if (ioctls != null) {
                    ioctls.clear();
                }
            });
        }

        /**
         * Once the early load is done, tells the source (which must then {@link
         * Source#awaitEarlyLoad() wait for it}) that it may pause the guest.
         */
        public void announceEarlyLoad() {
            migration.setAfterEarlyLoad(() -> {
                try {
                    Messages.send(channel, EarlyLoaded.class, new EarlyLoaded(migration.prestartSucceeded()));
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            });
        }

        /** Waits for the RAM precopy's final pass (the switchover must not start on stale memory). */
        private void awaitRam() {
            if (ramReceiver == null) {
                return;
            }
            try {
                ramReceiver.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted waiting for the RAM precopy", e);
            }
            if (ramFailure != null) {
                throw new IllegalStateException("RAM precopy failed: " + ramFailure, ramFailure);
            }
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
            MigrationDestination protocol = migration.protocol();
            MigrationStreamWriter back = new MigrationStreamWriter(channel);
            try {
                received = protocol.receive(protocol.reader(channel));
            } catch (MigrationException e) {
                MigrationDestination.acknowledgeFailure(back, e);
                throw e;
            }
            List<String> switchoverIoctls = ioctls == null ? List.of() : ioctls.names();
            MigrationDestination.acknowledge(back, received);
            String fallbackReason = migration.fallbackReason();
            figures = new DestinationFigures(String.valueOf(migration.path()), datapath(), fallbackReason == null ? ""
                    : fallbackReason, received.earlyLoadNanos(), received.switchoverNanos(), migration.deviceStartNanos(),
                    switchoverIoctls, migration.fullReloadReasons(), migration.fineChanges());
            Messages.send(channel, DestinationFigures.class, figures);
            FakeGuestState state = Messages.receive(channel, FakeGuestState.class);
            return FakeGuest.resume(GuestTransport.of(device), memory, DemoDevice.layout(tap.queues().size()), state);
        }

        /** The datapath running now, in plain words. */
        public String datapath() {
            return device.backend() instanceof VhostNetBackend ? "kernel vhost-net" : "userspace datapath";
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
            device.close();
            backends.close();
            tap.close();
            memory.close();
        }
    }
}

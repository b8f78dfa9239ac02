package io.vhostffm.migration.net;

import io.vhostffm.migration.CompilerSettle;
import io.vhostffm.migration.DeviceStateSection;
import io.vhostffm.migration.FinalPositions;
import io.vhostffm.migration.MigrationDestination;
import io.vhostffm.migration.MigrationException;
import io.vhostffm.migration.MigrationPeerException;
import io.vhostffm.migration.MigrationReport;
import io.vhostffm.migration.MigrationSource;
import io.vhostffm.migration.stream.MigrationStreamReader;
import io.vhostffm.migration.stream.MigrationStreamWriter;
import io.vhostffm.vhost.device.DatapathState;
import io.vhostffm.vhost.device.NetDeviceRuntime;
import io.vhostffm.vhost.virtio.net.VirtioNetState;
import io.vhostffm.vhost.virtio.net.VirtioState;
import io.vhostffm.vring.QueuePosition;
import io.vhostffm.vring.QueueState;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.function.Supplier;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;

/**
 * The source side of a virtio-net early live migration, on top of the generic {@link
 * MigrationSource}:
 *
 * <ol>
 * <li>{@link #setup()}: the full state of the four {@link NetSections} goes out and is
 *     snapshotted; from now on every committed change of the device model
 *     ({@code VirtioNetDevice.addChangeObserver}: a control command, a status write, a link change)
 *     sends a precopy delta at once, from a thread of its own (never under the device's lock).</li>
 * <li>{@link #stopAndCopy(Runnable)}, with the guest paused by the caller: stops the datapath
 *     (NET_SET_BACKEND -1, GET_VRING_BASE; the control queue too), compares each section with
 *     its snapshot, and sends only the final indices when nothing changed, else the changed
 *     sections and the indices.</li>
 * <li>{@link #awaitAcknowledgement}: the destination started (the source may drop the device),
 *     or it did not ({@link #resumeAtSource()} restarts the datapath where it stopped).</li>
 * </ol>
 */
public final class NetMigrationSource implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(NetMigrationSource.class.getName());

    private final NetDeviceRuntime device;
    private final Supplier<QueueLayouts> transportQueues;
    private final MigrationSource source;
    private final ExecutorService precopy;
    private final Object lock = new Object();

    // Read by the change observer without the lock: the observer runs under the device's lock,
    // and the precopy thread takes this lock before the device's (capture), so the observer must
    // never wait for this lock.
    private volatile boolean precopyActive;
    private volatile boolean precopyDeltas = true;
    // guarded by lock
    private DatapathState stopped;
    private Exception precopyFailure;
    private int precopyDeltasSent;

    /**
     * @param device the running device
     * @param transportQueues the transport's queue registers of every configured virtqueue (the
     *     hypervisor owns them: they are not device model state)
     * @param out the stream to the destination
     */
    public NetMigrationSource(NetDeviceRuntime device, Supplier<QueueLayouts> transportQueues, MigrationStreamWriter out) {
        this.device = Objects.requireNonNull(device, "device");
        this.transportQueues = Objects.requireNonNull(transportQueues, "transportQueues");
        this.source = new MigrationSource(out, sections());
        this.precopy = Executors.newSingleThreadExecutor(r -> Thread.ofPlatform().daemon().name("migration-precopy").unstarted(r));
        device.model().addChangeObserver(this::deviceChanged);
    }

    /** The four sections, source side. */
    private List<DeviceStateSection<?>> sections() {
        return List.of(
                DeviceStateSection.onSource(NetSections.VIRTIO, NetSections.VIRTIO_NAME, VirtioState.class,
                        () -> device.model().snapshot().virtio()),
                DeviceStateSection.onSource(NetSections.QUEUES, NetSections.QUEUES_NAME, QueueLayouts.class,
                        transportQueues),
                DeviceStateSection.onSource(NetSections.NET, NetSections.NET_NAME, VirtioNetState.class,
                        () -> device.model().netState()),
                DeviceStateSection.onSource(NetSections.PENDING_TX, NetSections.PENDING_TX_NAME, PendingTx.class,
                        this::pendingTx));
    }

    /** Zero while the datapath runs (it owns what it took); the stopped tx queues' in-flight chains after stop. */
    private PendingTx pendingTx() {
        int pairs = transportQueues.get().dataQueues().size() / 2;
        synchronized (lock) {
            if (stopped == null) {
                return PendingTx.none(pairs);
            }
            int[] pending = new int[pairs];
            List<QueueState> data = stopped.dataQueues();
            for (int p = 0; p < pairs && 2 * p + 1 < data.size(); p++) {
                pending[p] = data.get(2 * p + 1).position().inuse();
            }
            return new PendingTx(pending);
        }
    }

    /** Who the destination is, in words, for {@link io.vhostffm.migration.MigrationPeerException}s. */
    public void setPeer(String words) {
        source.setPeer(words);
    }

    /**
     * Setup: manifest and full state; precopy deltas start flowing after it.
     *
     * @throws io.vhostffm.migration.MigrationPeerException (phase SETUP) when the destination or
     *     the connection failed
     */
    public void setup() throws MigrationException {
        synchronized (lock) {
            source.setup();
            precopyActive = true;
        }
    }

    /**
     * With false, changes during precopy are not sent at once but found at stop-and-copy (as the
     * QEMU RFC does); for tests and comparison. Default true.
     */
    public void setPrecopyDeltas(boolean enabled) {
        precopyDeltas = enabled;
    }

    /**
     * The model's change observer: runs under the device lock, so it takes no lock of ours and
     * only schedules the send (lock order everywhere: this source's lock, then the device's).
     */
    private void deviceChanged() {
        if (!precopyActive || !precopyDeltas) {
            return;
        }
        try {
            precopy.execute(this::sendPrecopyDelta);
        } catch (RejectedExecutionException closed) {
            // the migration is over; nothing to send
        }
    }

    private void sendPrecopyDelta() {
        synchronized (lock) {
            if (!precopyActive) {
                return; // stop-and-copy began: its comparison catches the change
            }
            try {
                if (!source.sendPrecopyDelta().isEmpty()) {
                    precopyDeltasSent++;
                }
            } catch (MigrationException | RuntimeException e) {
                precopyActive = false;
                precopyFailure = e;
                LOG.log(Level.WARNING, "migration: precopy delta failed; the migration will fail at stop-and-copy", e);
            }
        }
    }

    /**
     * Precopy deltas sent so far (each one message on the stream).
     */
    public int precopyDeltasSent() {
        synchronized (lock) {
            return precopyDeltasSent;
        }
    }

    /**
     * Rehearses the stop-and-copy's compare and encode during precopy, as often as
     * {@link MigrationDestination#REHEARSALS_PROPERTY} says ({@link MigrationSource#rehearseStopAndCopy}:
     * nothing is sent, remembered or stopped; the final indices encoded are the queues' initial
     * positions, the encoder's code is the same for any), then waits for the compilations it
     * queued ({@link CompilerSettle}, bounded by {@link MigrationDestination#COMPILER_SETTLE_PROPERTY}).
     * Call it shortly before the pause (e.g. once the destination's early load is done): the
     * stop-and-copy then runs compiled code inside the downtime. Without effect outside precopy.
     */
    public void rehearseStopAndCopy() {
        int times = MigrationDestination.rehearsals();
        if (times <= 0) {
            return;
        }
        synchronized (lock) {
            if (!precopyActive) {
                return;
            }
            source.rehearseStopAndCopy(times, initialPositions(transportQueues.get()));
        }
        CompilerSettle.await(MigrationDestination.compilerSettle());
    }

    /** Every queue of {@code layouts} at its initial position: a rehearsal's final indices. */
    private static FinalPositions initialPositions(QueueLayouts layouts) {
        List<FinalPositions.Entry> queues = new ArrayList<>();
        for (QueueLayout q : layouts.dataQueues()) {
            queues.add(new FinalPositions.Entry(q.queue(), QueuePosition.initial(q.packed())));
        }
        for (QueueLayout q : layouts.controlQueue()) {
            queues.add(new FinalPositions.Entry(q.queue(), QueuePosition.initial(q.packed())));
        }
        return new FinalPositions(queues);
    }

    /**
     * Waits until every change observed so far was compared and, if it differed, sent.
     */
    public void drainPrecopy() throws InterruptedException {
        try {
            precopy.submit(() -> {}).get();
        } catch (ExecutionException e) {
            throw new IllegalStateException(e.getCause());
        }
    }

    /**
     * Stop-and-copy. The caller has paused the guest's vCPUs. Stops the datapath, runs
     * {@code afterBackendStop} (e.g. the final RAM pass, now that the datapath writes no more),
     * compares and sends.
     *
     * @return the section ids sent; empty = no delta (only the final indices went out)
     * @throws MigrationException when the datapath could not be stopped, or a precopy delta had
     *     failed (the guest stays here: {@link #resumeAtSource()})
     * @throws io.vhostffm.migration.MigrationPeerException when the destination or the connection
     *     failed: in phase PRECOPY when a precopy delta could not be sent, else STOP_AND_COPY (the
     *     guest stays here)
     */
    public List<Integer> stopAndCopy(Runnable afterBackendStop) throws MigrationException {
        synchronized (lock) {
            precopyActive = false;
            if (precopyFailure instanceof MigrationPeerException p) {
                // the delta failed on the precopy thread: the same failure, thrown on the caller's
                throw new MigrationPeerException(p.phase(), p.peer(), p.fault(), p.getCause());
            }
            if (precopyFailure != null) {
                throw new MigrationException("a precopy delta failed: " + precopyFailure.getMessage(), precopyFailure);
            }
            try {
                return source.stopAndCopy(() -> {
                    // Quiesced, not joined: inside the downtime only the queues' final state
                    // matters; the threads end meanwhile and are waited for after the stream.
                    DatapathState state = device.isDatapathRunning() ? device.quiesceDatapath() : null;
                    stopped = state;
                    if (afterBackendStop != null) {
                        afterBackendStop.run();
                    }
                    return finalPositions(state);
                });
            } catch (MigrationException e) {
                // The hook (e.g. the final RAM pass) failed on its connection: name that, not the backend.
                for (Throwable t = e.getCause(); t != null && !(e instanceof MigrationPeerException); t = t.getCause()) {
                    if (t instanceof MigrationPeerException p) {
                        throw new MigrationPeerException(p.phase(), p.peer(), p.fault(), p.getCause());
                    }
                }
                throw e;
            }
        }
    }

    /** The final indices of every queue the datapath stopped with (none when it never ran). */
    static FinalPositions finalPositions(DatapathState state) {
        List<FinalPositions.Entry> queues = new ArrayList<>();
        if (state != null) {
            for (int i = 0; i < state.dataQueues().size(); i++) {
                queues.add(indicesOf(i, state.dataQueues().get(i)));
            }
            if (state.controlQueue() != null) {
                queues.add(indicesOf(state.controlQueueIndex(), state.controlQueue()));
            }
        }
        return new FinalPositions(queues);
    }

    private static FinalPositions.Entry indicesOf(int queue, QueueState s) {
        return new FinalPositions.Entry(queue, s.position());
    }

    /** The datapath's state at stop-and-copy, or null before it (or when it was not running). */
    public DatapathState stoppedState() {
        synchronized (lock) {
            return stopped;
        }
    }

    /** Reads the destination's answer; a {@link MigrationException} means the guest stays here. */
    public void awaitAcknowledgement(MigrationStreamReader back) throws MigrationException {
        try {
            source.awaitAcknowledgement(back);
        } finally {
            // The stop-and-copy quiesced the datapath; its threads have had the destination's
            // whole switchover to end. Waiting here (bounded) leaves the device with none.
            device.awaitDatapathStopped();
        }
    }

    /**
     * The migration failed after stop-and-copy: restarts the datapath exactly where it stopped,
     * so the guest resumes here having lost nothing.
     */
    public void resumeAtSource() throws IOException {
        synchronized (lock) {
            if (stopped != null && !device.isDatapathRunning()) {
                // The stop-and-copy quiesced the datapath: its threads (the control queue's
                // among them) end before the new ones start, so nothing of them outlives the resume.
                device.awaitDatapathStopped();
                device.startDatapath(stopped);
            }
            stopped = null;
        }
    }

    /** The source's figures (and the destination's, after the acknowledgement). */
    public MigrationReport report() {
        return source.report();
    }

    /** Stops the precopy thread; the device is not touched. */
    @Override
    public void close() {
        synchronized (lock) {
            precopyActive = false;
        }
        precopy.shutdownNow();
        try {
            // Bounded: the precopy thread only encodes and writes a delta, each write with its deadline.
            if (!precopy.awaitTermination(PRECOPY_THREAD_END_SECONDS, TimeUnit.SECONDS)) {
                LOG.log(Level.WARNING, "migration: the precopy thread did not end within "
                        + PRECOPY_THREAD_END_SECONDS + " s of close");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** How long {@link #close} waits for the precopy thread to end. */
    private static final long PRECOPY_THREAD_END_SECONDS = 10;
}

package io.vhostffm.migration.net;

import io.vhostffm.migration.DeviceStateSection;
import io.vhostffm.migration.DeviceSwitchover;
import io.vhostffm.migration.FinalPositions;
import io.vhostffm.migration.MigrationDestination;
import io.vhostffm.migration.Switchover;
import io.vhostffm.migration.SwitchoverSteps;
import io.vhostffm.vhost.device.DatapathState;
import io.vhostffm.vhost.device.NetBackend;
import io.vhostffm.vhost.device.NetDeviceRuntime;
import io.vhostffm.vhost.virtio.DeviceStatus;
import io.vhostffm.vhost.virtio.net.InvalidDeviceStateException;
import io.vhostffm.vhost.virtio.net.NetDeviceState;
import io.vhostffm.vhost.virtio.net.VirtioNetState;
import io.vhostffm.vhost.virtio.net.VirtioState;
import io.vhostffm.vring.QueuePosition;
import io.vhostffm.vring.QueueState;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;

/**
 * The destination side of a virtio-net early live migration: the four {@link NetSections} and the
 * switchover, driving a {@link NetDeviceRuntime} whose backend is the primary (kernel vhost-net,
 * usually) and an optional fallback backend (the userspace datapath) on the same endpoint.
 *
 * <h2>Early load (guest still running at the source)</h2>
 * The model is restored from the early state (checked field by field), the transport's queue
 * registers set, and the datapath prestarted without binding a backend (kernel: SET_FEATURES,
 * SET_MEM_TABLE, per queue SET_VRING_NUM, BASE, ADDR, KICK, CALL; SET_OWNER was done when the
 * backend opened). The early ring indices are whatever the queue started with: wrong, and
 * tolerated, because the switchover overwrites them. A prestart failure is remembered, not fatal.
 *
 * <h2>Deltas</h2>
 * Applied as they arrive by restoring the model with the newer records: the model tells the
 * backend only the groups that differ (MAC table, VLAN, rx mode: the filter, which vhost-net does
 * not have, so nothing reaches the kernel; offloads: TUNSETOFFLOAD; queue pairs: pairs enabled or
 * disabled). A change of features, of the ring layout or of the device status (the driver reset
 * or re-initialised the device) marks a full reload.
 *
 * <h2>Switchover</h2>
 * <ul>
 * <li>quickstart (no full reload, prestart succeeded): per queue SET_VRING_BASE from the final
 *     indices, NET_SET_BACKEND per queue of each enabled pair, the control queue resumed, and
 *     one notification per queue;</li>
 * <li>full reload: the early-started datapath stopped first, then the classic start;</li>
 * <li>any failure of the primary backend: the fallback starts from the same final states
 *     ({@link SwitchoverPath#FALLBACK}); {@link #retryPrimary()} later moves back to the primary
 *     without losing a frame.</li>
 * </ul>
 */
public final class NetMigrationDestination {
    private static final System.Logger LOG = System.getLogger(NetMigrationDestination.class.getName());
    /**
     * Downtime step: the hook run before the switchover starts anything ({@link #setBeforeSwitchover}):
     * waiting for the RAM precopy's final pass, a hypervisor's commit handshake with the source.
     */
    public static final String STEP_BEFORE_SWITCHOVER = "commit and RAM wait";
    /** Downtime step: switchover deltas applied, model current, final states built. */
    public static final String STEP_APPLY = "destination apply";
    /** Downtime step: the backend's quickstart with the final indices, and the control queue. */
    public static final String STEP_QUICKSTART = "quickstart";
    /** Downtime step: one notification per queue; the datapath is ready after it. */
    public static final String STEP_FIRST_NOTIFICATION = "first notification";

    private final NetDeviceRuntime device;
    private final NetBackend primary;
    private final NetBackend fallback;
    private volatile Runnable beforeSwitchover = () -> {};
    /**
     * The system property that sets how often the quickstart is rehearsed after the prestart:
     * the core's ({@link MigrationDestination#REHEARSALS_PROPERTY}), which also rehearses the
     * switchover's read.
     */
    public static final String REHEARSALS_PROPERTY = MigrationDestination.REHEARSALS_PROPERTY;

    private volatile Runnable afterEarlyLoad = () -> {};
    private volatile boolean earlyStart = true;

    // Guarded by this: the migration's reader thread is the only caller, but tests read results.
    private VirtioState virtio;
    private QueueLayouts layouts;
    private VirtioNetState net;
    private PendingTx pendingTx;
    private boolean earlyDone;
    private boolean prestarted;
    private Exception prestartFailure;
    private Exception backendEffectFailure;
    private boolean modelCurrent;
    private final List<String> fullReloadReasons = new ArrayList<>();
    private final List<String> fineChanges = new ArrayList<>();
    private SwitchoverPath path;
    private String fallbackReason;
    private long deviceStartNanos = -1;

    /**
     * @param device the destination device, in reset state, built with the same options as the
     *     source's; its current backend is the primary
     * @param fallback the backend to start on when the primary fails (the userspace datapath), or
     *     null: then a primary failure fails the migration
     */
    public NetMigrationDestination(NetDeviceRuntime device, NetBackend fallback) {
        this.device = Objects.requireNonNull(device, "device");
        this.primary = device.backend();
        this.fallback = fallback;
    }

    /** Runs right before the switchover starts the device, e.g. waiting for the final RAM pass. */
    public void setBeforeSwitchover(Runnable hook) {
        this.beforeSwitchover = Objects.requireNonNull(hook, "hook");
    }

    /**
     * With false, a classic migration, for comparison: nothing is loaded or started before the
     * switchover, which restores the model and starts the datapath from scratch
     * ({@link SwitchoverPath#CLASSIC}). Default true.
     */
    public void setEarlyStart(boolean early) {
        this.earlyStart = early;
    }

    /**
     * Runs once the early load is done (model restored, datapath prestarted), before the precopy
     * deltas: e.g. the destination tells the source it may pause the guest.
     */
    public void setAfterEarlyLoad(Runnable hook) {
        this.afterEarlyLoad = Objects.requireNonNull(hook, "hook");
    }

    /** The generic destination over these sections and this switchover. */
    public MigrationDestination protocol() {
        MigrationDestination protocol = new MigrationDestination(sections(), this::switchover);
        protocol.setAfterEarlyLoad(() -> afterEarlyLoad.run());
        return protocol;
    }

    /** The four sections, destination side. */
    public List<DeviceStateSection<?>> sections() {
        return List.of(
                DeviceStateSection.onDestination(NetSections.VIRTIO, NetSections.VIRTIO_NAME, VirtioState.class,
                        early -> loaded(early, null, null, null), this::virtioDelta),
                DeviceStateSection.onDestination(NetSections.QUEUES, NetSections.QUEUES_NAME, QueueLayouts.class,
                        early -> loaded(null, early, null, null), this::queuesDelta),
                DeviceStateSection.onDestination(NetSections.NET, NetSections.NET_NAME, VirtioNetState.class,
                        early -> loaded(null, null, early, null), this::netDelta),
                DeviceStateSection.onDestination(NetSections.PENDING_TX, NetSections.PENDING_TX_NAME, PendingTx.class,
                        early -> loaded(null, null, null, early), this::pendingTxDelta));
    }

    // ------------------------------------------------------------------ early load

    private synchronized void loaded(VirtioState v, QueueLayouts q, VirtioNetState n, PendingTx p) throws Exception {
        if (v != null) virtio = v;
        if (q != null) layouts = q;
        if (n != null) net = n;
        if (p != null) pendingTx = p;
        if (virtio != null && layouts != null && net != null && pendingTx != null && !earlyDone && earlyStart) {
            earlyDone = true;
            earlyStart();
        }
    }

    private void earlyStart() throws InvalidDeviceStateException {
        restoreModel(); // an invalid state throws: recorded by the core; the switchover restores again and fails
        configureQueues();
        if (!driverOk(virtio) || layouts.dataQueues().isEmpty()) {
            return;
        }
        try {
            device.prestartDatapath(freshDataStates());
            prestarted = true;
        } catch (IOException | RuntimeException e) {
            prestartFailure = e;
            LOG.log(Level.INFO, "migration: prestart of " + primary.capabilities().name() + " failed; the switchover "
                    + "will start the fallback datapath: " + e);
            return;
        }
        rehearse();
    }

    /**
     * Times the quickstart is rehearsed after the prestart, from the system property
     * {@value #REHEARSALS_PROPERTY} (0 turns the rehearsal off): enough for the JIT's first tier
     * to compile the code the quickstart runs, few enough to cost a millisecond or two of the
     * early load, outside the downtime.
     */
    static final int REHEARSALS = Integer.getInteger(NetMigrationDestination.REHEARSALS_PROPERTY, 200);

    /**
     * Rehearses the switchover on the prestarted state (the guest still runs on the source): the
     * final state built from the prestart's own positions as {@link #switchover} builds it from
     * the final ones, then {@link NetDeviceRuntime#rehearseQuickstart}, which stops before any
     * write to guest memory, the TAP or an eventfd. A failed rehearsal is logged and changes
     * nothing: the switchover runs the quickstart as it would have.
     */
    private void rehearse() {
        if (REHEARSALS <= 0) {
            return;
        }
        List<FinalPositions.Entry> entries = new ArrayList<>();
        for (QueueLayout q : layouts.dataQueues()) {
            entries.add(new FinalPositions.Entry(q.queue(), q.freshState().position()));
        }
        for (QueueLayout q : layouts.controlQueue()) {
            entries.add(new FinalPositions.Entry(q.queue(), q.freshState().position()));
        }
        try {
            FinalPositions positions = new FinalPositions(entries);
            for (int i = 0; i < REHEARSALS; i++) {
                device.rehearseQuickstart(finalState(positions));
                quickstartPath(); // the path's type loads here, not in the first switchover's window
            }
        } catch (IOException | RuntimeException e) {
            LOG.log(Level.INFO, "migration: the quickstart's rehearsal failed (the switchover is unaffected): " + e);
        }
    }

    /** The path a quickstart that succeeded took: with or without fine deltas applied before it. */
    private SwitchoverPath quickstartPath() {
        return fineChanges.isEmpty() ? SwitchoverPath.QUICKSTART : SwitchoverPath.QUICKSTART_AFTER_FINE_DELTAS;
    }

    /** Restores the model from the newest records; an invalid combination is retried at the switchover. */
    private void restoreModel() throws InvalidDeviceStateException {
        try {
            device.model().restore(new NetDeviceState(virtio, net));
            modelCurrent = true;
        } catch (InvalidDeviceStateException e) {
            modelCurrent = false;
            throw e;
        } catch (IOException e) {
            // the state is loaded; the backend refused one of its effects (e.g. TUNSETOFFLOAD)
            modelCurrent = true;
            backendEffectFailure = e;
        }
    }

    private void configureQueues() {
        for (QueueLayout q : layouts.dataQueues()) {
            device.restoreQueue(q.queue(), q.size(), q.descTableAddress(), q.driverAreaAddress(), q.deviceAreaAddress());
        }
        for (QueueLayout q : layouts.controlQueue()) {
            device.restoreQueue(q.queue(), q.size(), q.descTableAddress(), q.driverAreaAddress(), q.deviceAreaAddress());
        }
    }

    private List<QueueState> freshDataStates() {
        List<QueueState> states = new ArrayList<>();
        for (QueueLayout q : layouts.dataQueues()) {
            states.add(q.freshState());
        }
        return states;
    }

    private static boolean driverOk(VirtioState v) {
        return (v.status() & DeviceStatus.DRIVER_OK) != 0 && (v.status() & DeviceStatus.DEVICE_NEEDS_RESET) == 0;
    }

    // ------------------------------------------------------------------ deltas

    private synchronized void virtioDelta(VirtioState previous, VirtioState now, List<String> changed, boolean atSwitchover) {
        virtio = now;
        for (String field : changed) {
            switch (field) {
                case "offeredFeatures", "ackedFeatures", "status" -> fullReloadReasons.add("virtio." + field);
                default -> fineChanges.add("virtio." + field); // config: follows MAC and net status
            }
        }
        tryRestore();
    }

    private synchronized void queuesDelta(QueueLayouts previous, QueueLayouts now, List<String> changed, boolean atSwitchover) {
        layouts = now;
        fullReloadReasons.add("virtio.queues (" + String.join(", ", changed) + ")");
    }

    private synchronized void netDelta(VirtioNetState previous, VirtioNetState now, List<String> changed, boolean atSwitchover) {
        net = now;
        for (String field : changed) {
            fineChanges.add("virtio-net." + field);
        }
        tryRestore();
    }

    private synchronized void pendingTxDelta(PendingTx previous, PendingTx now, List<String> changed, boolean atSwitchover) {
        pendingTx = now;
        fineChanges.add("virtio-net.pending-tx");
    }

    /** Deltas of one message come section by section: a combination may be invalid until the next one arrives. */
    private void tryRestore() {
        if (!earlyDone) {
            return;
        }
        try {
            restoreModel();
        } catch (InvalidDeviceStateException e) {
            LOG.log(Level.DEBUG, "migration: delta not yet consistent, restored at the switchover: " + e.getMessage());
        }
    }

    // ------------------------------------------------------------------ switchover

    private synchronized void switchover(Switchover s) throws Exception {
        long start = System.nanoTime();
        beforeSwitchover.run();
        s.steps().mark(STEP_BEFORE_SWITCHOVER);
        if (!earlyDone) {
            classicStart(s, start);
            s.steps().mark(SwitchoverSteps.DEVICE_START);
            return;
        }
        if (!modelCurrent) {
            device.model().restore(new NetDeviceState(virtio, net)); // invalid: the migration fails here
            modelCurrent = true;
        }
        if (!driverOk(virtio) || layouts.dataQueues().isEmpty()) {
            stopEarlyStarted();
            path = SwitchoverPath.NOT_RUNNING;
            deviceStartNanos = System.nanoTime() - start;
            s.steps().mark(SwitchoverSteps.DEVICE_START);
            return;
        }
        DatapathState fin = finalState(s.finalPositions());
        if (!fullReloadReasons.isEmpty() || !s.earlyFailures().isEmpty()) {
            stopEarlyStarted(); // the early-started vhost must not run with stale features or rings
            configureQueues();
            try {
                device.startDatapath(fin);
                path = SwitchoverPath.FULL_RELOAD;
            } catch (IOException | RuntimeException e) {
                startFallback(fin, "classic start failed: " + e);
            }
        } else if (!prestarted) {
            startFallback(fin, "prestart failed: " + prestartFailure);
        } else if (backendEffectFailure != null) {
            stopEarlyStarted();
            startFallback(fin, "the primary refused a device change: " + backendEffectFailure);
        } else {
            try {
                s.steps().mark(STEP_APPLY);
                device.quickstartDatapath(fin);
                s.steps().markAt(STEP_QUICKSTART, device.lastNotificationAt());
                s.steps().mark(STEP_FIRST_NOTIFICATION);
                path = quickstartPath();
            } catch (IOException | RuntimeException e) {
                startFallback(fin, "quickstart failed: " + e);
            }
        }
        if (path != SwitchoverPath.QUICKSTART && path != SwitchoverPath.QUICKSTART_AFTER_FINE_DELTAS) {
            s.steps().mark(SwitchoverSteps.DEVICE_START); // full reload or fallback: one step
        }
        deviceStartNanos = System.nanoTime() - start;
    }

    /** The classic switchover: everything from scratch, with the guest paused. */
    private void classicStart(Switchover s, long start) throws Exception {
        device.model().restore(new NetDeviceState(virtio, net));
        modelCurrent = true;
        configureQueues();
        if (driverOk(virtio) && !layouts.dataQueues().isEmpty()) {
            DatapathState fin = finalState(s.finalPositions());
            try {
                device.startDatapath(fin);
                path = SwitchoverPath.CLASSIC;
            } catch (IOException | RuntimeException e) {
                startFallback(fin, "classic start failed: " + e);
            }
        } else {
            path = SwitchoverPath.NOT_RUNNING;
        }
        deviceStartNanos = System.nanoTime() - start;
    }

    private void stopEarlyStarted() {
        if (!prestarted) {
            return;
        }
        prestarted = false;
        try {
            device.stopDatapath();
        } catch (IOException | RuntimeException e) {
            // the early indices were never meant to be right; the backend is stopped regardless
            LOG.log(Level.DEBUG, "migration: stopping the early-started datapath: " + e.getMessage());
        }
    }

    private void startFallback(DatapathState fin, String reason) throws IOException {
        if (fallback == null) {
            throw new IOException(primary.capabilities().name() + ": " + reason + " (and no fallback backend)");
        }
        fallbackReason = reason;
        device.switchBackend(fallback);
        device.startDatapath(afterFailedStart(fin));
        path = SwitchoverPath.FALLBACK;
    }

    /**
     * The final states, corrected by what a primary that failed half-way did: a quickstart that
     * bound the rx queue before failing on the tx queue let the kernel move frames for a moment,
     * writing used entries past the final indices. Those deliveries are real (the guest sees
     * them), so the fallback starts where the used ring in guest memory says, as QEMU does after
     * a vhost failure (last_avail_idx := used_idx). Split rings only: their used index is in
     * guest memory.
     */
    private DatapathState afterFailedStart(DatapathState fin) {
        List<QueueState> data = new ArrayList<>();
        for (QueueState q : fin.dataQueues()) {
            data.add(q.geometry().packed() ? q : advancedToUsedRing(q));
        }
        return new DatapathState(data, fin.controlQueue(), fin.controlQueueIndex());
    }

    private QueueState advancedToUsedRing(QueueState q) {
        // Acquire: pairs with the kernel's release of used.idx after its used elements; the
        // kernel's worker is stopped by now (the failed start unbound the backend).
        int used = Short.toUnsignedInt((short) USED_IDX.getAcquire(
                device.memory().slice(q.geometry().deviceAreaAddress(), 4), 2L));
        int ahead = (used - q.position().usedIdx()) & 0xffff;
        if (ahead == 0 || ahead > q.geometry().size()) {
            return q; // nothing moved (or not a plausible move: keep the source's word)
        }
        return q.withPosition(QueuePosition.split(used, used, 0));
    }

    private static final VarHandle USED_IDX = ValueLayout.JAVA_SHORT.varHandle();

    /**
     * Every queue's final state: the layout with the final indices. A queue with chains in flight
     * at the source (a pending tx, or rx buffers taken) is rewound to its used index, so the
     * destination takes those chains again instead of losing them: no backend can resume a chain
     * another process took.
     */
    private DatapathState finalState(FinalPositions indices) {
        List<QueueState> data = new ArrayList<>();
        for (QueueLayout q : layouts.dataQueues()) {
            data.add(withFinal(q, indices));
        }
        QueueState control = null;
        int controlIndex = layouts.controlQueueIndex();
        if (controlIndex >= 0) {
            control = withFinal(layouts.controlQueue().get(0), indices);
        }
        return new DatapathState(data, control, controlIndex);
    }

    private static QueueState withFinal(QueueLayout q, FinalPositions indices) {
        QueuePosition f = indices.of(q.queue());
        if (f == null) {
            throw new IllegalArgumentException("the final positions lack virtqueue " + q.queue());
        }
        if (f.packed() != q.packed()) {
            throw new IllegalArgumentException("virtqueue " + q.queue() + ": the final position is "
                    + (f.packed() ? "packed" : "split") + ", the ring is not");
        }
        if (f.inuse() == 0 || f.packed()) {
            return q.freshState().withPosition(f);
        }
        return q.freshState().withPosition(QueuePosition.split(f.usedIdx(), f.usedIdx(), 0));
    }

    // ------------------------------------------------------------------ after the switchover

    /**
     * After a {@link SwitchoverPath#FALLBACK} switchover (off the downtime path): switches the
     * running device back to the primary backend (vhost-net), losing and duplicating no frame.
     *
     * @return true when the primary runs now
     */
    public synchronized boolean retryPrimary() throws IOException {
        if (path != SwitchoverPath.FALLBACK || device.backend() == primary) {
            return device.backend() == primary;
        }
        device.switchBackend(primary);
        return true;
    }

    /** The path the switchover took, or null before it. */
    public synchronized SwitchoverPath path() {
        return path;
    }

    /** Why the fallback runs, or null. */
    public synchronized String fallbackReason() {
        return fallbackReason;
    }

    /** The changes that made a full reload necessary. */
    public synchronized List<String> fullReloadReasons() {
        return List.copyOf(fullReloadReasons);
    }

    /** The changes applied finely (without a vhost restart). */
    public synchronized List<String> fineChanges() {
        return List.copyOf(fineChanges);
    }

    /** Whether the early load prestarted the primary backend (false: it failed, or early start is off). */
    public synchronized boolean prestartSucceeded() {
        return earlyDone && prestartFailure == null;
    }

    /** ns spent by the switchover starting the device (after the stream was read and validated). */
    public synchronized long deviceStartNanos() {
        return deviceStartNanos;
    }

    /** The device. */
    public NetDeviceRuntime device() {
        return device;
    }

    /** The primary backend (the device's backend when this destination was made). */
    public NetBackend primary() {
        return primary;
    }
}

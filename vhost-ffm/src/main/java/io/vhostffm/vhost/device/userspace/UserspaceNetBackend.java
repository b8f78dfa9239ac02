package io.vhostffm.vhost.device.userspace;

import io.vhostffm.vhost.internal.ParkedThreads;

import io.vhostffm.vhost.os.Errno;
import io.vhostffm.vhost.os.FileDescriptor;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.os.TapDevice;
import io.vhostffm.vhost.device.BackendStart;
import io.vhostffm.vhost.device.BackendTransfer;
import io.vhostffm.vhost.device.DirtyLog;
import io.vhostffm.vhost.device.NetBackend;
import io.vhostffm.vhost.device.QueueBinding;
import io.vhostffm.vhost.device.BackendCapabilities;
import io.vhostffm.vhost.virtio.net.RxFilter;
import io.vhostffm.vhost.virtio.net.TunOffloads;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vhost.device.DeviceQueues;
import io.vhostffm.vring.DeviceQueue;
import io.vhostffm.vring.QueuePosition;
import io.vhostffm.vring.QueueResync;
import io.vhostffm.vring.QueueState;
import io.vhostffm.vring.RestoreMode;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import io.vhostffm.vhost.os.TunOffload;
import io.vhostffm.vhost.virtio.net.VirtioNetHeader;

/**
 * The userspace datapath as a {@link NetBackend}: {@link UserspaceDatapath} on a TAP, started,
 * stopped and restarted by {@code NetDeviceRuntime} like the kernel's vhost-net, and the backend a
 * device falls back to when vhost-net cannot run (no {@code /dev/vhost-net}, a failed early start
 * in migration). Both backends take turns on the same TAP, so a live switch moves every queue from
 * one to the other at the position {@link #stop()} reports.
 *
 * <ul>
 * <li>{@link #prestart} checks the start (pairs, ring format, queue states against guest memory),
 *     sets the TAP's offloads, opens the device side of every queue (early restore: the
 *     guest may still run on a migration source), builds the datapath of the enabled pairs on
 *     them (paths, workers, iovec arrays, pollfds; the MTU read) and starts its worker threads
 *     ({@link UserspaceDatapath#workerThreads(int, int)}), parked. Nothing is written to guest memory, the TAP's queues or an eventfd.</li>
 * <li>{@link #quickstart} resyncs those queues to the final positions with vring's many-queue
 *     resync ({@code QueueResync}), attaches the TAP queues, notifies each queue once and hands
 *     each prepared worker to its parked thread: nothing that does not need the final indices
 *     is left for it. (When the enabled pairs changed since the prestart, the datapath is built
 *     there instead.)</li>
 * <li>{@link #start} (a classic start) opens the queues from the start's states with a classic
 *     restore, which checks the indices found in guest memory, and starts the threads.</li>
 * <li>{@link #setQueuePairEnabled} and {@link #setActiveQueuePairs} (a whole VQ_PAIRS_SET):
 *     pairs that only join a running datapath are added to it ({@link UserspaceDatapath#addPairs}:
 *     their TAP queues attached, the pairs already served never pause, as a Linux guest's
 *     VQ_PAIRS_SET after DRIVER_OK finds them); a change that disables a pair restarts the
 *     datapath once on the new set, from the states the old one stopped at, and detaches the
 *     disabled pairs' TAP queues.</li>
 * <li>{@link #setRxFilter}, {@link #setOffloads} and {@link #startDirtyLog} take effect at once on
 *     the running threads (read per frame / per write); {@link #stopDirtyLog} restarts them, so
 *     no mark is still in flight when it returns.</li>
 * </ul>
 *
 * <p>Capabilities: VERSION_1, MRG_RXBUF, EVENT_IDX, INDIRECT_DESC, RING_PACKED and the offloads
 * the TAP accepts; no RSS (no steering here). Packed rings run through vring's
 * {@code PackedDeviceQueue} ({@code DeviceQueues} picks the format from each queue's state); a
 * start whose queue states disagree with the acked RING_PACKED bit is refused at {@link #prestart}
 * with {@link IllegalArgumentException}.
 *
 * <p>Life-cycle methods are synchronized; the runtime calls them with its model lock held.
 */
public final class UserspaceNetBackend implements NetBackend {
    /** The backend's name in capabilities and messages. */
    public static final String NAME = "userspace datapath";

    private static final int EINVAL = Errno.number("EINVAL").orElseThrow();
    private static final int LARGE_TUN_OFFLOADS = TunOffload.TSO4.value() | TunOffload.TSO6.value()
            | TunOffload.UFO.value() | TunOffload.USO4.value() | TunOffload.USO6.value();

    private final TapDevice tap;
    private final boolean ownsTap;
    private final BackendCapabilities capabilities;

    private BackendStart current;
    private List<QueueState> states;
    /** Prestarted: every queue's device side, in the start's order, waiting for the final positions. */
    private List<DeviceQueue> prestartedQueues;
    private QueueResync resync;
    private boolean[] pairEnabled;
    private UserspaceDatapath datapath;
    private int tunOffloadFlags;
    /**
     * Prestarted: the datapath built on the prestarted queues for the pairs enabled at prestart
     * ({@link #preparedFor}), waiting for the final positions; null otherwise.
     */
    private UserspaceDatapath prepared;
    private boolean[] preparedFor;
    /** Prestarted datapath threads waiting for quickstart, or null. */
    private ParkedThreads parked;
    /** The datapath {@link #quiesce} left with threads still ending, for {@link #awaitStopped}; or null. */
    private UserspaceDatapath ending;
    /** Spare parked threads {@link #quiesce} told to end, for {@link #awaitStopped}; or null. */
    private ParkedThreads releasing;
    private volatile RxFilter rxFilter;
    private volatile DirtyLog dirtyLog;
    private boolean closed;
    /** Worker threads of each datapath it starts; 0: {@link UserspaceDatapath#workerThreads(int, int)}'s default. */
    private final int workerThreads;

    private UserspaceNetBackend(TapDevice tap, boolean ownsTap, int supportedTunFlags, int workerThreads) {
        this.tap = tap;
        this.ownsTap = ownsTap;
        this.workerThreads = workerThreads;
        long datapath = VirtioFeature.maskOf(VirtioFeature.VERSION_1, VirtioFeature.MRG_RXBUF,
                VirtioFeature.EVENT_IDX, VirtioFeature.INDIRECT_DESC, VirtioFeature.RING_PACKED);
        this.capabilities = BackendCapabilities.of(NAME, datapath | TunOffloads.virtioFeaturesFor(true, supportedTunFlags));
    }

    /**
     * A backend on {@code tap} (not owned: the caller closes it after this backend, and may hand it
     * to the kernel backend in turn). The TAP must have {@link TapDevice#VHOST_FLAGS}; its vnet
     * header size is set to 12.
     */
    public static UserspaceNetBackend open(TapDevice tap) throws IOException {
        return open(tap, false, 0);
    }

    /**
     * As {@link #open(TapDevice)}, its datapaths on {@code workerThreads} worker threads (each
     * serving one or more queue pairs; never more than one per pair); 0: the default, {@link
     * UserspaceDatapath#workerThreads(int, int)}.
     */
    public static UserspaceNetBackend open(TapDevice tap, int workerThreads) throws IOException {
        if (workerThreads < 0) {
            throw new IllegalArgumentException("workerThreads must be 0 (the default) or more: " + workerThreads);
        }
        return open(tap, false, workerThreads);
    }

    /**
     * Rebuilds a backend from a TAP handed over by another process ({@link NetBackend#transfer()},
     * descriptors received with SCM_RIGHTS); it owns the rebuilt TAP. A {@code NetBackendFactory}.
     */
    public static UserspaceNetBackend fromTransfer(BackendTransfer received) throws IOException {
        if (!BackendTransfer.KIND_TAP.equals(received.kind())) {
            received.fds().forEach(FileDescriptor::close);
            throw new IllegalArgumentException("the userspace datapath runs on a TAP, not on a " + received.kind());
        }
        TapDevice tap = TapDevice.fromQueues(received.name(), received.fds());
        try {
            return open(tap, true, 0);
        } catch (IOException | RuntimeException e) {
            tap.close();
            throw e;
        }
    }

    private static UserspaceNetBackend open(TapDevice tap, boolean ownsTap, int workerThreads) throws IOException {
        if (!tap.flags().containsAll(TapDevice.VHOST_FLAGS)) {
            throw new IllegalArgumentException(tap + " lacks " + TapDevice.VHOST_FLAGS + " (has " + tap.flags() + ")");
        }
        tap.setVnetHeaderSize(VirtioNetHeader.SIZE);
        return new UserspaceNetBackend(tap, ownsTap, probeTunOffloads(tap), workerThreads);
    }

    /** The TUN_F_* flags this kernel's TAP accepts, the optional groups tried one at a time. */
    private static int probeTunOffloads(TapDevice tap) throws NativeCallException {
        int supported = 0;
        int[] groups = {TunOffload.CSUM.value(),
                TunOffload.TSO4.value() | TunOffload.TSO6.value() | TunOffload.TSO_ECN.value(),
                TunOffload.UFO.value(), TunOffload.USO4.value() | TunOffload.USO6.value()};
        for (int group : groups) {
            try {
                tap.setOffloadFlags(TunOffload.CSUM.value() | supported | group);
                supported |= group;
            } catch (NativeCallException refused) {
                // EINVAL: this kernel's TAP does not know the flag
            }
        }
        tap.setOffloadFlags(0);
        return supported;
    }

    @Override
    public BackendCapabilities capabilities() {
        return capabilities;
    }

    @Override
    public int maxQueuePairs() {
        return tap.queues().size();
    }

    /** The TAP this backend runs on. */
    public TapDevice tap() {
        return tap;
    }

    @Override
    public synchronized void prestart(BackendStart start) throws IOException {
        accept(start);
        // Early restore: the rings are resolved, their indices not read (the guest may still run
        // on a migration source); the quickstart's resync sets every position.
        List<DeviceQueue> queues = new ArrayList<>(start.queues().size());
        try {
            for (QueueBinding q : start.queues()) {
                queues.add(DeviceQueues.open(q.index(), start.memory(), q.state(), RestoreMode.EARLY));
            }
        } catch (RuntimeException e) {
            releaseParked();
            current = null;
            throw e;
        }
        prestartedQueues = List.copyOf(queues);
        resync = QueueResync.of(prestartedQueues);
        try {
            prepare();
        } catch (IOException | RuntimeException e) {
            releaseParked();
            current = null;
            prestartedQueues = null;
            resync = null;
            throw e;
        }
    }

    /**
     * Builds the datapath of the enabled pairs on the prestarted queues (paths, workers, iovecs,
     * pollfds, the stop eventfd; the MTU read), so that quickstart only sets the final positions
     * and hands the workers to the parked threads. Writes nothing to guest memory or the TAP.
     */
    private void prepare() throws IOException {
        List<QueuePairConfig> pairs = new ArrayList<>();
        List<DeviceQueue> served = new ArrayList<>();
        for (int p = 0; p < pairEnabled.length; p++) {
            if (pairEnabled[p]) {
                pairs.add(pairConfig(p));
                served.add(prestartedQueues.get(2 * p));
                served.add(prestartedQueues.get(2 * p + 1));
            }
        }
        if (pairs.isEmpty()) {
            return;
        }
        prepared = UserspaceDatapath.prepare(current.memory(), pairs, settings(), served);
        preparedFor = pairEnabled.clone();
        int[] positions = new int[2 * pairs.size()];
        int i = 0;
        for (int p = 0; p < pairEnabled.length; p++) {
            if (pairEnabled[p]) {
                positions[i++] = 2 * p;
                positions[i++] = 2 * p + 1;
            }
        }
        preparedQueues = positions;
        preparedPositions = new ArrayList<>(positions.length);
    }

    /** The virtqueue indices the prepared datapath serves, in its order. */
    private int[] preparedQueues;
    /** Reused by quickstart: the final positions of the prepared datapath's queues. */
    private List<QueuePosition> preparedPositions;

    private QueuePairConfig pairConfig(int p) {
        QueueBinding rx = current.queues().get(2 * p);
        QueueBinding tx = current.queues().get(2 * p + 1);
        return new QueuePairConfig(p, states.get(2 * p), states.get(2 * p + 1), rx.kick(), rx.call(),
                tx.kick(), tx.call(), tap.queue(p));
    }

    private UserspaceDatapath.Settings settings() throws IOException {
        boolean mergeable = (current.ackedFeatures() & VirtioFeature.MRG_RXBUF.mask()) != 0;
        // The MTU asked of the kernel at every start (SIOCGIFMTU): one changed meanwhile applies.
        return new UserspaceDatapath.Settings(() -> rxFilter, current.listener(), () -> dirtyLog,
                UserspaceDatapath.DEVICE_QUEUES, tap.mtu(), mergeable, workerThreads);
    }

    /** Lets go of the prepared datapath, if any (not launched). */
    private void discardPrepared() {
        if (prepared != null) {
            prepared.discard();
            prepared = null;
            preparedFor = null;
            preparedQueues = null;
            preparedPositions = null;
        }
    }

    /** A classic start: the queues opened from the start's states (classic restore), threads started. */
    @Override
    public synchronized void start(BackendStart start) throws IOException {
        accept(start);
        try {
            launch(null);
        } catch (IOException | RuntimeException e) {
            current = null;
            throw e;
        }
    }

    /** Checks a start and takes it as the current one; no queue is opened, no thread runs. */
    private void accept(BackendStart start) throws IOException {
        Objects.requireNonNull(start, "start");
        checkOpen();
        awaitStopped(); // a quiesced datapath's threads end before new ones serve the same queues
        if (datapath != null || current != null) {
            throw new IllegalStateException(NAME + " on " + tap.name() + " is already started; stop it first");
        }
        if (start.pairs() > maxQueuePairs()) {
            throw new IllegalArgumentException(NAME + " on " + tap.name() + " serves " + maxQueuePairs()
                    + " queue pair(s), the start has " + start.pairs());
        }
        boolean packed = VirtioFeature.RING_PACKED.in(start.ackedFeatures());
        for (QueueBinding q : start.queues()) {
            boolean statePacked = q.state().geometry().packed();
            if (statePacked != packed) {
                throw new IllegalArgumentException("virtqueue " + q.index() + ": a " + (statePacked ? "packed" : "split")
                        + " ring state, but VIRTIO_F_RING_PACKED(34) is " + (packed ? "" : "not ") + "acked");
            }
            q.state().validate(q.index(), start.memory());
        }
        boolean[] enabled = new boolean[start.pairs()];
        for (int p = 0; p < enabled.length; p++) {
            enabled[p] = p < start.activePairs();
        }
        tap.setOffloadFlags(start.tunOffloadFlags());
        // The TAP's queues are attached/detached by launch(), not here: the TAP may still serve
        // another process's device (a migration source), and detaching a queue drops its frames.
        tunOffloadFlags = start.tunOffloadFlags();
        if (start.dirtyLog() != null) {
            dirtyLog = start.dirtyLog();
        }
        pairEnabled = enabled;
        states = start.queues().stream().map(QueueBinding::state).toList();
        current = start;
        // The datapath threads start now, parked: quickstart hands them their work (no thread
        // start inside the downtime). As many as the pairs' workers could be (the default
        // count for every pair); unused ones end at stop.
        parked = ParkedThreads.start(UserspaceDatapath.workerThreads(workerThreads, Math.max(1, enabled.length)),
                NAME + " on " + tap.name());
    }

    @Override
    public synchronized void quickstart(List<QueuePosition> finalPositions) throws IOException {
        quickstart(finalPositions, false);
    }

    /**
     * The rehearsal runs {@link #quickstart}'s code: the resync of the prestarted queues (their
     * positions in this process's objects only; the real quickstart sets them all again), the
     * final states, the prepared datapath's positions, and stops before the TAP queues are
     * attached, the first write of all. Nothing is written to guest memory, the TAP or an
     * eventfd; no thread is given work.
     */
    @Override
    public synchronized void rehearseQuickstart(List<QueuePosition> positions) throws IOException {
        quickstart(positions, true);
    }

    private void quickstart(List<QueuePosition> finalPositions, boolean rehearsal) throws IOException {
        checkOpen();
        if (current == null || resync == null) {
            throw new IllegalStateException(NAME + " on " + tap.name() + " is not prestarted");
        }
        if (datapath != null) {
            throw new IllegalStateException(NAME + " on " + tap.name() + " is already running");
        }
        List<QueuePosition> positions = finalPositions;
        List<DeviceQueue> queues = prestartedQueues;
        QueueResync prestarted = resync;
        if (!rehearsal) {
            prestartedQueues = null;
            resync = null;
        }
        try {
            current.requireOnePositionPerQueue(positions);
            if (rehearsal) {
                // Refused positions must not reach the resync, which marks a queue it refuses broken.
                for (int q = 0; q < positions.size(); q++) {
                    positions.get(q).check(current.queues().get(q).index(),
                            current.queues().get(q).state().geometry().size());
                }
            }
            // Checks every position against its queue (naming queue and field) and sets it.
            prestarted.resync(positions);
            List<QueueState> finalStates = current.withPositions(positions).queues().stream()
                    .map(QueueBinding::state).toList();
            if (rehearsal) {
                if (prepared != null) {
                    launchPrepared(positions, true);
                }
                return;
            }
            states = finalStates;
            if (prepared != null && Arrays.equals(preparedFor, pairEnabled)) {
                launchPrepared(positions, false);
            } else {
                discardPrepared(); // the enabled pairs changed since the prestart: build anew
                launch(queues);
            }
        } catch (IOException | RuntimeException e) {
            if (rehearsal) {
                throw e;
            }
            discardPrepared();
            releaseParked();
            current = null;
            throw e;
        }
    }

    /**
     * Starts the datapath threads on the enabled pairs: on {@code resynced} (every queue of the
     * start, in its order, already positioned by the quickstart), or, when null, on queues opened
     * from {@link #states} with a classic restore. The threads are the parked ones of the prestart
     * when there are any; those left over end.
     */
    private void launch(List<DeviceQueue> resynced) throws IOException {
        try {
            launchPairs(resynced);
        } finally {
            releaseParked();
        }
    }

    /**
     * Starts the datapath prepared at prestart: the TAP queues attached, the final positions
     * given, the workers handed to the parked threads. The leftover parked threads end. A
     * {@code rehearsal} gives the positions and stops before the first write (the prepared
     * datapath stays prepared).
     */
    private void launchPrepared(List<QueuePosition> finalPositions, boolean rehearsal) throws IOException {
        UserspaceDatapath ready = prepared;
        List<QueuePosition> positions = preparedPositions;
        positions.clear();
        for (int q : preparedQueues) {
            positions.add(finalPositions.get(q));
        }
        if (rehearsal) {
            ready.rehearseLaunch(positions);
            positions.clear();
            return;
        }
        prepared = null;
        preparedFor = null;
        preparedQueues = null;
        preparedPositions = null;
        try {
            for (int p = 0; p < pairEnabled.length; p++) {
                setTapQueueAttached(p, pairEnabled[p]);
            }
            ready.launch(positions, parked);
        } catch (IOException | RuntimeException e) {
            ready.discard();
            throw e;
        } finally {
            releaseParked();
        }
        datapath = ready;
        datapath.setLargeReceiveFrames((tunOffloadFlags & LARGE_TUN_OFFLOADS) != 0);
    }

    /** Ends the parked threads nobody took (a stop or failure before quickstart). */
    private void releaseParked() {
        if (parked != null) {
            parked.release();
            parked = null;
        }
    }

    private void launchPairs(List<DeviceQueue> resynced) throws IOException {
        for (int p = 0; p < pairEnabled.length; p++) {
            setTapQueueAttached(p, pairEnabled[p]);
        }
        List<QueuePairConfig> pairs = new ArrayList<>();
        List<DeviceQueue> served = new ArrayList<>();
        for (int p = 0; p < pairEnabled.length; p++) {
            if (pairEnabled[p]) {
                pairs.add(pairConfig(p));
                if (resynced != null) {
                    served.add(resynced.get(2 * p));
                    served.add(resynced.get(2 * p + 1));
                }
            }
        }
        if (pairs.isEmpty()) {
            return;
        }
        var settings = settings();
        ParkedThreads threads = parked;
        parked = null; // a later launch (a pair change while running) starts threads of its own
        datapath = resynced == null
                ? UserspaceDatapath.start(current.memory(), pairs, settings, threads)
                : UserspaceDatapath.startOpened(current.memory(), pairs, settings, served, threads);
        if (threads != null) {
            threads.release();
        }
        datapath.setLargeReceiveFrames((tunOffloadFlags & LARGE_TUN_OFFLOADS) != 0);
    }

    @Override
    public synchronized boolean isRunning() {
        return current != null && datapath != null && datapath.isRunning();
    }

    /**
     * Stops the datapath threads (each finishes the frame in hand; chains taken and not used are
     * given back) and returns every queue's position in the start's order; disabled pairs keep the
     * position they were set up with.
     */
    @Override
    public synchronized List<QueuePosition> stop() {
        return stop(false);
    }

    /**
     * As {@link #stop()}, returning once no worker touches its queues: sleeping workers are
     * claimed where they sleep, running ones waited for until they leave their loop, spare
     * parked threads told to end; none of them is waited for to end ({@link #awaitStopped}).
     */
    @Override
    public synchronized List<QueuePosition> quiesce() {
        return stop(true);
    }

    private List<QueuePosition> stop(boolean quiesce) {
        awaitStopped();
        if (current == null) {
            throw new IllegalStateException(NAME + " on " + tap.name() + " is not started");
        }
        if (!quiesce) {
            releaseParked();
        } else if (parked != null) {
            parked.releaseLater();
            releasing = parked;
            parked = null;
        }
        discardPrepared();
        collect(quiesce);
        current = null;
        prestartedQueues = null;
        resync = null;
        return states.stream().map(QueueState::position).toList();
    }

    @Override
    public synchronized void awaitStopped() {
        if (ending != null) {
            ending.stop(); // the threads end, the stop eventfd closes; the states are quiesce()'s
            ending = null;
        }
        if (releasing != null) {
            releasing.awaitReleased();
            releasing = null;
        }
    }

    /**
     * Stops the running datapath, if any, and merges its queues' states into {@link #states};
     * with {@code quiesce} its threads are left to end ({@link #ending}).
     */
    private void collect(boolean quiesce) {
        if (datapath == null) {
            return;
        }
        List<Integer> servedPairs = datapath.pairNumbers();
        List<QueueState> served;
        if (quiesce) {
            served = datapath.quiesce();
            ending = datapath;
        } else {
            served = datapath.stop();
        }
        List<QueueState> merged = new ArrayList<>(states);
        int i = 0;
        for (int p : servedPairs) { // pairs added while running come after the first ones
            merged.set(2 * p, served.get(i++));
            merged.set(2 * p + 1, served.get(i++));
        }
        states = List.copyOf(merged);
        datapath = null;
    }

    @Override
    public synchronized void setQueuePairEnabled(int pair, boolean enabled) throws IOException {
        Objects.checkIndex(pair, maxQueuePairs());
        if (current == null || pair >= pairEnabled.length || pairEnabled[pair] == enabled) {
            return; // not set up: the next start decides from its activePairs
        }
        if (enabled && addToRunning(List.of(pair))) {
            return;
        }
        boolean running = datapath != null;
        collect(false);
        pairEnabled[pair] = enabled;
        if (running) {
            launch(null); // attaches/detaches the TAP queues; a prestarted backend leaves them for quickstart
        }
    }

    /**
     * Adds {@code joining} (pairs not enabled now) to the running datapath: their TAP queues
     * attached, the datapath's {@link UserspaceDatapath#addPairs}; nothing else is touched.
     *
     * @return false when no datapath runs or it is stopping (the caller restarts it); on an
     *     exception (a bad queue state of a joining pair, a failed TUNSETQUEUE) the joining pairs
     *     stay disabled with their TAP queues detached again, and the others run on
     */
    private boolean addToRunning(List<Integer> joining) throws IOException {
        if (datapath == null || !datapath.isRunning()) {
            return false;
        }
        List<QueuePairConfig> configs = new ArrayList<>(joining.size());
        int attached = 0;
        try {
            for (int p : joining) {
                setTapQueueAttached(p, true);
                attached++;
                configs.add(pairConfig(p));
            }
            if (!datapath.addPairs(configs)) {
                detach(joining, attached, null);
                return false;
            }
        } catch (IOException | RuntimeException e) {
            detach(joining, attached, e);
            throw e;
        }
        for (int p : joining) {
            pairEnabled[p] = true;
        }
        return true;
    }

    /** Detaches the TAP queues of the first {@code count} of {@code pairs} again; failures added to {@code cause}. */
    private void detach(List<Integer> pairs, int count, Exception cause) {
        for (int i = 0; i < count; i++) {
            try {
                setTapQueueAttached(pairs.get(i), false);
            } catch (NativeCallException | RuntimeException e) {
                if (cause != null) {
                    cause.addSuppressed(e);
                }
            }
        }
    }

    /**
     * Pairs that join a running datapath are added to it, the others untouched; a change in which
     * a pair leaves restarts the datapath once for the whole change, not once per pair.
     */
    @Override
    public synchronized void setActiveQueuePairs(int configured, int active) throws IOException {
        if (current == null) {
            return; // not set up: the next start decides from its activePairs
        }
        int last = Math.min(configured, pairEnabled.length);
        List<Integer> joining = new ArrayList<>();
        boolean leaving = false;
        for (int p = 0; p < last; p++) {
            if (pairEnabled[p] != p < active) {
                if (p < active) {
                    joining.add(p);
                } else {
                    leaving = true;
                }
            }
        }
        if (joining.isEmpty() && !leaving) {
            return;
        }
        if (!leaving && addToRunning(joining)) {
            return;
        }
        boolean running = datapath != null;
        collect(false);
        for (int p = 0; p < last; p++) {
            pairEnabled[p] = p < active;
        }
        if (running) {
            launch(null);
        }
    }

    /**
     * Attaches or detaches the TAP queue of {@code pair} (TUNSETQUEUE through
     * {@link io.vhostffm.vhost.os.TapDevice#setQueueAttached}: asked of the kernel every time, since
     * another backend or process may have changed it; no exception when it already is so).
     */
    private void setTapQueueAttached(int pair, boolean attached) throws NativeCallException {
        if (tap.queues().size() == 1) {
            return; // a single-queue TAP cannot detach; it has only pair 0, always enabled
        }
        tap.setQueueAttached(pair, attached);
    }

    @Override
    public synchronized void setOffloads(int flags) throws IOException {
        tap.setOffloadFlags(flags);
        tunOffloadFlags = flags;
        if (datapath != null) {
            datapath.setLargeReceiveFrames((flags & LARGE_TUN_OFFLOADS) != 0);
        }
    }

    @Override
    public void setRxFilter(RxFilter filter) {
        rxFilter = filter;
    }

    @Override
    public void startDirtyLog(DirtyLog log) {
        dirtyLog = Objects.requireNonNull(log, "log");
    }

    /**
     * Stops marking. A running datapath is restarted from where it stands (nothing lost or
     * repeated): the restart is the barrier after which no mark read before the stop can still
     * land in the log.
     */
    @Override
    public synchronized void stopDirtyLog() throws IOException {
        dirtyLog = null;
        if (datapath != null) {
            collect(false);
            launch(null);
        }
    }

    /** The counters of the running datapath (zeros when none runs). */
    public synchronized QueuePairStats stats() {
        return datapath == null ? new QueuePairStats(0, 0, 0, 0, 0, 0, 0) : datapath.stats();
    }

    @Override
    public BackendTransfer transfer() {
        return new BackendTransfer(BackendTransfer.KIND_TAP, tap.name(), VirtioNetHeader.SIZE, tap.queues());
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        awaitStopped();
        releaseParked();
        discardPrepared();
        collect(false);
        if (current != null) {
            current.listener().backendClosed(this); // a device still relied on it
        }
        current = null;
        if (ownsTap) {
            tap.close();
        }
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException(NAME + " on " + tap.name() + " is closed");
        }
    }

    @Override
    public String toString() {
        return NAME + " on " + tap.name();
    }
}

package io.vhostffm.vhost.device.kernel;

import io.vhostffm.vhost.device.BackendCapabilities;
import io.vhostffm.vhost.device.BackendListener;
import io.vhostffm.vhost.device.BackendStart;
import io.vhostffm.vhost.device.BackendTransfer;
import io.vhostffm.vhost.device.DirtyLog;
import io.vhostffm.vhost.device.NetBackend;
import io.vhostffm.vhost.device.QueueBinding;

import io.vhostffm.vhost.os.DescriptorPoller;
import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.FileDescriptor;
import io.vhostffm.vhost.os.IoctlObserver;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.os.TapDevice;
import io.vhostffm.vhost.os.TunFlag;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vhost.virtio.net.TunOffloads;
import io.vhostffm.vring.GuestMemory;
import io.vhostffm.vring.GuestRegion;
import io.vhostffm.vring.QueueGeometry;
import io.vhostffm.vring.QueuePosition;
import io.vhostffm.vring.QueueResync;
import io.vhostffm.vring.QueueState;
import io.vhostffm.vring.RestoreMode;
import io.vhostffm.vring.SplitDeviceQueue;
import io.vhostffm.vring.VhostVringBase;
import io.vhostffm.vring.VirtqueueException;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import io.vhostffm.vhost.os.TunOffload;
import io.vhostffm.vhost.virtio.net.VirtioNetHeader;

/**
 * The kernel datapath: one {@code /dev/vhost-net} per queue pair (its queue 0 is the pair's rx
 * virtqueue {@code 2i}, its queue 1 the tx virtqueue {@code 2i+1}), each bound to the matching
 * queue of a (multi-queue) TAP. The kernel moves the frames; this class only programs it.
 *
 * <h2>Order of ioctls (QEMU's)</h2>
 * {@link #open}: per pair SET_OWNER (then GET_FEATURES once). {@link #prestart}: per pair
 * SET_FEATURES (acked datapath bits, plus VHOST_F_LOG_ALL while logging), SET_MEM_TABLE, then per
 * queue SET_VRING_NUM, SET_VRING_BASE, SET_VRING_ADDR (VHOST_VRING_F_LOG and log_guest_addr = the
 * used ring's guest address while logging), SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR;
 * SET_LOG_BASE while logging. {@link #quickstart}: per queue SET_VRING_BASE, then
 * NET_SET_BACKEND per queue of each enabled pair, nothing else. The SET_VRING_BASE values of a
 * quickstart come from vring's many-queue resync ({@link QueueResync}) over a device-side view of
 * each queue, made at prestart: it checks every final position against its queue, naming queue and
 * field, before any ioctl, and encodes the bases in the same pass. {@link #start}: the prestart
 * sequence, then NET_SET_BACKEND. {@link #stop}: NET_SET_BACKEND(-1) per bound queue, then
 * GET_VRING_BASE per queue; the used index is read from the used ring in guest memory (the
 * kernel keeps it there).
 *
 * <h2>Per-pair quickstart steps in parallel</h2>
 * Each pair has its own {@code /dev/vhost-net}, so with {@link #setQuickstartThreads} above 1
 * (default: the system property {@value #QUICKSTART_THREADS_PROPERTY}, else
 * {@value #DEFAULT_QUICKSTART_THREADS}) a quickstart of several pairs issues each pair's steps
 * (SET_VRING_BASE rx and tx, TUNSETQUEUE, NET_SET_BACKEND rx and tx) on one of that many threads,
 * the quickstart's own included ({@code ParallelQuickstart}); the other threads are started and
 * parked at prestart. The failure rules are the serial ones: the first failed pair's error names
 * the pair, the ioctl and the errno, and every queue bound is unbound. The serial order is as
 * above: every SET_VRING_BASE, the TAP queues, then every NET_SET_BACKEND. Off by default: in the
 * emulated VM it measured slower than the serial order (docs/migration.md, "The levers").
 *
 * <h2>TAP</h2>
 * IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, TUNSETVNETHDRSZ 12 ({@code virtio_net_hdr_mrg_rxbuf}: the
 * device is VERSION_1 only), TUNSETOFFLOAD from the guest's offloads. vhost passes the header
 * through the TAP's socket (VHOST_NET_F_VIRTIO_NET_HDR, bit 27, is never acked), so the TAP
 * reads and writes it, and vhost fills {@code num_buffers} for mergeable receive buffers. A
 * disabled pair is unbound from vhost and its TAP queue detached (TUNSETQUEUE), so the host
 * steers no frame to it.
 *
 * <h2>Rings and packed rings</h2>
 * Split rings only: the kernel's vhost-net has no VIRTIO_F_RING_PACKED, so {@link #capabilities()}
 * never lists it, the device model refuses it at negotiation, and a packed start is refused here
 * too ({@link IllegalArgumentException}) rather than failing later.
 *
 * <h2>Errors in the ring</h2>
 * Each queue has a VHOST_SET_VRING_ERR eventfd; a watcher thread (one per backend) polls them and
 * reports the queue to the start's {@link BackendListener} (the runtime then puts the device in
 * DEVICE_NEEDS_RESET and stops it).
 */
public final class VhostNetBackend implements NetBackend {
    private static final System.Logger LOG = System.getLogger(VhostNetBackend.class.getName());
    private static final String NAME = "kernel vhost-net";
    private static final long LOG_ALL = 1L << VirtioFeature.LOG_ALL.bit();
    /** Bit 27: with it vhost would add/strip the header itself; the TAP does that here. */
    private static final long VHOST_NET_F_VIRTIO_NET_HDR = 1L << 27;
    /** used.idx is 2-aligned (the used ring is 4-aligned): an aligned handle, which has acquire access. */
    private static final VarHandle U16 = ValueLayout.JAVA_SHORT.varHandle();
    /** The system property that sets {@link #setQuickstartThreads}'s default (1: serial). */
    public static final String QUICKSTART_THREADS_PROPERTY = "io.vhostffm.kernel.quickstartThreads";
    /** Quickstart threads when {@value #QUICKSTART_THREADS_PROPERTY} is not set. */
    public static final int DEFAULT_QUICKSTART_THREADS = 1;

    private final TapDevice tap;
    private final boolean ownsTap;
    private final List<VhostNet> vhosts;
    private final long vhostFeatures;
    private final BackendCapabilities capabilities;
    private final EventFd[] errors;
    private final EventFd watcherWake;
    private final Thread watcher;

    // Guarded by this.
    private BackendStart current;       // non-null while prestarted or running
    private QueueResync resync;         // the prestarted queues' views; non-null while prestarted or running
    private boolean running;
    private final boolean[] pairEnabled;
    private final boolean[] bound;      // per pair: NET_SET_BACKEND done on both queues
    private DirtyLog dirtyLog;
    private int tunOffloadFlags;
    private int quickstartThreads = Math.max(1, Integer.getInteger(QUICKSTART_THREADS_PROPERTY, DEFAULT_QUICKSTART_THREADS));
    private ParallelQuickstart parallel; // non-null while prestarted for a parallel quickstart
    private volatile BackendListener listener;
    private volatile boolean closed;

    private VhostNetBackend(TapDevice tap, boolean ownsTap, List<VhostNet> vhosts, long vhostFeatures,
            int supportedTunFlags) throws NativeCallException {
        this.tap = tap;
        this.ownsTap = ownsTap;
        this.vhosts = List.copyOf(vhosts);
        this.vhostFeatures = vhostFeatures;
        // Datapath bits the kernel carries (no LOG_ALL: not a device feature; no bit 27: see
        // class comment), plus the offloads a TAP with a vnet header carries.
        long datapath = vhostFeatures & ~LOG_ALL & ~VHOST_NET_F_VIRTIO_NET_HDR & VirtioFeature.knownMask();
        this.capabilities = BackendCapabilities.of(NAME, datapath | TunOffloads.virtioFeaturesFor(true, supportedTunFlags));
        int pairs = vhosts.size();
        this.pairEnabled = new boolean[pairs];
        this.bound = new boolean[pairs];
        this.errors = new EventFd[2 * pairs];
        EventFd wake = null;
        try {
            for (int i = 0; i < errors.length; i++) {
                errors[i] = EventFd.create("vhost-net ring error, virtqueue " + i);
            }
            wake = EventFd.create("vhost-net error watcher wake-up");
        } catch (NativeCallException | RuntimeException e) {
            for (EventFd f : errors) {
                if (f != null) f.close();
            }
            throw e;
        }
        this.watcherWake = wake;
        this.watcher = Thread.ofPlatform().daemon().name("vhost-net-ring-errors " + tap.name()).unstarted(this::watchErrors);
        watcher.start();
    }

    /**
     * A backend on {@code tap} (not owned: the caller closes it after this backend): opens one
     * {@value VhostNet#DEVICE} per TAP queue and makes this process its owner (SET_OWNER).
     */
    public static VhostNetBackend open(TapDevice tap) throws IOException {
        return open(tap, VhostNet.DEVICE, false);
    }

    /** As {@link #open(TapDevice)} with another vhost-net node path. */
    public static VhostNetBackend open(TapDevice tap, String vhostPath) throws IOException {
        return open(tap, vhostPath, false);
    }

    /**
     * Rebuilds a backend from a TAP handed over by another process ({@link NetBackend#transfer()},
     * the descriptors received with SCM_RIGHTS). The backend owns the rebuilt TAP; the
     * descriptors are closed if it fails.
     */
    public static VhostNetBackend fromTransfer(BackendTransfer received) throws IOException {
        if (!BackendTransfer.KIND_TAP.equals(received.kind())) {
            received.fds().forEach(FileDescriptor::close);
            throw new IllegalArgumentException("kernel vhost-net runs on a TAP, not on a " + received.kind());
        }
        TapDevice tap = TapDevice.fromQueues(received.name(), received.fds());
        try {
            return open(tap, VhostNet.DEVICE, true);
        } catch (IOException | RuntimeException e) {
            tap.close();
            throw e;
        }
    }

    private static VhostNetBackend open(TapDevice tap, String vhostPath, boolean ownsTap) throws IOException {
        if (!tap.flags().containsAll(TapDevice.VHOST_FLAGS)) {
            throw new IllegalArgumentException(tap + " lacks " + TapDevice.VHOST_FLAGS + " (has " + tap.flags() + ")");
        }
        List<VhostNet> opened = new ArrayList<>();
        try {
            long features = -1;
            for (int pair = 0; pair < tap.queues().size(); pair++) {
                VhostNet v = VhostNet.open(vhostPath);
                opened.add(v);
                v.setOwner();
                if (pair == 0) {
                    features = v.getFeatures();
                }
            }
            tap.setVnetHeaderSize(VirtioNetHeader.SIZE);
            return new VhostNetBackend(tap, ownsTap, opened, features, CLAIMED_TUN_OFFLOADS);
        } catch (IOException | RuntimeException e) {
            opened.forEach(VhostNet::close);
            throw e;
        }
    }

    /**
     * The TUN_F_* flags claimed for capabilities: checksum, TSO4/6 and ECN, which every kernel
     * with vhost-net accepts. UFO and USO are not probed: probing means TUNSETOFFLOAD on a TAP
     * that may already carry a running device's traffic (a second backend opened for a switch),
     * which would change that device's offloads under it.
     */
    private static final int CLAIMED_TUN_OFFLOADS =
            TunOffload.CSUM.value() | TunOffload.TSO4.value() | TunOffload.TSO6.value() | TunOffload.TSO_ECN.value();

    // ------------------------------------------------------------------ accessors

    @Override
    public BackendCapabilities capabilities() {
        return capabilities;
    }

    @Override
    public int maxQueuePairs() {
        return vhosts.size();
    }

    /** The TAP this backend runs on. */
    public TapDevice tap() {
        return tap;
    }

    /** What VHOST_GET_FEATURES answered. */
    public long vhostFeatures() {
        return vhostFeatures;
    }

    /** The vhost-net handle of pair {@code pair} (e.g. for {@link VhostNet#setObserver}). */
    public VhostNet vhost(int pair) {
        return vhosts.get(pair);
    }

    /** Sets the ioctl observer of every pair's vhost-net (counting, fault injection); null removes it. */
    public void setIoctlObserver(IoctlObserver observer) {
        vhosts.forEach(v -> v.setObserver(observer));
    }

    /**
     * How many threads a quickstart of several pairs issues the pairs' steps from (at most one per
     * pair; 1: serial, on the quickstart's thread). Takes effect at the next prestart, which
     * starts and parks the extra threads.
     */
    public synchronized void setQuickstartThreads(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("quickstart threads: at least 1, not " + threads);
        }
        quickstartThreads = threads;
    }

    /** See {@link #setQuickstartThreads}. */
    public synchronized int quickstartThreads() {
        return quickstartThreads;
    }

    @Override
    public synchronized boolean isRunning() {
        return running;
    }

    /** Whether prestarted (or running). */
    public synchronized boolean isPrestarted() {
        return current != null;
    }

    // ------------------------------------------------------------------ life cycle

    @Override
    public synchronized void prestart(BackendStart start) throws IOException {
        checkStart(start);
        try {
            programRings(start);
            int threads = Math.min(quickstartThreads, start.pairs());
            if (threads > 1) {
                parallel = new ParallelQuickstart(NAME + " on " + tap.name(), vhosts, tap, start.pairs(), threads);
            }
        } catch (IOException | RuntimeException e) {
            abandon();
            throw e;
        }
    }

    @Override
    public synchronized void quickstart(List<QueuePosition> finalPositions) throws IOException {
        if (current == null || running) {
            throw new IllegalStateException(NAME + ": quickstart needs a prestarted, not running, backend");
        }
        current.requireOnePositionPerQueue(finalPositions);
        try {
            // Checks every position against its queue before the first ioctl; the bases are ready after it.
            int[] bases = resync.resync(finalPositions);
            if (parallel != null) {
                current = current.withPositions(finalPositions);
                quickstartInParallel(bases);
            } else {
                for (int i = 0; i < bases.length; i++) {
                    vhosts.get(i / 2).setVringBase(i % 2, bases[i]);
                }
                current = current.withPositions(finalPositions);
                bindEnabledPairs();
            }
            running = true;
        } catch (IOException | RuntimeException e) {
            abandon();
            throw e;
        }
    }

    @Override
    public synchronized void start(BackendStart start) throws IOException {
        checkStart(start);
        try {
            programRings(start);
            bindEnabledPairs();
            running = true;
        } catch (IOException | RuntimeException e) {
            abandon();
            throw e;
        }
    }

    private void checkStart(BackendStart start) {
        Objects.requireNonNull(start, "start");
        if (closed) {
            throw new IllegalStateException(NAME + " on " + tap.name() + " is closed");
        }
        if (current != null) {
            throw new IllegalStateException(NAME + " on " + tap.name() + " is already started; stop it first");
        }
        if (VirtioFeature.RING_PACKED.in(start.ackedFeatures())
                || start.queues().stream().anyMatch(q -> q.state().geometry().packed())) {
            throw new IllegalArgumentException(NAME + " has no packed virtqueues (no VIRTIO_F_RING_PACKED); "
                    + "run a packed-ring device on the userspace datapath");
        }
        if (start.pairs() > vhosts.size()) {
            throw new IllegalArgumentException(start.pairs() + " queue pairs asked; " + tap + " has " + vhosts.size());
        }
    }

    /** The prestart sequence: everything up to (not including) NET_SET_BACKEND. */
    private void programRings(BackendStart start) throws IOException {
        GuestMemory memory = start.memory();
        List<VhostNet.MemoryRegion> table = memoryTable(memory);
        DirtyLog log = start.dirtyLog();
        List<SplitDeviceQueue> views = new ArrayList<>(start.queues().size());
        for (QueueBinding q : start.queues()) {
            try {
                q.state().validate(q.index(), memory);
                // A device-side view for the quickstart's resync: early restore reads nothing from
                // the rings (the guest may still run on a migration source) and writes nothing.
                views.add(new SplitDeviceQueue(q.index(), memory, q.state(), RestoreMode.EARLY));
            } catch (VirtqueueException e) {
                throw new IOException(NAME + ": " + e.getMessage(), e);
            }
        }
        current = start;
        resync = QueueResync.of(views);
        dirtyLog = log;
        listener = start.listener();
        tunOffloadFlags = start.tunOffloadFlags();
        tap.setVnetHeaderSize(VirtioNetHeader.SIZE);
        tap.setOffloadFlags(tunOffloadFlags);
        long features = vhostFeaturesFor(start.ackedFeatures(), log != null);
        for (int pair = 0; pair < start.pairs(); pair++) {
            VhostNet v = vhosts.get(pair);
            v.setFeatures(features);
            v.setMemTable(table);
            for (int q = 0; q < 2; q++) {
                QueueBinding binding = start.queues().get(2 * pair + q);
                QueueState s = binding.state();
                v.setVringNum(q, s.geometry().size());
                v.setVringBase(q, VhostVringBase.encodeSplit(s.position().lastAvailIdx()));
                setVringAddr(v, q, s.geometry(), memory, log != null);
                v.setVringKick(q, binding.kick().fd());
                v.setVringCall(q, binding.call().fd());
                v.setVringErr(q, errors[binding.index()].fd());
            }
            if (log != null) {
                v.setLogBase(log.userspaceAddress());
            }
            pairEnabled[pair] = pair < start.activePairs();
        }
        // TAP queues are attached/detached when frames start moving (bindEnabledPairs), not here:
        // during a migration the TAP still serves the source's device, and detaching a queue
        // drops the frames it holds.
    }

    /**
     * Every pair's steps on the prestarted threads; then the TAP queues beyond the start's pairs
     * detached, as {@link #bindEnabledPairs} does.
     */
    private void quickstartInParallel(int[] bases) throws IOException {
        try {
            parallel.run(bases, pairEnabled);
        } finally {
            for (int pair = 0; pair < current.pairs(); pair++) {
                bound[pair] |= parallel.bound(pair);
            }
        }
        for (int pair = current.pairs(); pair < vhosts.size(); pair++) {
            setTapQueueAttached(pair, false);
        }
    }

    private void bindEnabledPairs() throws NativeCallException {
        // TAP queues: the enabled pairs attached, the others detached so nothing is steered there.
        for (int pair = 0; pair < vhosts.size(); pair++) {
            setTapQueueAttached(pair, pair < current.pairs() && pairEnabled[pair]);
        }
        for (int pair = 0; pair < current.pairs(); pair++) {
            if (pairEnabled[pair]) {
                bind(pair);
            }
        }
    }

    private void bind(int pair) throws NativeCallException {
        VhostNet v = vhosts.get(pair);
        FileDescriptor queue = tap.queue(pair);
        v.setBackend(VhostNet.RX_QUEUE, queue);
        bound[pair] = true; // from here a failure must unbind rx too
        v.setBackend(VhostNet.TX_QUEUE, queue);
    }

    private void unbind(int pair) throws NativeCallException {
        if (!bound[pair]) {
            return;
        }
        VhostNet v = vhosts.get(pair);
        v.clearBackend(VhostNet.RX_QUEUE);
        v.clearBackend(VhostNet.TX_QUEUE);
        bound[pair] = false;
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
    public synchronized List<QueuePosition> stop() throws IOException {
        if (current == null) {
            throw new IllegalStateException(NAME + " on " + tap.name() + " is not started");
        }
        BackendStart stopping = current;
        IOException failure = null;
        for (int pair = 0; pair < stopping.pairs(); pair++) {
            try {
                unbind(pair);
            } catch (NativeCallException e) {
                failure = addFailure(failure, e);
            }
        }
        List<QueuePosition> positions = new ArrayList<>(stopping.queues().size());
        try {
            for (QueueBinding q : stopping.queues()) {
                positions.add(finalPosition(q, stopping.memory()));
            }
        } catch (IOException | RuntimeException e) {
            failure = addFailure(failure, e);
        } finally {
            current = null;
            resync = null;
            running = false;
            closeParallel();
        }
        if (failure != null) {
            throw failure;
        }
        return List.copyOf(positions);
    }

    /** GET_VRING_BASE (last_avail_idx) and the used index the kernel left in the used ring. */
    private QueuePosition finalPosition(QueueBinding q, GuestMemory memory) throws IOException {
        QueueGeometry before = q.state().geometry();
        int lastAvail = VhostVringBase.decodeSplit(vhosts.get(q.index() / 2).getVringBase(q.index() % 2));
        MemorySegment used = memory.slice(before.deviceAreaAddress(), 4);
        // Acquire: the kernel's used.idx (its release after the used elements), read after the
        // queue stopped, so every element it covers is visible.
        int usedIdx = Short.toUnsignedInt((short) U16.getAcquire(used, 2L));
        int inuse = (lastAvail - usedIdx) & 0xffff;
        if (inuse > before.size()) {
            throw new IOException(String.format("%s: virtqueue %d stopped with last_avail_idx %d and used.idx %d in guest memory: "
                    + "%d in flight exceeds the queue size %d (the used ring was overwritten?)",
                    NAME, q.index(), lastAvail, usedIdx, inuse, before.size()));
        }
        return QueuePosition.split(lastAvail, usedIdx, inuse);
    }

    /** After a failed (pre/quick)start: unbind what was bound, forget the start. Never throws. */
    private void abandon() {
        for (int pair = 0; pair < bound.length; pair++) {
            try {
                unbind(pair);
            } catch (NativeCallException | RuntimeException e) {
                LOG.log(Level.WARNING, NAME + ": cannot unbind pair " + pair + " after a failed start", e);
            }
        }
        current = null;
        resync = null;
        running = false;
        closeParallel();
    }

    /** Ends a parallel quickstart's threads (it ran, or it never will). */
    private void closeParallel() {
        if (parallel != null) {
            parallel.close();
            parallel = null;
        }
    }

    @Override
    public synchronized void setQueuePairEnabled(int pair, boolean enabled) throws IOException {
        Objects.checkIndex(pair, vhosts.size());
        if (current == null || pair >= current.pairs()) {
            return; // not set up: the next start decides from its activePairs
        }
        if (pairEnabled[pair] == enabled) {
            return;
        }
        if (!running) {
            pairEnabled[pair] = enabled; // prestarted: the quickstart attaches and binds what is enabled then
            return;
        }
        if (enabled) {
            setTapQueueAttached(pair, true);
            if (running) {
                bind(pair);
            }
        } else {
            unbind(pair);
            setTapQueueAttached(pair, false);
        }
        pairEnabled[pair] = enabled;
    }

    @Override
    public synchronized void setOffloads(int flags) throws IOException {
        tap.setOffloadFlags(flags);
        tunOffloadFlags = flags;
    }

    @Override
    public synchronized void startDirtyLog(DirtyLog log) throws IOException {
        Objects.requireNonNull(log, "log");
        if (current == null) {
            dirtyLog = log;
            return;
        }
        // QEMU's order on a running device: the log base first, then LOG_ALL, then each ring's log flag.
        long features = vhostFeaturesFor(current.ackedFeatures(), true);
        for (int pair = 0; pair < current.pairs(); pair++) {
            VhostNet v = vhosts.get(pair);
            v.setLogBase(log.userspaceAddress());
            v.setFeatures(features);
            for (int q = 0; q < 2; q++) {
                setVringAddr(v, q, current.queues().get(2 * pair + q).state().geometry(), current.memory(), true);
            }
        }
        dirtyLog = log;
        current = current.withDirtyLog(log);
    }

    @Override
    public synchronized void stopDirtyLog() throws IOException {
        if (current != null && dirtyLog != null) {
            long features = vhostFeaturesFor(current.ackedFeatures(), false);
            for (int pair = 0; pair < current.pairs(); pair++) {
                VhostNet v = vhosts.get(pair);
                for (int q = 0; q < 2; q++) {
                    setVringAddr(v, q, current.queues().get(2 * pair + q).state().geometry(), current.memory(), false);
                }
                v.setFeatures(features);
            }
            current = current.withDirtyLog(null);
        }
        dirtyLog = null;
    }

    @Override
    public BackendTransfer transfer() {
        return new BackendTransfer(BackendTransfer.KIND_TAP, tap.name(), VirtioNetHeader.SIZE, tap.queues());
    }

    // ------------------------------------------------------------------ helpers

    /** The acked bits vhost-net knows (never bit 27: the TAP carries the header), plus LOG_ALL while logging. */
    private long vhostFeaturesFor(long acked, boolean logging) {
        long features = acked & vhostFeatures & ~LOG_ALL & ~VHOST_NET_F_VIRTIO_NET_HDR;
        return logging ? features | LOG_ALL : features;
    }

    private static void setVringAddr(VhostNet v, int q, QueueGeometry s, GuestMemory memory, boolean log)
            throws NativeCallException {
        v.setVringAddr(q, log ? VhostNet.VRING_FLAG_LOG : 0,
                userspaceAddress(memory, s.descTableAddress(), s.descTableBytes()),
                userspaceAddress(memory, s.deviceAreaAddress(), s.deviceAreaBytes()),
                userspaceAddress(memory, s.driverAreaAddress(), s.driverAreaBytes()),
                log ? s.deviceAreaAddress() : 0);
    }

    /** Where guest range [address, +bytes) is mapped in this process (validated before). */
    private static long userspaceAddress(GuestMemory memory, long address, long bytes) {
        int region = memory.findRegion(address, bytes);
        if (region < 0) {
            throw new IllegalArgumentException(String.format("guest range [0x%x, +%d) is not in guest memory: %s",
                    address, bytes, memory.describeMiss(address, bytes)));
        }
        GuestRegion r = memory.region(region);
        return r.segment().address() + (address - r.guestAddress());
    }

    /** The SET_MEM_TABLE regions of a guest memory whose segments are mapped native memory. */
    static List<VhostNet.MemoryRegion> memoryTable(GuestMemory memory) {
        List<VhostNet.MemoryRegion> table = new ArrayList<>();
        for (GuestRegion r : memory.regions()) {
            if (!r.segment().isNative()) {
                throw new IllegalArgumentException(String.format(
                        "guest region at 0x%x is on the Java heap; vhost needs native (mapped) memory", r.guestAddress()));
            }
            table.add(new VhostNet.MemoryRegion(r.guestAddress(), r.size(), r.segment().address()));
        }
        return table;
    }

    private static IOException addFailure(IOException failure, Exception e) {
        IOException io = e instanceof IOException x ? x : new IOException(e.getMessage(), e);
        if (failure == null) {
            return io;
        }
        failure.addSuppressed(io);
        return failure;
    }

    /** The watcher: reports each ring error eventfd that fires to the current start's listener. */
    private void watchErrors() {
        List<FileDescriptor> fds = new ArrayList<>();
        for (EventFd e : errors) {
            fds.add(e.fd());
        }
        fds.add(watcherWake.fd());
        try (DescriptorPoller poller = new DescriptorPoller(fds)) {
            while (!closed) {
                if (poller.poll(-1) == 0) {
                    continue;
                }
                for (int i = 0; i < errors.length; i++) {
                    if (poller.isReadable(i) && errors[i].consume() != 0) {
                        BackendListener l = listener;
                        String reason = String.format("%s on %s: vhost signalled a ring error on virtqueue %d "
                                + "(VHOST_SET_VRING_ERR; a descriptor, index or address the kernel could not use)",
                                NAME, tap.name(), i);
                        if (l != null) {
                            l.badGuestInput(i, reason);
                        } else {
                            LOG.log(Level.WARNING, reason);
                        }
                    }
                }
                watcherWake.consume();
            }
        } catch (NativeCallException | RuntimeException e) {
            if (!closed) {
                LOG.log(Level.ERROR, NAME + ": ring error watcher stopped", e);
            }
        }
    }

    /**
     * Stops the datapath if started, closes every vhost-net descriptor (the kernel drops its
     * references) and the error eventfds, and the TAP when this backend rebuilt it from a transfer.
     */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            if (current != null) {
                BackendListener inUse = current.listener(); // a device still relied on it
                try {
                    stop();
                } catch (IOException | RuntimeException e) {
                    LOG.log(Level.WARNING, NAME + ": stop on close failed", e);
                }
                inUse.backendClosed(this);
            }
            closed = true;
        }
        try {
            watcherWake.signal();
            watcher.join();
        } catch (NativeCallException e) {
            LOG.log(Level.WARNING, NAME + ": cannot wake the error watcher", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        vhosts.forEach(VhostNet::close);
        for (EventFd e : errors) {
            e.close();
        }
        watcherWake.close();
        if (ownsTap) {
            tap.close();
        }
    }

    @Override
    public String toString() {
        return NAME + " on " + tap + " (" + vhosts.size() + " pair" + (vhosts.size() == 1 ? ")" : "s)");
    }
}

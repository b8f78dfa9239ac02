package io.vhostffm.vhost.device;


import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.virtio.net.FeatureNegotiation;
import io.vhostffm.vhost.virtio.net.NetDeviceListener;
import io.vhostffm.vhost.virtio.net.NetDeviceState;
import io.vhostffm.vhost.virtio.net.RssState;
import io.vhostffm.vhost.virtio.net.RxFilter;
import io.vhostffm.vhost.virtio.net.VirtioNetConfigSpace;
import io.vhostffm.vhost.virtio.net.VirtioNetDevice;
import io.vhostffm.vhost.virtio.DeviceStatus;
import io.vhostffm.vhost.virtio.VirtioDevice;
import io.vhostffm.vhost.virtio.VirtioDeviceListener;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vhost.virtio.VirtioTransportException;
import io.vhostffm.vhost.virtio.net.VirtioNetOptions;
import io.vhostffm.vring.GuestMemory;
import io.vhostffm.vring.QueueGeometry;
import io.vhostffm.vring.QueuePosition;
import io.vhostffm.vring.QueueState;
import io.vhostffm.vring.RestoreMode;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Supplier;

/**
 * A whole virtio-net device as a hypervisor runs it: the device model ({@link VirtioNetDevice}),
 * the notification eventfds of every virtqueue, the control queue served in Java, and a
 * {@link NetBackend} moving the frames of the data queues (kernel vhost-net or the userspace
 * datapath), which can be switched live.
 *
 * <h2>Queues</h2>
 * Pair {@code i} is virtqueues {@code rx = 2i}, {@code tx = 2i+1}; the control queue is
 * {@code 2 * max_virtqueue_pairs} when MQ (or RSS) is negotiated, else 2 (virtio 5.1.2). The
 * runtime makes a kick and a call eventfd for each of the {@code 2 * max_virtqueue_pairs + 1}
 * indices; the hypervisor wires them to the guest (kick: the notify register's ioeventfd; call:
 * the queue's interrupt, e.g. an irqfd).
 *
 * <h2>What drives it</h2>
 * A PCI or MMIO transport forwards the driver's register accesses through {@link VirtioDevice},
 * which this class implements: features by word, status, config space, and the per-queue
 * registers (size, the three ring addresses, enable) under that interface's rules: queue
 * registers only before DRIVER_OK and only while the queue is disabled, a queue used only once
 * enabled, every refusal thrown, recorded as {@link #lastError()} and told to the listeners.
 * {@link #configureQueue} sets a queue's registers and enables it in one call.
 * At DRIVER_OK the runtime starts the backend on the configured data queues and the control
 * queue's thread; at reset or DEVICE_NEEDS_RESET it stops both. Control commands reach the
 * backend through the model's {@link NetDeviceListener} calls, which the runtime forwards:
 * GUEST_OFFLOADS_SET to {@link NetBackend#setOffloads}, VQ_PAIRS_SET to
 * {@link NetBackend#setQueuePairEnabled}, filter and RSS changes likewise.
 *
 * <h2>Bad guest input</h2>
 * Reported by a backend ({@link BackendListener}) or met on the control queue: the model enters
 * DEVICE_NEEDS_RESET (the driver gets a config interrupt), the datapath stops, and nothing else
 * happens to the process or other devices. A backend that stopped only the queue pair at fault
 * ({@link BackendListener#queuePairStopped}, the userspace datapath) is left running: its other
 * pairs and the control queue keep serving the driver until it resets the device. Backend reports
 * are handed to a short-lived thread so that a datapath thread never waits on the lock it may
 * itself be stopped under.
 *
 * <h2>Locking</h2>
 * One lock: the device model's monitor. The model holds it while it calls its listener; the
 * runtime's own methods take it first, so the order is always model, then backend.
 *
 * <h2>Ownership</h2>
 * The runtime owns its eventfds and the control queue thread. It does not own the guest memory,
 * the backend(s) or the TAP: the hypervisor closes those after {@link #close()}. Closing the
 * backend the device is using (the one {@link #backend()} returns) is not silent: the device
 * enters DEVICE_NEEDS_RESET with the backend named in {@link #lastError()}, a running driver gets
 * a config interrupt, the listeners hear {@link VirtioDeviceListener#needsReset}, and the closed
 * backend is not stopped again (nor at {@link #close()}). The backend {@link #switchBackend}
 * returns is no longer used and may be closed at once.
 */
public final class NetDeviceRuntime implements VirtioDevice, AutoCloseable {
    /** The virtio device ID of a network device. */
    public static final int DEVICE_TYPE_NET = 1;
    /** The largest queue size a driver may set (as QEMU's VIRTQUEUE_MAX_SIZE). */
    public static final int MAX_QUEUE_SIZE = 1024;

    private static final System.Logger LOG = System.getLogger(NetDeviceRuntime.class.getName());

    private final VirtioNetDevice model;
    private final GuestMemory memory;
    private final int maxPairs;
    private final EventFd[] kicks;
    private volatile long lastNotificationAt = -1;
    /** The control queue's thread, started parked at a prestart; guarded by the model's monitor. */
    private ControlQueueService.Prepared preparedControl; // made at prestart, taken or closed by the next start or stop
    /** The control queue's view of the dirty log, made once (not at each start: no lambda in a switchover). */
    private final Supplier<DirtyLog> dirtyLogSource = this::currentDirtyLog;
    private final EventFd[] calls;
    private final EventFd configInterrupt;
    // The transport's queue registers per virtqueue index; guarded by the model's monitor.
    private final int[] queueSizes;
    private final long[] descTables;
    private final long[] driverAreas;
    private final long[] deviceAreas;
    private final boolean[] queueEnabled;
    private final List<VirtioDeviceListener> listeners = new CopyOnWriteArrayList<>();
    /** A backend that told us it was closed while in use: never stopped again. */
    private volatile NetBackend closedUnderUs;
    /**
     * The reason being reported for a queue pair the backend stopped alone, while the model
     * enters DEVICE_NEEDS_RESET for it (the datapath is then not stopped); guarded by the model's
     * monitor.
     */
    private String pairStoppedAlone;
    /**
     * Device resets so far (written under the model's monitor): a report of a backend started
     * before a reset is dropped after it ({@link StartListener}, {@link #reportBadInput}).
     */
    private volatile int resets;
    /**
     * The backend reports' threads started and not yet seen ended ({@link #startReporter});
     * guarded by itself.
     */
    private final List<Thread> reporters = new ArrayList<>();
    /** Runs last on each report thread; tests hold a report thread there, as a slow end would. */
    volatile Runnable reportEpilogue = () -> { };
    private int configGeneration;
    private byte[] lastConfig;

    // All below guarded by the model's monitor.
    private NetBackend backend;
    private BackendStart lastStart;
    private ControlQueueService control;
    private final List<ControlQueueService> stoppedControls = new ArrayList<>();
    private DirtyLog dirtyLog;
    private int activePairs = 1;
    private int tunOffloadFlags;
    private DatapathState lastStopped;
    private boolean closed;
    private NetBackend fallback;

    /**
     * A device in reset state whose offer is computed against {@code backend}'s capabilities.
     *
     * @throws io.vhostffm.vhost.virtio.net.FeatureNegotiationException when the options ask for what
     *     the backend cannot carry (RING_PACKED on kernel vhost-net)
     * @throws IllegalArgumentException when the backend serves fewer pairs than the options offer
     */
    public NetDeviceRuntime(VirtioNetOptions options, GuestMemory memory, NetBackend backend) throws NativeCallException {
        this(options, backend.capabilities(), memory, backend);
    }

    /**
     * A device whose offer is computed against {@code offerAgainst}, e.g. the features both the
     * kernel and the userspace backend carry, so the device can switch between them whatever the
     * driver acknowledged.
     */
    public NetDeviceRuntime(VirtioNetOptions options, BackendCapabilities offerAgainst, GuestMemory memory,
            NetBackend backend) throws NativeCallException {
        Objects.requireNonNull(options, "options");
        this.memory = Objects.requireNonNull(memory, "memory");
        this.backend = Objects.requireNonNull(backend, "backend");
        this.maxPairs = options.maxQueuePairs();
        if (backend.maxQueuePairs() < maxPairs) {
            throw new IllegalArgumentException("backend " + backend.capabilities().name() + " serves "
                    + backend.maxQueuePairs() + " queue pairs; the device offers " + maxPairs);
        }
        int queues = 2 * maxPairs + 1;
        this.kicks = new EventFd[queues];
        this.calls = new EventFd[queues];
        this.queueSizes = new int[queues];
        this.descTables = new long[queues];
        this.driverAreas = new long[queues];
        this.deviceAreas = new long[queues];
        this.queueEnabled = new boolean[queues];
        Arrays.fill(queueSizes, MAX_QUEUE_SIZE);
        EventFd config = null;
        try {
            for (int i = 0; i < queues; i++) {
                kicks[i] = EventFd.create("virtqueue " + i + " kick");
                calls[i] = EventFd.create("virtqueue " + i + " call");
            }
            config = EventFd.create("virtio-net config interrupt");
        } catch (NativeCallException | RuntimeException e) {
            closeEventFds(kicks, calls);
            throw e;
        }
        this.configInterrupt = config;
        this.model = new VirtioNetDevice(options, offerAgainst, new ModelListener());
        this.lastConfig = model.configSpace();
        model.addChangeObserver(this::noteConfigChange);
    }

    /** Runs after every committed model change, with the model's lock held. */
    private void noteConfigChange() {
        byte[] now = model.configSpace();
        if (!Arrays.equals(now, lastConfig)) {
            lastConfig = now;
            configGeneration++;
        }
    }

    // ------------------------------------------------------------------ what the hypervisor wires

    /** The device model: the transport forwards status, features, config space to it. */
    public VirtioNetDevice model() {
        return model;
    }

    /** The guest memory the device works in. */
    public GuestMemory memory() {
        return memory;
    }

    /** Virtqueues the device has: {@code 2 * max_virtqueue_pairs + 1}. */
    @Override
    public int queueCount() {
        return kicks.length;
    }

    /** The kick eventfd of virtqueue {@code index}: the driver's notifications arrive there. */
    @Override
    public EventFd kick(int index) {
        return kicks[index];
    }

    /** The call eventfd of virtqueue {@code index}: the device interrupts the driver with it. */
    @Override
    public EventFd call(int index) {
        return calls[index];
    }

    /** Signalled when the config space changed under a running driver (the config interrupt). */
    @Override
    public EventFd configInterrupt() {
        return configInterrupt;
    }

    /**
     * The control queue's virtqueue index for the features the driver acknowledged: {@code 2 *
     * max_virtqueue_pairs} with MQ or RSS, else 2.
     */
    public int controlQueueIndex() {
        long acked = model.driverFeatures();
        return VirtioFeature.MQ.in(acked) || VirtioFeature.RSS.in(acked) ? 2 * maxPairs : 2;
    }

    /**
     * Sets virtqueue {@code index}'s registers (queue_size, queue_desc, queue_driver,
     * queue_device) and enables it, as a driver does before DRIVER_OK. The addresses are checked
     * against guest memory when the datapath starts; a bad one then puts the device in NEEDS_RESET.
     *
     * @throws VirtioTransportException when refused (after DRIVER_OK, the queue already enabled,
     *     a size out of range); nothing is changed
     */
    public void configureQueue(int index, int size, long descTable, long driverArea, long deviceArea) {
        synchronized (model) {
            checkQueueWritable(index, "queue registers");
            checkQueueSize(index, size);
            queueSizes[index] = size;
            descTables[index] = descTable;
            driverAreas[index] = driverArea;
            deviceAreas[index] = deviceArea;
            queueEnabled[index] = true;
        }
    }

    /**
     * Migration's restore of virtqueue {@code index}'s registers on a destination whose model was
     * restored (its status may already say DRIVER_OK): sets and enables the queue as the source's
     * driver had it. Refused only while the datapath runs.
     *
     * @throws VirtioTransportException when the datapath runs or the size is out of range
     */
    public void restoreQueue(int index, int size, long descTable, long driverArea, long deviceArea) {
        synchronized (model) {
            checkQueueIndex(index);
            if (lastStart != null) {
                throw refuse("queue " + index + ": registers cannot be restored while the datapath is started");
            }
            checkQueueSize(index, size);
            queueSizes[index] = size;
            descTables[index] = descTable;
            driverAreas[index] = driverArea;
            deviceAreas[index] = deviceArea;
            queueEnabled[index] = true;
        }
    }

    // ------------------------------------------------------------------ the transport's view

    @Override
    public int deviceType() {
        return DEVICE_TYPE_NET;
    }

    @Override
    public int deviceFeatures(int select) {
        return model.deviceFeatures(select);
    }

    @Override
    public int driverFeatures(int select) {
        return select == 0 || select == 1 ? (int) (model.driverFeatures() >>> (32 * select)) : 0;
    }

    @Override
    public boolean writeDriverFeatures(int select, int value) {
        return model.writeDriverFeatures(select, value);
    }

    @Override
    public int status() {
        return model.status();
    }

    @Override
    public int writeStatus(int value) {
        int status = model.writeStatus(value);
        awaitStoppedControls(); // a reset stops the control queue: its thread is gone when this returns
        if (value == 0) {
            awaitReporters(); // and no report of the reset device's backend is left to come
        }
        return status;
    }

    @Override
    public int configSize() {
        return VirtioNetConfigSpace.SIZE;
    }

    @Override
    public byte[] readConfig(int offset, int length) {
        synchronized (model) {
            if (offset < 0 || length < 0 || offset > configSize() - length) {
                throw refuse(String.format("config read of %d bytes at offset %d: outside the %d-byte config space",
                        length, offset, configSize()));
            }
            return model.readConfig(offset, length);
        }
    }

    /**
     * Always refused: a VERSION_1 virtio-net driver writes no field of the config space (5.1.4;
     * the MAC is changed with the control queue's MAC_ADDR_SET).
     */
    @Override
    public void writeConfig(int offset, byte[] data) {
        synchronized (model) {
            throw refuse(String.format("config write of %d bytes at offset %d: the virtio-net config space is "
                    + "read-only to the driver (set the MAC with VIRTIO_NET_CTRL_MAC_ADDR_SET)", data.length, offset));
        }
    }

    @Override
    public int configGeneration() {
        synchronized (model) {
            return configGeneration;
        }
    }

    @Override
    public int queueMaxSize(int queue) {
        checkQueueIndex(queue);
        return MAX_QUEUE_SIZE;
    }

    @Override
    public int queueSize(int queue) {
        synchronized (model) {
            checkQueueIndex(queue);
            return queueSizes[queue];
        }
    }

    @Override
    public void setQueueSize(int queue, int size) {
        synchronized (model) {
            checkQueueWritable(queue, "queue_size");
            checkQueueSize(queue, size);
            queueSizes[queue] = size;
        }
    }

    @Override
    public long queueDescTable(int queue) {
        synchronized (model) {
            checkQueueIndex(queue);
            return descTables[queue];
        }
    }

    @Override
    public void setQueueDescTable(int queue, long guestAddress) {
        synchronized (model) {
            checkQueueWritable(queue, "queue_desc");
            descTables[queue] = guestAddress;
        }
    }

    @Override
    public long queueDriverArea(int queue) {
        synchronized (model) {
            checkQueueIndex(queue);
            return driverAreas[queue];
        }
    }

    @Override
    public void setQueueDriverArea(int queue, long guestAddress) {
        synchronized (model) {
            checkQueueWritable(queue, "queue_driver");
            driverAreas[queue] = guestAddress;
        }
    }

    @Override
    public long queueDeviceArea(int queue) {
        synchronized (model) {
            checkQueueIndex(queue);
            return deviceAreas[queue];
        }
    }

    @Override
    public void setQueueDeviceArea(int queue, long guestAddress) {
        synchronized (model) {
            checkQueueWritable(queue, "queue_device");
            deviceAreas[queue] = guestAddress;
        }
    }

    @Override
    public boolean queueEnabled(int queue) {
        synchronized (model) {
            checkQueueIndex(queue);
            return queueEnabled[queue];
        }
    }

    @Override
    public void enableQueue(int queue) {
        synchronized (model) {
            checkQueueIndex(queue);
            if (queueEnabled[queue]) {
                return;
            }
            checkQueueWritable(queue, "queue_enable");
            queueEnabled[queue] = true;
        }
    }

    @Override
    public void notifyQueue(int queue) {
        checkQueueIndex(queue);
        try {
            kicks[queue].signal();
        } catch (NativeCallException e) {
            throw new IllegalStateException("virtqueue " + queue + ": the kick eventfd failed: " + e.getMessage(), e);
        }
    }

    @Override
    public Optional<String> lastError() {
        return model.lastError();
    }

    @Override
    public void addListener(VirtioDeviceListener listener) {
        listeners.add(Objects.requireNonNull(listener, "listener"));
    }

    private void checkQueueIndex(int queue) {
        if (queue < 0 || queue >= kicks.length) {
            throw refuse("queue " + queue + " does not exist: the device has " + kicks.length + " virtqueues");
        }
    }

    /** Queue registers are writable before DRIVER_OK and while the queue is disabled (virtio 4.1.4.3.2). */
    private void checkQueueWritable(int queue, String register) {
        checkQueueIndex(queue);
        int status = model.status();
        if ((status & DeviceStatus.DRIVER_OK) != 0) {
            throw refuse("queue " + queue + ": " + register + " write refused: status is "
                    + DeviceStatus.describe(status) + "; queue registers are read-only after DRIVER_OK until a reset");
        }
        if (queueEnabled[queue]) {
            throw refuse("queue " + queue + ": " + register
                    + " write refused: the queue is enabled; its registers are read-only until a reset");
        }
    }

    private void checkQueueSize(int queue, int size) {
        if (size < 1 || size > MAX_QUEUE_SIZE) {
            throw refuse("queue " + queue + ": queue_size " + size + " refused: must be in [1, " + MAX_QUEUE_SIZE + "]");
        }
        long acked = model.driverFeatures();
        boolean splitNegotiated = (model.status() & DeviceStatus.FEATURES_OK) != 0 && !VirtioFeature.RING_PACKED.in(acked);
        if (splitNegotiated && Integer.bitCount(size) != 1) {
            throw refuse("queue " + queue + ": queue_size " + size + " refused: a split ring's size is a power of two");
        }
    }

    /** Records and announces a refusal; the caller throws what this returns. Holds the model's lock. */
    private VirtioTransportException refuse(String why) {
        model.reportRefusal(why); // lastError, and the model listener forwards it to ours
        return new VirtioTransportException(why);
    }

    /** The backend now serving the data queues. */
    public NetBackend backend() {
        synchronized (model) {
            return backend;
        }
    }

    /** Whether the data queues are being served. */
    public boolean isDatapathRunning() {
        synchronized (model) {
            return backend.isRunning();
        }
    }

    /** The queue states of the last stop (reset, NEEDS_RESET, {@link #stopDatapath}), or null. */
    public DatapathState lastStoppedState() {
        synchronized (model) {
            return lastStopped;
        }
    }

    // ------------------------------------------------------------------ datapath life cycle

    /**
     * Stops the datapath (backend and control queue) and returns where every queue stood:
     * migration's stop-and-copy, or the first half of a switch.
     *
     * @throws IllegalStateException when the datapath was not started
     */
    public DatapathState stopDatapath() throws IOException {
        DatapathState stopped;
        synchronized (model) {
            if (lastStart == null) {
                throw new IllegalStateException("the datapath is not started");
            }
            stopped = stopLocked(false);
        }
        awaitStoppedControls();
        return stopped;
    }

    /**
     * Stops the datapath as {@link #stopDatapath} does, but returns as soon as nothing touches
     * the queues any more, without waiting for threads to end: the backend's {@link
     * NetBackend#quiesce} (a userspace worker asleep is claimed where it sleeps), and the control
     * queue's service stopped without waking its thread, which sees the stop under the model's
     * lock whenever it wakes, before it could touch its queue. For a migration source inside the
     * downtime; {@link #awaitDatapathStopped} (or any later start, prestart, reset or close) wakes
     * the control queue's thread and waits for the threads.
     *
     * @throws IllegalStateException when the datapath is not started
     */
    public DatapathState quiesceDatapath() throws IOException {
        synchronized (model) {
            if (lastStart == null) {
                throw new IllegalStateException("the datapath is not started");
            }
            return stopLocked(true);
        }
    }

    /**
     * Waits (bounded) for the threads a {@link #quiesceDatapath} left to end: the backend's,
     * then the stopped control queue's; a resource count taken afterwards is exact.
     */
    public void awaitDatapathStopped() {
        NetBackend quiesced;
        synchronized (model) {
            quiesced = backend;
        }
        quiesced.awaitStopped(); // not under the model's lock: an ending worker may report through it
        awaitStoppedControls();
    }

    /**
     * Wakes the stopped control queue threads a quiesce left asleep, so that they end without
     * waiting for a kick: a start after a quiesce that nobody awaited leaves no thread behind.
     */
    private void wakeStoppedControls() {
        wakeToEnd(stoppedControls);
    }

    /** Wakes each stopped control queue thread so that it ends (a quiesce stopped it without waking it). */
    private static void wakeToEnd(List<ControlQueueService> stopped) {
        for (ControlQueueService c : stopped) {
            c.wakeToEnd();
        }
    }

    /** How long a stop waits for a stopped control queue thread to end (it ends after the chain in hand). */
    private static final long CONTROL_THREAD_END_MILLIS = 5_000;

    /**
     * Waits, at most {@value #CONTROL_THREAD_END_MILLIS} ms each, for the control queue threads
     * stopped so far to end, so that a stop or a reset returns with their wake-up eventfds closed
     * (a resource count taken then is exact). Never under the model's lock (a stopped thread
     * takes it to see the stop) nor on a control queue thread itself; a thread that does not end
     * in time is logged and left for {@link #close} to join.
     */
    private void awaitStoppedControls() {
        if (Thread.holdsLock(model)) {
            return;
        }
        List<ControlQueueService> stopping;
        synchronized (model) {
            stopping = new ArrayList<>(stoppedControls);
        }
        wakeToEnd(stopping);
        for (ControlQueueService c : stopping) {
            if (!c.awaitEnd(CONTROL_THREAD_END_MILLIS)) {
                LOG.log(Level.WARNING, "control queue " + c.index() + ": its stopped thread did not end within "
                        + CONTROL_THREAD_END_MILLIS + " ms; close() joins it");
            }
        }
        synchronized (model) {
            stoppedControls.removeIf(ControlQueueService::ended);
        }
    }

    /**
     * A classic start of the datapath from saved states (a migration destination without early
     * start, or a restart after {@link #stopDatapath}): the backend's {@link NetBackend#start},
     * then the control queue; each queue is notified once afterwards.
     */
    public void startDatapath(DatapathState state) throws IOException {
        synchronized (model) {
            requireStopped();
            wakeStoppedControls();
            discardPreparedControl(); // a failed quickstart's: this start makes its own
            BackendStart start = startFor(state.dataQueues());
            backend.start(start);
            lastStart = start;
            startControl(state, RestoreMode.CLASSIC);
            notifyAllQueues();
        }
    }

    /**
     * Migration's early start on the destination: the backend's {@link NetBackend#prestart} from
     * states whose indices may still change (the guest runs on the source). Nothing moves until
     * {@link #quickstartDatapath}.
     */
    public void prestartDatapath(List<QueueState> dataQueues) throws IOException {
        synchronized (model) {
            requireStopped();
            wakeStoppedControls();
            BackendStart start = startFor(dataQueues);
            backend.prestart(start); // a failure leaves the backend stopped, lastStart null
            lastStart = start;
            discardPreparedControl();
            // Quickstart serves the control queue from it: its eventfd, poller and thread made now
            // (closed again when the final state has no control queue).
            int index = controlQueueIndex();
            try {
                preparedControl = ControlQueueService.prepare(index, kicks[index]);
            } catch (NativeCallException | RuntimeException e) {
                // Not fatal: quickstart makes its own, as a classic start does.
                LOG.log(Level.WARNING, "control queue " + index + ": could not be prepared at prestart", e);
            }
        }
    }

    /**
     * A rehearsal of {@link #quickstartDatapath} during a migration's precopy, after
     * {@link #prestartDatapath}: the same code with {@code state}'s positions, through the
     * backend's {@link NetBackend#rehearseQuickstart}, stopping before the first write to guest
     * memory, a TAP, an eventfd or the kernel (the guest runs on the source, which may share
     * them), so that the switchover's code is loaded and warm when it runs. The control queue is
     * not started and no queue notified. The datapath stays prestarted.
     *
     * @throws IllegalStateException when not prestarted, or running
     */
    public void rehearseQuickstart(DatapathState state) throws IOException {
        synchronized (model) {
            if (lastStart == null || backend.isRunning()) {
                throw new IllegalStateException("a rehearsal needs a prestarted, not running, datapath");
            }
            List<QueuePosition> positions = positionsOf(state.dataQueues());
            backend.rehearseQuickstart(positions);
            // The quickstart's next step, run for its code alone (loaded and compiled before the
            // switchover); the start it makes is dropped: only the quickstart keeps one.
            lastStart.withPositions(positions);
            rehearseNotifications();
        }
    }

    /**
     * The code of the quickstart's notifications (a signal per kick and call, the TAP queues made
     * non-blocking) run on an eventfd of the rehearsal's own, never on the guest's or the TAP's: a
     * fresh destination otherwise runs it for the first time inside the downtime.
     */
    private void rehearseNotifications() throws NativeCallException {
        try (EventFd scratch = EventFd.create("quickstart rehearsal")) {
            scratch.fd().setNonBlocking(true);
            for (int i = 0; i < kicks.length; i++) {
                scratch.signal();
                scratch.signal();
            }
            scratch.consume();
        }
    }

    /**
     * Migration's switchover on the destination after {@link #prestartDatapath}: the backend's
     * {@link NetBackend#quickstart} with the final indices, then the control queue, then one
     * notification per queue (a stale avail_event under EVENT_IDX could otherwise leave the guest
     * never kicking again).
     */
    public void quickstartDatapath(DatapathState finalState) throws IOException {
        synchronized (model) {
            if (lastStart == null || backend.isRunning()) {
                throw new IllegalStateException("quickstart needs a prestarted, not running, datapath");
            }
            List<QueuePosition> finalPositions = positionsOf(finalState.dataQueues());
            try {
                backend.quickstart(finalPositions);
            } catch (IOException | RuntimeException e) {
                lastStart = null; // the backend stopped itself; the caller may fall back (switchBackend, startDatapath)
                throw e;
            }
            lastStart = lastStart.withPositions(finalPositions);
            try {
                startControl(finalState, RestoreMode.CLASSIC, preparedControl);
            } finally {
                discardPreparedControl(); // taken by the service, or (another index, a failure) closed
            }
            lastNotificationAt = System.nanoTime();
            notifyAllQueues();
        }
    }

    /**
     * When the last quickstart began its notification of every queue (its backend and control
     * queue started by then), in {@link System#nanoTime()} ns; -1 before any. For the
     * migration's downtime accounting.
     */
    public long lastNotificationAt() {
        return lastNotificationAt;
    }

    /**
     * Switches the data queues to another backend without losing or duplicating a frame: the
     * current backend stops ({@link NetBackend#stop}), and {@code next} starts from exactly the
     * queue states it returned, with the same eventfds, offloads, active pairs and dirty log.
     * Each data queue is kicked once afterwards so the new backend looks at what the guest made
     * available during the switch. The control queue keeps running in Java throughout.
     *
     * <p>If {@code next} fails to start, the previous backend is restarted from the same states
     * and the failure is thrown; if that fails too, the device enters NEEDS_RESET.
     *
     * @return the previous backend (still owned by the caller)
     * @throws IllegalArgumentException when {@code next} cannot carry the negotiated features or
     *     serves too few pairs
     */
    public NetBackend switchBackend(NetBackend next) throws IOException {
        Objects.requireNonNull(next, "next");
        synchronized (model) {
            NetBackend previous = backend;
            if (next == previous) {
                return previous;
            }
            checkCanServe(next);
            next.setRxFilter(model.rxFilter());
            next.setRss(model.netState().rss());
            next.setOffloads(tunOffloadFlags);
            if (lastStart == null) {
                backend = next; // nothing started: the next start uses it
                return previous;
            }
            if (!previous.isRunning()) {
                // prestarted only (early migration): the next backend is prestarted in its place
                BackendStart prestart = lastStart.withPositions(previous.stop());
                lastStart = null;
                next.prestart(prestart);
                backend = next;
                lastStart = prestart;
                return previous;
            }
            List<QueuePosition> positions = previous.stop();
            BackendStart start = lastStart.withPositions(positions).withActivePairs(Math.min(activePairs, lastStart.pairs()))
                    .withTunOffloadFlags(tunOffloadFlags).withDirtyLog(dirtyLog);
            try {
                next.start(start);
            } catch (IOException | RuntimeException e) {
                try {
                    previous.start(start);
                } catch (IOException | RuntimeException again) {
                    e.addSuppressed(again);
                    model.reportBadGuestInput("no backend could be started after a failed switch to "
                            + next.capabilities().name() + ": " + e);
                }
                throw e;
            }
            backend = next;
            lastStart = start;
            for (QueueBinding q : start.queues()) {
                kicks[q.index()].signal();
            }
            return previous;
        }
    }

    /**
     * The backend to switch to when the current one reports its process gone
     * ({@link BackendListener#backendGone}, e.g. a vhost-user backend that died): the switch is
     * {@link #switchBackend} from the positions the gone backend's {@link NetBackend#stop} gives,
     * so the guest's queues continue on the same rings. Used once: afterwards it is the device's
     * backend and no fallback is set. Without one (null, the default) a gone backend puts the
     * device in DEVICE_NEEDS_RESET. When the switch fails (the gone backend cannot say where its
     * rings stopped, as for packed rings, or the fallback does not start) the device enters
     * DEVICE_NEEDS_RESET too, but with the fallback as its backend: the driver's reset and
     * DRIVER_OK start the fallback on fresh rings. The caller keeps owning both backends.
     */
    public void setFallbackBackend(NetBackend fallback) {
        synchronized (model) {
            this.fallback = fallback;
        }
    }

    /** Switches to the fallback after {@code gone} reported its process gone; NEEDS_RESET when that fails. */
    private void fallBack(NetBackend gone, String reason) {
        synchronized (model) {
            if (closed || backend != gone || lastStart == null) {
                return; // no longer in use (switched away or stopped meanwhile)
            }
            NetBackend next = fallback;
            if (next == null) {
                model.reportBadGuestInput("backend " + gone + " is gone (" + reason + ") and no fallback backend is set");
                return;
            }
            fallback = null;
            try {
                checkCanServe(next);
            } catch (IllegalArgumentException e) {
                model.reportBadGuestInput("backend " + gone + " is gone (" + reason + ") and the fallback " + next
                        + " cannot serve this device: " + e.getMessage());
                return;
            }
            try {
                switchBackend(next);
                LOG.log(Level.WARNING, "backend " + gone + " is gone (" + reason + "); the device runs on "
                        + next + " now");
            } catch (IOException | RuntimeException e) {
                // The gone backend can never serve again; the fallback can, from fresh rings: it
                // becomes the device's backend, stopped, and the driver's reset and DRIVER_OK start
                // it. (Packed rings end here: where a dead backend left them is not in guest memory.)
                if (backend == gone) {
                    lastStart = null; // the gone backend stopped itself in the failed switch
                    backend = next;
                }
                model.reportBadGuestInput("backend " + gone + " is gone (" + reason + ") and the switch to the fallback "
                        + next + " failed: " + e + "; the device starts on the fallback after the driver resets it");
            }
        }
    }

    /**
     * Starts dirty page logging into {@code log} (sized for this guest memory): the backend marks
     * what its datapath writes, the control queue what it writes. Works stopped or running; a
     * later start keeps logging.
     */
    public void startDirtyLog(DirtyLog log) throws IOException {
        Objects.requireNonNull(log, "log");
        synchronized (model) {
            if (lastStart != null) {
                backend.startDirtyLog(log);
                lastStart = lastStart.withDirtyLog(log);
            }
            dirtyLog = log;
        }
    }

    /** Stops dirty page logging (the log itself stays open; the caller closes it). */
    public void stopDirtyLog() throws IOException {
        synchronized (model) {
            if (dirtyLog != null && lastStart != null) {
                backend.stopDirtyLog();
                lastStart = lastStart.withDirtyLog(null);
            }
            dirtyLog = null;
        }
    }

    private DirtyLog currentDirtyLog() {
        synchronized (model) {
            return dirtyLog;
        }
    }

    // ------------------------------------------------------------------ internals

    private void requireStopped() {
        if (closed) {
            throw new IllegalStateException("device closed");
        }
        if (lastStart != null && backend.isRunning()) {
            throw new IllegalStateException("the datapath is running; stop it first");
        }
    }

    private void checkCanServe(NetBackend next) {
        if (next.maxQueuePairs() < maxPairs) {
            throw new IllegalArgumentException("backend " + next.capabilities().name() + " serves " + next.maxQueuePairs()
                    + " queue pairs; the device offers " + maxPairs);
        }
        long datapath = model.driverFeatures() & ~FeatureNegotiation.MODEL_FEATURES;
        long missing = datapath & ~next.capabilities().supportedFeatures();
        if (missing != 0) {
            throw new IllegalArgumentException("backend " + next.capabilities().name()
                    + " cannot carry the negotiated " + VirtioFeature.describe(missing));
        }
    }

    /** A start for the data queues in {@code states}, with the device's current settings. */
    private BackendStart startFor(List<QueueState> states) {
        List<QueueBinding> bindings = new ArrayList<>(states.size());
        for (int i = 0; i < states.size(); i++) {
            bindings.add(new QueueBinding(i, states.get(i), kicks[i], calls[i]));
        }
        int pairs = states.size() / 2;
        return new BackendStart(memory, model.driverFeatures(), bindings, Math.max(1, Math.min(activePairs, pairs)),
                tunOffloadFlags, dirtyLog, new StartListener(resets));
    }

    /** The fresh queue states of what the transport configured, for a driver's first start. */
    private DatapathState configuredState(NetDeviceState state) throws IOException {
        long acked = state.virtio().ackedFeatures();
        boolean eventIdx = VirtioFeature.EVENT_IDX.in(acked);
        boolean packed = VirtioFeature.RING_PACKED.in(acked);
        boolean multiqueue = VirtioFeature.MQ.in(acked) || VirtioFeature.RSS.in(acked);
        int pairLimit = multiqueue ? maxPairs : 1;
        List<QueueState> data = new ArrayList<>();
        for (int pair = 0; pair < pairLimit; pair++) {
            int rx = 2 * pair;
            int tx = 2 * pair + 1;
            if (!queueEnabled[rx] || !queueEnabled[tx]) {
                break; // a driver may set up fewer pairs than offered; they must come first
            }
            data.add(fresh(rx, eventIdx, packed));
            data.add(fresh(tx, eventIdx, packed));
        }
        if (data.isEmpty()) {
            throw new IOException("DRIVER_OK without virtqueues 0 and 1 enabled");
        }
        QueueState controlQueue = null;
        int controlIndex = -1;
        if (VirtioFeature.CTRL_VQ.in(acked)) {
            controlIndex = multiqueue ? 2 * maxPairs : 2;
            if (!queueEnabled[controlIndex]) {
                throw new IOException("DRIVER_OK with CTRL_VQ but control virtqueue " + controlIndex + " not enabled");
            }
            controlQueue = fresh(controlIndex, eventIdx, packed);
        }
        return new DatapathState(data, controlQueue, controlIndex);
    }

    /** A fresh queue state from virtqueue {@code index}'s registers. */
    private QueueState fresh(int index, boolean eventIdx, boolean packed) {
        return QueueState.fresh(new QueueGeometry(queueSizes[index], descTables[index], driverAreas[index],
                deviceAreas[index], eventIdx, packed));
    }

    private static List<QueuePosition> positionsOf(List<QueueState> states) {
        return states.stream().map(QueueState::position).toList();
    }

    private void startControl(DatapathState state, RestoreMode mode) throws NativeCallException {
        startControl(state, mode, (ControlQueueService.Prepared) null);
    }

    private void startControl(DatapathState state, RestoreMode mode, ControlQueueService.Prepared prepared)
            throws NativeCallException {
        if (state.controlQueue() == null) {
            return;
        }
        int index = state.controlQueueIndex();
        control = new ControlQueueService(model, memory, index, state.controlQueue(), mode, kicks[index], calls[index],
                dirtyLogSource, prepared);
    }

    /** Closes the control queue's prepared parts (eventfd, poller, parked thread) if quickstart did not take them. */
    private void discardPreparedControl() {
        if (preparedControl != null) {
            preparedControl.close();
            preparedControl = null;
        }
    }

    /** Stops backend and control queue; returns their states. Caller holds the model's monitor. */
    private DatapathState stopLocked(boolean quiesce) throws IOException {
        discardPreparedControl();
        QueueState controlState = null;
        int controlIndex = -1;
        if (control != null) {
            controlIndex = control.index();
            // A quiesce leaves the thread asleep until awaitDatapathStopped (or any later start,
            // prestart, stop, reset or close) wakes it: outside the downtime.
            controlState = quiesce ? control.stopWithoutWaking() : control.stop();
            // Only services whose thread has not ended yet are kept for close() to join: the
            // list stays as short as the threads still winding down, however often the
            // datapath is stopped and started.
            stoppedControls.removeIf(ControlQueueService::ended);
            stoppedControls.add(control);
            control = null;
        }
        List<QueueState> data = List.of();
        try {
            // A backend closed under us stopped itself and has nothing to give back.
            if (lastStart != null && backend != closedUnderUs) {
                List<QueuePosition> positions = quiesce ? backend.quiesce() : backend.stop();
                data = lastStart.withPositions(positions).queues().stream().map(QueueBinding::state).toList();
            }
        } finally {
            lastStart = null;
        }
        lastStopped = new DatapathState(data, controlState, controlIndex);
        return lastStopped;
    }

    /** A spare notification per queue in both directions: harmless, and it unsticks event idx. */
    private void notifyAllQueues() throws NativeCallException {
        for (int i = 0; i < kicks.length; i++) {
            kicks[i].signal();
            calls[i].signal();
        }
    }

    /**
     * The backends' reports for one start: each becomes DEVICE_NEEDS_RESET with its cause. One
     * per {@link BackendStart}, holding the reset count of its start, so that a report of a
     * backend started before a reset is told apart from one of the start after it, whichever
     * thread makes it and however late.
     */
    private final class StartListener implements BackendListener {
        private final int resetsAtStart;

        StartListener(int resetsAtStart) {
            this.resetsAtStart = resetsAtStart;
        }

        @Override
        public void badGuestInput(int queueIndex, String reason) {
            reportBadInput(reason, false, resetsAtStart);
        }

        @Override
        public void queuePairStopped(int queueIndex, String reason) {
            // As above, but the model's needsReset leaves the backend's other pairs running.
            reportBadInput(reason, true, resetsAtStart);
        }

        @Override
        public void backendGone(NetBackend gone, String reason) {
            // Not on the caller's thread: the switch stops the gone backend, which may wait for it.
            startReporter("virtio-net-backend-gone", () -> fallBack(gone, reason));
        }

        @Override
        public void backendClosed(NetBackend closed) {
            closedUnderUs = closed; // at once: a stop before the report below must not stop it again
            startReporter("virtio-net-backend-closed", () -> {
                synchronized (model) {
                    if (lastStart == null || backend != closed) {
                        return; // no longer in use (switched away or stopped meanwhile)
                    }
                    model.reportBadGuestInput("backend " + closed + " was closed while the device used it");
                }
            });
        }
    }

    /**
     * DEVICE_NEEDS_RESET for bad guest input a backend met, from a thread of its own: a datapath
     * thread reporting here may be the one the resulting stop waits for. A report that reaches
     * the model only after the driver reset the device is dropped: the input it names belonged
     * to rings the reset discarded, and applied late it would fail the device the driver is
     * setting up again with a reason that is no longer true.
     *
     * @param resetsAtStart the reset count when the reporting backend was started
     */
    private void reportBadInput(String reason, boolean pairAlone, int resetsAtStart) {
        startReporter("virtio-net-bad-input", () -> {
            synchronized (model) {
                if (resets != resetsAtStart) {
                    LOG.log(Level.DEBUG, "virtio-net: a report from before the last reset dropped: {0}", reason);
                    return;
                }
                pairStoppedAlone = pairAlone ? reason : null;
                try {
                    model.reportBadGuestInput(reason);
                } finally {
                    pairStoppedAlone = null;
                }
            }
        });
    }

    /** How long a reset or close waits for each report thread (it only takes the model's lock). */
    private static final long REPORT_THREAD_END_MILLIS = 5_000;

    /**
     * Starts a backend report's thread. It stays in {@link #reporters} until a reset or close has
     * joined it (or, ended, the next start prunes it): a thread that took itself out at the end of
     * its report would, for the few instructions before it ends, be neither waited for nor gone.
     * Adding and starting under the set's lock keeps a not-yet-started thread out of a waiter's
     * copy (joining it would return at once).
     */
    private void startReporter(String name, Runnable report) {
        Thread t = Thread.ofPlatform().daemon().name(name).unstarted(() -> {
            report.run();
            reportEpilogue.run();
        });
        synchronized (reporters) {
            pruneEndedReporters();
            reporters.add(t);
            t.start();
        }
    }

    /**
     * Waits, outside the model's lock (the reports take it), at most {@value #REPORT_THREAD_END_MILLIS}
     * ms each, for the report threads started so far to end: after a reset none is left to act on
     * the device the driver sets up next. The ended ones leave the set.
     */
    private void awaitReporters() {
        if (Thread.holdsLock(model)) {
            return;
        }
        List<Thread> started;
        synchronized (reporters) {
            started = List.copyOf(reporters);
        }
        for (Thread t : started) {
            if (t == Thread.currentThread()) {
                continue; // a report's own listener resetting or closing the device
            }
            try {
                if (!t.join(Duration.ofMillis(REPORT_THREAD_END_MILLIS))) {
                    LOG.log(Level.WARNING, "virtio-net: report thread " + t.getName() + " did not end within "
                            + REPORT_THREAD_END_MILLIS + " ms");
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
        synchronized (reporters) {
            pruneEndedReporters();
        }
    }

    /** Drops the report threads that have ended; called with {@link #reporters}' lock held. */
    private void pruneEndedReporters() {
        reporters.removeIf(r -> r.getState() == Thread.State.TERMINATED);
    }

    /** The model's effects, forwarded to whichever backend serves now. Runs with the model's lock held. */
    private final class ModelListener implements NetDeviceListener {
        @Override
        public void driverOk(NetDeviceState state) throws IOException {
            requireStopped();
            wakeStoppedControls();
            discardPreparedControl(); // a failed quickstart's: this start makes its own
            DatapathState fresh = configuredState(state);
            BackendStart start = startFor(fresh.dataQueues());
            backend.start(start);
            lastStart = start;
            try {
                startControl(fresh, RestoreMode.CLASSIC);
            } catch (NativeCallException | RuntimeException e) {
                stopQuietly();
                throw e instanceof NativeCallException n ? n : new IOException("control queue: " + e.getMessage(), e);
            }
        }

        @Override
        public void reset() {
            stopQuietly();
            resets++; // reports of the starts before this one are dropped from now on
            Arrays.fill(queueSizes, MAX_QUEUE_SIZE);
            Arrays.fill(descTables, 0);
            Arrays.fill(driverAreas, 0);
            Arrays.fill(deviceAreas, 0);
            Arrays.fill(queueEnabled, false);
            activePairs = 1;
        }

        @Override
        public void needsReset(String reason) {
            if (!reason.equals(pairStoppedAlone)) {
                stopQuietly();
            }
            for (VirtioDeviceListener l : listeners) {
                try {
                    l.needsReset(reason);
                } catch (RuntimeException e) {
                    LOG.log(Level.WARNING, "virtio-net: a device listener failed on needsReset", e);
                }
            }
        }

        @Override
        public void refused(String reason) {
            for (VirtioDeviceListener l : listeners) {
                try {
                    l.refused(reason);
                } catch (RuntimeException e) {
                    LOG.log(Level.WARNING, "virtio-net: a device listener failed on a refusal", e);
                }
            }
        }

        @Override
        public void guestOffloadsChanged(long guestOffloads, int tunOffloadFlagsNow) throws IOException {
            backend.setOffloads(tunOffloadFlagsNow);
            tunOffloadFlags = tunOffloadFlagsNow;
        }

        @Override
        public void queuePairsChanged(int pairs) throws IOException {
            if (lastStart != null) {
                backend.setActiveQueuePairs(lastStart.pairs(), pairs);
            }
            activePairs = pairs;
        }

        @Override
        public void rxFilterChanged(RxFilter filter) throws IOException {
            backend.setRxFilter(filter);
        }

        @Override
        public void rssChanged(RssState rss) throws IOException {
            backend.setRss(rss);
        }

        @Override
        public void configChanged() {
            try {
                configInterrupt.signal();
            } catch (NativeCallException e) {
                LOG.log(Level.WARNING, "virtio-net: config interrupt failed", e);
            }
        }
    }

    private void stopQuietly() {
        if (lastStart == null && control == null) {
            return;
        }
        try {
            stopLocked(false);
        } catch (IOException | RuntimeException e) {
            LOG.log(Level.WARNING, "virtio-net: stopping the datapath failed", e);
        }
    }

    /** Stops the datapath, waits for the control queue thread, closes the eventfds. Idempotent. */
    @Override
    public void close() {
        List<ControlQueueService> toJoin;
        synchronized (model) {
            if (closed) {
                return;
            }
            closed = true;
            discardPreparedControl();
            stopQuietly();
            toJoin = new ArrayList<>(stoppedControls);
            stoppedControls.clear();
        }
        wakeToEnd(toJoin);
        for (ControlQueueService c : toJoin) {
            try {
                c.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        awaitReporters();
        closeEventFds(kicks, calls);
        configInterrupt.close();
    }

    private static void closeEventFds(EventFd[] kicks, EventFd[] calls) {
        for (EventFd e : kicks) {
            if (e != null) e.close();
        }
        for (EventFd e : calls) {
            if (e != null) e.close();
        }
    }

    @Override
    public String toString() {
        return "NetDeviceRuntime[" + maxPairs + " pairs, backend " + backend.capabilities().name() + "]";
    }
}

package io.vhostffm.vhost.device.userspace;

import io.vhostffm.vhost.internal.ParkedThreads;
import io.vhostffm.vhost.internal.RateLimitedWarnings;

import io.vhostffm.vhost.device.DirtyLog;
import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.IoUring;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.virtio.net.RxFilter;
import io.vhostffm.vhost.virtio.net.VirtioNetDevice;
import io.vhostffm.vhost.device.BackendListener;
import io.vhostffm.vhost.device.DeviceQueues;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vring.DeviceQueue;
import io.vhostffm.vring.GuestMemory;
import io.vhostffm.vring.GuestMemoryException;
import io.vhostffm.vring.QueuePosition;
import io.vhostffm.vring.QueueState;
import io.vhostffm.vring.RestoreMode;
import io.vhostffm.vring.VirtqueueException;
import java.lang.System.Logger;
import java.lang.System.Logger.Level;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.locks.LockSupport;
import java.util.function.Supplier;

/**
 * The userspace datapath of a virtio-net device: Java serving the same virtqueues the kernel's
 * vhost-net would, between guest memory and TAP queues. The datapath migration falls back to,
 * and the only one for packed rings.
 *
 * <ul>
 * <li>Transmit: each chain's readable buffers ({@code virtio_net_hdr_v1} + frame) go to the TAP in
 *     one writev whose iovecs point into guest memory; the chain completes with length 0. The
 *     writevs are system calls of their own, or a round's go through one io_uring enter
 *     ({@link TransmitIo}).</li>
 * <li>Receive: mergeable receive buffers; one readv straight into the guest's posted buffers,
 *     {@code num_buffers} set in the first header, the receive filter applied, no frame dropped
 *     for lack of buffers (the TAP is not read until the guest posts some).</li>
 * <li>Worker threads ({@link #workerThreads(int, int) how many}), each serving one or more queue
 *     pairs (assigned round-robin), sleep in one poll(2) on their pairs' kick eventfds and TAP
 *     queues and a stop eventfd; call eventfds are signalled only when the ring says so (event
 *     idx or flags).</li>
 * <li>Every page it writes in guest memory (used elements, used index, notification area,
 *     receive buffers) is marked in the {@link DirtyLog}, if one is given.</li>
 * <li>{@link #addPairs} adds queue pairs to a running datapath (a VQ_PAIRS_SET that enables
 *     more of them): the pairs already served never pause; the new ones join a worker between
 *     two of its rounds, or get a worker of their own while the thread count allows.</li>
 * <li>{@link #stop()} ends the threads and returns each queue's state, with chains taken but not
 *     used given back, so another backend (kernel vhost-net, a new userspace datapath,
 *     migration) continues exactly where this one stopped: no frame lost or sent twice.</li>
 * <li>Bad guest input on a queue (a malformed chain, a buffer outside guest memory, a chain
 *     that breaks virtio-net's rules) stops that queue's pair only: nothing more is read from or
 *     written to its rings (its worker goes on with its other pairs, or ends if it has none),
 *     and the listener hears {@link BackendListener#queuePairStopped} naming the queue, index,
 *     address and rule (the device goes to DEVICE_NEEDS_RESET). The other pairs, on the same
 *     worker or another, keep carrying frames until the datapath is stopped (the driver's
 *     reset). Nothing outside guest memory is touched. Any other failure of a pair (a TAP or
 *     poll error) stops every pair.</li>
 * </ul>
 *
 * <h2>Usage</h2>
 * <pre>{@code
 * var pair = new QueuePairConfig(rxState, txState, rxKick, rxCall, txKick, txCall, tap.queue(0));
 * UserspaceDatapath backend = UserspaceDatapath.start(memory, List.of(pair), device, dirtyLog);
 * ...
 * List<QueueState> states = backend.stop();   // rx0, tx0, rx1, tx1, ...
 * UserspaceDatapath next = UserspaceDatapath.start(memory,
 *         List.of(pair.withStates(states.get(0), states.get(1))), device, dirtyLog);
 * }</pre>
 *
 * <p>Thread-safe: {@link #stop()} may be called from any thread, including from the device's
 * {@code needsReset} callback on a datapath thread.
 */
public final class UserspaceDatapath implements AutoCloseable {
    private static final Logger LOG = System.getLogger(UserspaceDatapath.class.getName());
    /**
     * A stopped pair's reason, which a guest can cause at every start (each reset starts a new
     * datapath): rate-limited for the process, per call site as the kernel does.
     */
    private static final RateLimitedWarnings PAIR_STOPPED_WARNINGS = new RateLimitedWarnings(LOG);

    /**
     * Opens the device side of one virtqueue from its state: how the datapath stays independent of
     * the ring format. {@link #DEVICE_QUEUES} opens split or packed rings as each state says; any
     * other implementation of vring's {@link DeviceQueue} plugs in the same way.
     */
    @FunctionalInterface
    public interface QueueOpener {
        /**
         * @throws VirtqueueException naming the field when the state does not hold up
         */
        DeviceQueue open(int queueIndex, GuestMemory memory, QueueState state);
    }

    /**
     * Opens queues with {@link DeviceQueues} (the one place that picks the ring format), classic
     * restore: the indices found in guest memory are checked.
     */
    public static final QueueOpener DEVICE_QUEUES =
            (queueIndex, memory, state) -> DeviceQueues.open(queueIndex, memory, state, RestoreMode.CLASSIC);

    /**
     * How the datapath behaves, beyond the queues it serves.
     *
     * @param filter             the receive filter now in force, read once per frame without a
     *                           lock; null (or a null filter) accepts every frame
     * @param listener           told (from the datapath thread of the pair at fault, after that
     *                           pair stopped; once per pair) about bad guest input through
     *                           {@link BackendListener#queuePairStopped}, with the virtqueue
     * @param dirtyLog           the dirty log now in force, read at every write into guest memory
     *                           (after the write); null or a null log: not logging
     * @param opener             opens each queue from its state (ring format)
     * @param mtu                the TAP's MTU: a frame is read only when the guest's buffers can
     *                           hold one this long plus an Ethernet header and a VLAN tag (64 KiB
     *                           while {@link #setLargeReceiveFrames large frames} are on)
     * @param mergeableRxBuffers VIRTIO_NET_F_MRG_RXBUF negotiated: a frame may span chains; else
     *                           each frame goes into one chain and one that does not fit is dropped
     * @param workerThreads      worker threads to serve the pairs (at most one per pair); 0: the
     *                           default ({@link #workerThreads(int, int)})
     * @param transmitIo         how transmit hands its writevs to the kernel; null: the default
     *                           ({@link #transmitIo(TransmitIo)})
     */
    public record Settings(Supplier<RxFilter> filter, BackendListener listener, Supplier<DirtyLog> dirtyLog,
            QueueOpener opener, int mtu, boolean mergeableRxBuffers, int workerThreads, TransmitIo transmitIo) {
        public Settings {
            Objects.requireNonNull(listener, "listener");
            Objects.requireNonNull(opener, "opener");
            if (filter == null) {
                filter = () -> null;
            }
            if (dirtyLog == null) {
                dirtyLog = () -> null;
            }
            if (mtu < 68 || mtu > 65535) {
                throw new IllegalArgumentException("mtu must be in 68..65535: " + mtu);
            }
            if (workerThreads < 0) {
                throw new IllegalArgumentException("workerThreads must be 0 (the default) or more: " + workerThreads);
            }
        }

        /** With the default transmit system calls. */
        public Settings(Supplier<RxFilter> filter, BackendListener listener, Supplier<DirtyLog> dirtyLog,
                QueueOpener opener, int mtu, boolean mergeableRxBuffers, int workerThreads) {
            this(filter, listener, dirtyLog, opener, mtu, mergeableRxBuffers, workerThreads, null);
        }

        /** With the default number of worker threads and transmit system calls. */
        public Settings(Supplier<RxFilter> filter, BackendListener listener, Supplier<DirtyLog> dirtyLog,
                QueueOpener opener, int mtu, boolean mergeableRxBuffers) {
            this(filter, listener, dirtyLog, opener, mtu, mergeableRxBuffers, 0, null);
        }

        /** The same with {@code threads} worker threads (0: the default). */
        public Settings withWorkerThreads(int threads) {
            return new Settings(filter, listener, dirtyLog, opener, mtu, mergeableRxBuffers, threads, transmitIo);
        }

        /** The same with transmit through {@code io} (null: the default). */
        public Settings withTransmitIo(TransmitIo io) {
            return new Settings(filter, listener, dirtyLog, opener, mtu, mergeableRxBuffers, workerThreads, io);
        }
    }

    /**
     * The system property that sets the default number of worker threads (1 or more; capped at
     * the number of pairs), for datapaths whose {@link Settings#workerThreads()} is 0.
     */
    public static final String WORKER_THREADS_PROPERTY = "io.vhostffm.userspace.workerThreads";

    /**
     * How many worker threads serve {@code pairs} queue pairs: {@code requested} when above 0,
     * else the system property {@value #WORKER_THREADS_PROPERTY} when set, else one processor
     * short of the host's, {@code max(1, availableProcessors - 1)}; never more than one per pair.
     * Each worker busy-polls (a processor while traffic flows): the processor left over is for
     * the guest (its vCPU threads) and the rest of the host. On a 2-core host every pair shares
     * one worker, as a C datapath serving all queues from one thread does.
     *
     * @throws IllegalArgumentException when the property is not a number of 1 or more
     */
    public static int workerThreads(int requested, int pairs) {
        if (pairs < 1) {
            throw new IllegalArgumentException("no queue pair to serve");
        }
        int threads = requested;
        if (threads <= 0) {
            String property = System.getProperty(WORKER_THREADS_PROPERTY);
            if (property != null) {
                try {
                    threads = Integer.parseInt(property.strip());
                } catch (NumberFormatException e) {
                    threads = 0;
                }
                if (threads < 1) {
                    throw new IllegalArgumentException(WORKER_THREADS_PROPERTY + " is 1 or more: " + property);
                }
            } else {
                threads = Math.max(1, Runtime.getRuntime().availableProcessors() - 1);
            }
        }
        return Math.min(threads, pairs);
    }

    /** How the transmit paths hand their writevs (one per chain) to the kernel. */
    public enum TransmitIo {
        /** One writev system call per chain. */
        WRITEV,
        /**
         * A round's chains (up to 64 per queue) as linked writevs in an io_uring per transmit
         * queue, handed over with one io_uring_enter; their used elements published with one
         * used-index update.
         */
        IO_URING
    }

    /**
     * The system property that sets the default {@link TransmitIo} ({@code writev} or
     * {@code io_uring}), for datapaths whose {@link Settings#transmitIo()} is null.
     */
    public static final String TRANSMIT_IO_PROPERTY = "io.vhostffm.userspace.transmitIo";

    /** Without the property: what measured better (docs/jmh.md). */
    static final TransmitIo DEFAULT_TRANSMIT_IO = TransmitIo.WRITEV;

    /**
     * How transmit goes: {@code requested} when not null, else the system property {@value
     * #TRANSMIT_IO_PROPERTY} when set, else the built-in default.
     *
     * @throws IllegalArgumentException when the property names neither
     */
    public static TransmitIo transmitIo(TransmitIo requested) {
        if (requested != null) {
            return requested;
        }
        String property = System.getProperty(TRANSMIT_IO_PROPERTY);
        if (property == null) {
            return DEFAULT_TRANSMIT_IO;
        }
        return switch (property.strip()) {
            case "writev" -> TransmitIo.WRITEV;
            case "io_uring" -> TransmitIo.IO_URING;
            default -> throw new IllegalArgumentException(TRANSMIT_IO_PROPERTY + " is writev or io_uring: " + property);
        };
    }

    private static final long LARGE_RECEIVE_OFFLOADS = VirtioFeature.GUEST_TSO4.mask()
            | VirtioFeature.GUEST_TSO6.mask() | VirtioFeature.GUEST_UFO.mask()
            | VirtioFeature.GUEST_USO4.mask() | VirtioFeature.GUEST_USO6.mask();

    // Lists that addPairs extends while the workers run (under this object's lock), read without
    // it by stats(), stoppedPairs() and stop()'s own-thread check: copy-on-write, changed only
    // per VQ_PAIRS_SET and never read by a worker's round.
    /** Every pair served: the pairs given, then those added, in that order. */
    private final List<QueuePairConfig> pairs;
    private final List<DatapathWorker> workers = new CopyOnWriteArrayList<>();
    /** Every pair served, in the order of {@link #pairs}. */
    private final List<ServedPair> served = new CopyOnWriteArrayList<>();
    private final List<Thread> threads = new CopyOnWriteArrayList<>();
    private final List<Counters> counters = new CopyOnWriteArrayList<>();
    /** The transmit queues' io_urings ({@link TransmitIo#IO_URING}); closed once no worker runs. */
    private final List<IoUring> rings = new CopyOnWriteArrayList<>();
    /** The workers' thread names, built with them (not at the start). */
    private final List<String> names = new ArrayList<>();
    /** What {@link #addPairs} builds new pairs with: the memory, settings and arena of the start. */
    private final GuestMemory memory;
    private final Settings settings;
    private final Arena arena;
    /** The parked threads being handed their workers (filled and emptied by the launch). */
    private final ParkedThreads.Reserved[] reserved;
    private boolean launched;
    private final BackendListener listener;
    private final EventFd stopEvent;
    private final AtomicReference<String> failure = new AtomicReference<>();
    /** Per pair served (by its place in {@link #pairs}): why it stopped on bad guest input. */
    private final Map<Integer, String> stoppedPairs = new ConcurrentHashMap<>();
    /** Pairs stopped on bad guest input whose report to the listener is done. */
    private final AtomicInteger reportedPairs = new AtomicInteger();
    private volatile boolean stopRequested;
    /** The thread waiting in {@link #quiesce} for running workers to leave, unparked by each. */
    private volatile Thread stopper;
    /** The states {@link #quiesce} collected; {@link #stop} returns them once the threads ended. */
    private List<QueueState> quiescedStates;
    private volatile boolean largeFrames;
    private List<QueueState> finalStates;

    private UserspaceDatapath(List<QueuePairConfig> pairs, GuestMemory memory, Settings settings, Arena arena,
            EventFd stopEvent) {
        this.pairs = new CopyOnWriteArrayList<>(pairs);
        this.memory = memory;
        this.settings = settings;
        this.arena = arena;
        this.listener = settings.listener();
        this.stopEvent = stopEvent;
        this.reserved = new ParkedThreads.Reserved[pairs.size()]; // at most one worker per pair
    }

    /**
     * Starts serving {@code pairs} for {@code device}: its receive filter, its guest offloads and
     * MTU, mergeable receive buffers when negotiated, and
     * {@link VirtioNetDevice#reportBadGuestInput} on bad guest input; rings opened with
     * {@link #DEVICE_QUEUES}.
     *
     * @param log the dirty log to mark, or null when not logging
     */
    public static UserspaceDatapath start(GuestMemory memory, List<QueuePairConfig> pairs, VirtioNetDevice device,
            DirtyLog log) throws NativeCallException {
        return start(memory, pairs, device, log, 0);
    }

    /**
     * As above, on {@code workerThreads} worker threads (0: the default, {@link
     * #workerThreads(int, int)}).
     */
    public static UserspaceDatapath start(GuestMemory memory, List<QueuePairConfig> pairs, VirtioNetDevice device,
            DirtyLog log, int workerThreads) throws NativeCallException {
        return start(memory, pairs, device, log, workerThreads, null);
    }

    /**
     * As above, transmit through {@code transmitIo} (null: the default, {@link
     * #transmitIo(TransmitIo)}).
     */
    public static UserspaceDatapath start(GuestMemory memory, List<QueuePairConfig> pairs, VirtioNetDevice device,
            DirtyLog log, int workerThreads, TransmitIo transmitIo) throws NativeCallException {
        boolean mergeable = (device.driverFeatures() & VirtioFeature.MRG_RXBUF.mask()) != 0;
        UserspaceDatapath datapath = start(memory, pairs, new Settings(device::rxFilter,
                (queue, reason) -> device.reportBadGuestInput(reason), () -> log, DEVICE_QUEUES,
                device.options().mtu(), mergeable, workerThreads, transmitIo));
        datapath.setLargeReceiveFrames((device.netState().guestOffloads() & LARGE_RECEIVE_OFFLOADS) != 0);
        return datapath;
    }

    /**
     * Starts serving {@code pairs}: pair {@code p} ({@link QueuePairConfig#pair()}) is virtqueues
     * {@code 2p} (receive) and {@code 2p + 1} (transmit).
     *
     * @throws VirtqueueException when a queue state does not hold up (nothing is started)
     * @throws IllegalArgumentException when no pair is given or a pair appears twice
     */
    public static UserspaceDatapath start(GuestMemory memory, List<QueuePairConfig> pairs, Settings settings)
            throws NativeCallException {
        return start(memory, pairs, settings, null);
    }

    /** As above, the workers on {@code parked} threads when not null (started at a prestart). */
    static UserspaceDatapath start(GuestMemory memory, List<QueuePairConfig> pairs, Settings settings,
            ParkedThreads parked) throws NativeCallException {
        Objects.requireNonNull(memory, "memory");
        Objects.requireNonNull(settings, "settings");
        if (pairs.isEmpty()) {
            throw new IllegalArgumentException("no queue pair to serve");
        }
        requireDistinct(pairs);
        List<QueuePairConfig> copy = List.copyOf(pairs);
        // Open every queue first: a bad state fails the start before any thread runs.
        return startQueues(memory, copy, settings, openQueues(memory, settings, copy), parked);
    }

    /** @throws IllegalArgumentException when a pair number appears twice in {@code pairs} */
    private static void requireDistinct(List<QueuePairConfig> pairs) {
        List<Integer> numbers = pairs.stream().map(QueuePairConfig::pair).toList();
        if (numbers.stream().distinct().count() != numbers.size()) {
            throw new IllegalArgumentException("a queue pair appears twice: " + numbers);
        }
    }

    /** Each pair's receive then transmit queue, opened from its states with the settings' opener. */
    private static List<DeviceQueue> openQueues(GuestMemory memory, Settings settings, List<QueuePairConfig> pairs) {
        List<DeviceQueue> queues = new ArrayList<>(2 * pairs.size());
        for (QueuePairConfig pair : pairs) {
            queues.add(settings.opener().open(2 * pair.pair(), memory, pair.rx()));
            queues.add(settings.opener().open(2 * pair.pair() + 1, memory, pair.tx()));
        }
        return queues;
    }

    /**
     * Starts serving {@code pairs} on queues already open and positioned (the backend's
     * quickstart, which resynced them): {@code queues} holds each pair's receive then transmit
     * queue, in the order of {@code pairs}; the configs' states are not used.
     *
     * @throws IllegalArgumentException when a queue is not the virtqueue its place says
     */
    static UserspaceDatapath startOpened(GuestMemory memory, List<QueuePairConfig> pairs, Settings settings,
            List<DeviceQueue> queues, ParkedThreads parked) throws NativeCallException {
        Objects.requireNonNull(memory, "memory");
        Objects.requireNonNull(settings, "settings");
        checkQueues(pairs, queues);
        return startQueues(memory, List.copyOf(pairs), settings, List.copyOf(queues), parked);
    }

    /** The workers on {@code parked} threads when not null (started at a prestart), else on new ones. */
    private static UserspaceDatapath startQueues(GuestMemory memory, List<QueuePairConfig> copy, Settings settings,
            List<DeviceQueue> queues, ParkedThreads parked) throws NativeCallException {
        UserspaceDatapath backend = build(memory, copy, settings, queues, Arena.ofAuto());
        try {
            backend.launch(null, parked);
        } catch (NativeCallException | RuntimeException e) {
            backend.discard();
            throw e;
        }
        return backend;
    }

    /**
     * Builds a datapath on queues already open whose positions are not known yet (a prestarted
     * backend: a migration destination before the switchover), without starting it: every object
     * a pair needs (paths, workers, iovec arrays, pollfds, the stop eventfd) exists afterwards, so
     * {@link #launch} has only the final positions to set. Nothing is written to guest memory, the
     * TAP or an eventfd. {@code queues} as in {@link #startOpened}. A prepared datapath that is
     * never launched is {@link #discard() discarded}.
     */
    static UserspaceDatapath prepare(GuestMemory memory, List<QueuePairConfig> pairs, Settings settings,
            List<DeviceQueue> queues) throws NativeCallException {
        Objects.requireNonNull(memory, "memory");
        Objects.requireNonNull(settings, "settings");
        return prepare(memory, pairs, settings, queues, Arena.ofAuto());
    }

    /**
     * As above, with the iovec arrays, overflow buffers and pollfds allocated in {@code arena},
     * which the caller closes once the datapath is discarded or stopped: for a caller that
     * builds one datapath after another (a fuzz target running the rounds on its own thread,
     * {@link #workers()}), whose native memory must not wait for the garbage collector.
     */
    static UserspaceDatapath prepare(GuestMemory memory, List<QueuePairConfig> pairs, Settings settings,
            List<DeviceQueue> queues, Arena arena) throws NativeCallException {
        Objects.requireNonNull(memory, "memory");
        Objects.requireNonNull(settings, "settings");
        checkQueues(pairs, queues);
        return build(memory, List.copyOf(pairs), settings, List.copyOf(queues), arena);
    }

    /**
     * The workers, each serving its pairs in {@link DatapathWorker#round rounds}: a datapath
     * {@link #prepare prepared} and never launched may have them run on the caller's thread
     * ({@link DatapathWorker#hold}, rounds, {@link DatapathWorker#letGo}, then {@link #discard}),
     * the very code the worker threads run, without their poll(2) and without threads.
     */
    List<DatapathWorker> workers() {
        return List.copyOf(workers);
    }

    private static void checkQueues(List<QueuePairConfig> pairs, List<DeviceQueue> queues) {
        if (pairs.isEmpty() || queues.size() != 2 * pairs.size()) {
            throw new IllegalArgumentException(pairs.size() + " queue pairs but " + queues.size() + " queues");
        }
        for (int p = 0; p < pairs.size(); p++) {
            int pair = pairs.get(p).pair();
            if (queues.get(2 * p).queueIndex() != 2 * pair || queues.get(2 * p + 1).queueIndex() != 2 * pair + 1) {
                throw new IllegalArgumentException("queue pair " + pair + " given virtqueues "
                        + queues.get(2 * p).queueIndex() + " and " + queues.get(2 * p + 1).queueIndex());
            }
        }
    }

    /** The datapath's objects, nothing started and nothing written. */
    private static UserspaceDatapath build(GuestMemory memory, List<QueuePairConfig> copy, Settings settings,
            List<DeviceQueue> queues, Arena arena) throws NativeCallException {
        EventFd stop = EventFd.create("userspace datapath stop");
        // Iovec arrays, overflow buffers and pollfds live as long as the workers use them:
        // an automatic arena (frees them once the backend is gone) unless the caller's.
        UserspaceDatapath backend = new UserspaceDatapath(copy, memory, settings, arena, stop);
        try {
            List<ServedPair> built = backend.buildPairs(0, copy, queues);
            // Round-robin: worker w serves pairs w, w + n, w + 2n, ... (in the order given).
            int threads = workerThreads(settings.workerThreads(), copy.size());
            for (int w = 0; w < threads; w++) {
                ServedPair[] mine = new ServedPair[(copy.size() - w + threads - 1) / threads];
                for (int i = 0; i < mine.length; i++) {
                    mine[i] = built.get(w + i * threads);
                }
                DatapathWorker worker = backend.newWorker(mine);
                backend.names.add(threadName(worker));
            }
        } catch (NativeCallException | RuntimeException e) {
            backend.closeDescriptors();
            throw e;
        }
        return backend;
    }

    /**
     * The paths of {@code configs} on their opened {@code queues} (receive then transmit per
     * pair), served from place {@code first} of {@link #pairs} on; their counters and io_urings
     * kept. Nothing is started or written.
     */
    private List<ServedPair> buildPairs(int first, List<QueuePairConfig> configs, List<DeviceQueue> queues)
            throws NativeCallException {
        boolean uring = transmitIo(settings.transmitIo()) == TransmitIo.IO_URING;
        List<ServedPair> built = new ArrayList<>(configs.size());
        List<Counters> builtCounters = new ArrayList<>(configs.size());
        for (int p = 0; p < configs.size(); p++) {
            QueuePairConfig pair = configs.get(p);
            Counters c = new Counters();
            DeviceQueue rxQueue = queues.get(2 * p);
            DeviceQueue txQueue = queues.get(2 * p + 1);
            RxPath rx = new RxPath(rxQueue, memory, arena, new GuestWriteLog(settings.dirtyLog(), rxQueue.saveState()),
                    pair.rxCall(), pair.tapQueue(), c, settings.filter(), () -> largeFrames, settings.mtu(),
                    settings.mergeableRxBuffers());
            IoUring ring = null;
            if (uring) {
                ring = IoUring.open(TxBatch.CHAINS);
                rings.add(ring);
            }
            TxPath tx = new TxPath(txQueue, arena, new GuestWriteLog(settings.dirtyLog(), txQueue.saveState()),
                    pair.txCall(), pair.tapQueue(), c, ring);
            builtCounters.add(c);
            built.add(new ServedPair(first + p, pair.pair(), tx, rx, pair.txKick(), pair.rxKick(), pair.tapQueue()));
        }
        counters.addAll(builtCounters);
        served.addAll(built);
        return built;
    }

    /** A worker for {@code mine}, with a wake eventfd of its own, listed among the workers. */
    private DatapathWorker newWorker(ServedPair[] mine) throws NativeCallException {
        EventFd wake = EventFd.create("userspace datapath wake");
        DatapathWorker worker = new DatapathWorker(mine, stopEvent, wake, arena, this);
        workers.add(worker);
        return worker;
    }

    /**
     * Adds queue pairs to the running datapath without pausing the pairs it serves (a VQ_PAIRS_SET
     * that enables more of them): each pair's queues are opened from its states (as {@link
     * #start} does: a bad state fails here, nothing added), its paths built, its TAP queue made
     * non-blocking and its guest notified once; then each joins a worker between two of that
     * worker's rounds ({@link DatapathWorker#offer}), round-robin over the workers as if the
     * datapath had started with every pair, a new worker (thread) when the {@link
     * #workerThreads(int, int) thread count} for the new number of pairs allows one more or the
     * worker in turn has left.
     *
     * <p>The caller attaches the pairs' TAP queues first. Their queue states come back from
     * {@link #stop()} after those of the pairs before them, in the order added.
     *
     * @return false, adding nothing, when the datapath is stopping or stopped (or was never
     *     launched): the caller restarts it instead
     * @throws VirtqueueException when a queue state does not hold up (nothing added)
     * @throws IllegalArgumentException when a pair is served already or given twice
     */
    public synchronized boolean addPairs(List<QueuePairConfig> more) throws NativeCallException {
        if (more.isEmpty()) {
            return true;
        }
        if (!launched || stopRequested || finalStates != null || quiescedStates != null) {
            return false;
        }
        List<QueuePairConfig> all = new ArrayList<>(pairs);
        all.addAll(more);
        requireDistinct(all);
        List<QueuePairConfig> copy = List.copyOf(more);
        List<DeviceQueue> queues = openQueues(memory, settings, copy);
        int first = pairs.size();
        int ringsBefore = rings.size();
        int threadCount = workerThreads(settings.workerThreads(), first + copy.size());
        List<DatapathWorker> fresh = new ArrayList<>();
        EventFd spare = null;
        List<List<ServedPair>> joining = new ArrayList<>();
        try {
            List<ServedPair> built = buildPairs(first, copy, queues);
            for (int w = 0; w < threadCount; w++) {
                joining.add(new ArrayList<>());
            }
            for (ServedPair p : built) {
                joining.get(p.index % threadCount).add(p);
            }
            // Every descriptor a new worker needs is made before anything is published, so a
            // failure adds nothing: the workers the thread count now allows, and a spare wake
            // eventfd for pairs whose worker turns out to have left (its mailbox closed).
            for (int w = workers.size(); w < threadCount; w++) {
                // (never empty: every worker before w serves a pair, so pair w is new and lands here)
                fresh.add(new DatapathWorker(joining.get(w).toArray(ServedPair[]::new), stopEvent,
                        EventFd.create("userspace datapath wake"), arena, this));
            }
            spare = EventFd.create("userspace datapath wake");
            readyAndNotify(copy);
        } catch (NativeCallException | RuntimeException e) {
            // Nothing of theirs runs yet: forget them as if never built.
            served.subList(first, served.size()).clear();
            counters.subList(first, counters.size()).clear();
            List<IoUring> opened = rings.subList(ringsBefore, rings.size());
            opened.forEach(IoUring::close);
            opened.clear();
            fresh.forEach(w -> w.wake().close());
            if (spare != null) {
                spare.close();
            }
            throw e;
        }
        pairs.addAll(copy);
        List<ServedPair> orphans = new ArrayList<>();
        for (int w = 0; w < Math.min(threadCount, workers.size()); w++) {
            ServedPair[] mine = joining.get(w).toArray(ServedPair[]::new);
            if (mine.length == 0) {
                continue;
            }
            if (offerTo(workers.get(w), mine)) {
                // Named for every pair it now serves before this returns: a pair it served alone
                // that stops later does not take the thread with it, and the name says so.
                threads.get(w).setName(threadName(workers.get(w)));
            } else {
                orphans.addAll(joining.get(w));
            }
        }
        if (!orphans.isEmpty()) {
            // The worker in turn left (its pairs all stopped on bad input): a worker of their own.
            fresh.add(new DatapathWorker(orphans.toArray(ServedPair[]::new), stopEvent, spare, arena, this));
        } else {
            spare.close();
        }
        for (DatapathWorker worker : fresh) {
            // Listed before it runs, as at a launch: a stop joins it, its own stop() knows itself.
            workers.add(worker);
            Thread thread = Thread.ofPlatform().daemon().name(threadName(worker)).unstarted(worker);
            threads.add(thread);
            thread.start();
        }
        return true;
    }

    /**
     * {@link DatapathWorker#offer}: false when the worker left. A failed wake-up is logged, not
     * thrown: the pairs are in its mailbox, taken at its next step (any kick or frame of its
     * other pairs wakes it).
     */
    private static boolean offerTo(DatapathWorker worker, ServedPair[] joining) {
        try {
            return worker.offer(joining);
        } catch (NativeCallException e) {
            LOG.log(Level.ERROR, "userspace datapath: cannot wake " + pairNames(worker) + " for the pairs joining it", e);
            return true;
        }
    }

    /** Closes the transmit io_urings (each once; nothing is in flight between rounds). No worker may run. */
    private void closeRings() {
        for (IoUring ring : rings) {
            ring.close();
        }
    }

    /**
     * Closes what the workers use besides the pairs' descriptors: the transmit io_urings, the
     * workers' wake eventfds and the stop eventfd (each once). No worker may run.
     */
    private void closeDescriptors() {
        try {
            closeRings();
            for (DatapathWorker worker : workers) {
                worker.wake().close();
            }
        } finally {
            stopEvent.close();
        }
    }

    /**
     * Starts a datapath {@link #build built} (or {@link #prepare prepared}) and not yet started:
     * with {@code finalPositions} (one per queue, in the order of the queues; null when the
     * queues' positions were known when it was built) the dirty-log trackers follow the final
     * used positions; then every TAP queue is made non-blocking, every queue's guest notified
     * once and each worker handed to a thread ({@code parked} ones when not null). The only
     * writes of a datapath happen from here on.
     */
    void launch(List<QueuePosition> finalPositions, ParkedThreads parked) throws NativeCallException {
        if (launched) {
            throw new IllegalStateException("userspace datapath already started");
        }
        launched = true;
        try {
            positionAndNotify(finalPositions);
        } catch (NativeCallException | RuntimeException e) {
            closeDescriptors(); // no thread runs: nothing else will close them
            throw e;
        }
        if (parked != null) {
            // Joined by stop() like any other: each parked thread runs its worker and ends. All
            // are listed before any runs: a worker's own stop() must see itself among them.
            for (int i = 0; i < workers.size(); i++) {
                ParkedThreads.Reserved r = parked.reserve(names.get(i));
                reserved[i] = r;
                threads.add(r.thread());
            }
            for (int i = 0; i < workers.size(); i++) {
                reserved[i].run(workers.get(i));
                reserved[i] = null;
            }
            return;
        }
        for (int i = 0; i < workers.size(); i++) {
            threads.add(Thread.ofPlatform().daemon().name(names.get(i)).unstarted(workers.get(i)));
        }
        threads.forEach(Thread::start);
    }

    /**
     * {@link #launch}'s first step alone on a prepared datapath, for a quickstart's rehearsal:
     * the dirty-log trackers given {@code positions}, in this process's objects only (the launch
     * gives the final ones again); nothing written, nothing started.
     */
    void rehearseLaunch(List<QueuePosition> positions) {
        if (launched) {
            throw new IllegalStateException("userspace datapath already started");
        }
        givePositions(positions);
    }

    private void positionAndNotify(List<QueuePosition> finalPositions) throws NativeCallException {
        givePositions(finalPositions);
        readyAndNotify(pairs);
    }

    /**
     * Makes {@code these} pairs' TAP queues non-blocking and signals each queue's call once: after
     * a restore a stale avail_event/used_event may leave either side waiting for the other; the
     * workers look at the rings as soon as they serve them.
     */
    private static void readyAndNotify(List<QueuePairConfig> these) throws NativeCallException {
        for (QueuePairConfig pair : these) {
            pair.tapQueue().setNonBlocking(true);
        }
        for (QueuePairConfig pair : these) {
            pair.rxCall().signal();
            pair.txCall().signal();
        }
    }

    private void givePositions(List<QueuePosition> finalPositions) {
        if (finalPositions != null) {
            if (finalPositions.size() != 2 * served.size()) {
                throw new IllegalArgumentException(finalPositions.size() + " final positions for "
                        + 2 * served.size() + " queues");
            }
            for (int p = 0; p < served.size(); p++) {
                served.get(p).rx.log().startAt(finalPositions.get(2 * p).usedIdx());
                served.get(p).tx.log().startAt(finalPositions.get(2 * p + 1).usedIdx());
            }
        }
    }

    /**
     * Lets go of a datapath {@link #prepare prepared} and never {@link #launch launched} (a
     * prestarted backend stopped before its quickstart): its stop eventfd is closed; the queues
     * stay as they are. Does nothing to a launched one (stop it instead).
     */
    void discard() {
        if (!launched) {
            launched = true;
            closeDescriptors();
        }
    }

    /** "vhost-ffm userspace datapath pair 0 (tap ... queue 0), pair 2 (...)": the pairs it serves. */
    static String threadName(DatapathWorker worker) {
        StringBuilder name = new StringBuilder("vhost-ffm userspace datapath ");
        String separator = "";
        for (ServedPair p : worker.pairs()) {
            name.append(separator).append("pair ").append(p.pair).append(" (").append(p.tap.description()).append(')');
            separator = ", ";
        }
        return name.toString();
    }

    /**
     * Whether the guest accepts large receive frames (GUEST_TSO4/6, GUEST_UFO, GUEST_USO4/6, or
     * the TUNSETOFFLOAD flags TSO4/6, UFO, USO4/6): then the datapath gathers buffers for 64 KiB
     * before reading the TAP, else for one MTU-sized Ethernet frame.
     */
    public void setLargeReceiveFrames(boolean large) {
        largeFrames = large;
    }

    /** Whether guest receive offloads ({@code VirtioFeature} bits) include large frames. */
    public static boolean largeFramesFor(long guestOffloads) {
        return (guestOffloads & LARGE_RECEIVE_OFFLOADS) != 0;
    }

    /** Queue pairs served. */
    public int queuePairs() {
        return pairs.size();
    }

    /** The pair numbers ({@link QueuePairConfig#pair()}) served, in the order of {@link #stop()}'s states. */
    public List<Integer> pairNumbers() {
        return pairs.stream().map(QueuePairConfig::pair).toList();
    }

    /** Worker threads serving them (each serves one or more pairs). */
    public int workerThreads() {
        return workers.size();
    }

    /**
     * Whether the datapath runs: false once a stop was requested (a worker's failure other than
     * bad guest input requests one), or once every pair stopped on bad guest input and the
     * listener was told. True while at least one pair still carries frames.
     */
    public boolean isRunning() {
        return !stopRequested && reportedPairs.get() < served.size();
    }

    /** Why the datapath (or its first pair to stop) stopped by itself (bad guest input, a TAP error), if it did. */
    public Optional<String> failure() {
        return Optional.ofNullable(failure.get());
    }

    /**
     * The pairs stopped on bad guest input, while the others run on: pair number ({@link
     * QueuePairConfig#pair()}) to the reason (queue, index, address, rule), in pair order.
     */
    public Map<Integer, String> stoppedPairs() {
        Map<Integer, String> stopped = new TreeMap<>();
        stoppedPairs.forEach((index, reason) -> stopped.put(pairs.get(index).pair(), reason));
        return stopped;
    }

    /** The counters of the {@code index}-th queue pair served (in the order they were given) now. */
    public QueuePairStats stats(int index) {
        return counters.get(index).snapshot();
    }

    /** The counters of all queue pairs, summed. */
    public QueuePairStats stats() {
        QueuePairStats sum = new QueuePairStats(0, 0, 0, 0, 0, 0, 0);
        for (Counters c : counters) {
            sum = sum.plus(c.snapshot());
        }
        return sum;
    }

    boolean stopRequested() {
        return stopRequested;
    }

    /**
     * Stops the datapath: every thread finishes the frame in hand and ends; a frame half placed
     * for lack of guest buffers is dropped (counted in {@code rxDropped}); chains taken but not
     * used are given back. Idempotent: later calls return the same states.
     *
     * <p>Called from one of this datapath's own threads (the device's {@code needsReset} callback
     * runs there after bad guest input), it only requests the stop and returns an empty list:
     * that thread cannot wait for itself, and the queues of a device that needs a reset have no
     * state worth continuing from.
     *
     * @return the state of every queue served: for each pair in the order given, its receive then
     *         its transmit queue (rx0, tx0, rx1, tx1, ... when the pairs were given in order)
     */
    public List<QueueState> stop() {
        if (threads.contains(Thread.currentThread())) {
            requestStop();
            return List.of();
        }
        return stopAndCollect();
    }

    /** How long {@link #quiesce} waits for a running worker to leave its queues. */
    static final long QUIESCE_TIMEOUT_MILLIS = 10_000;

    /**
     * Stops the datapath as {@link #stop()} does, but returns as soon as no worker touches its
     * queues, the guest's memory or the TAP any more, without waiting for the threads to end: a
     * worker asleep in poll(2) is claimed where it sleeps (no wake-up, no scheduling round trip),
     * a running one is waited for until it leaves its loop. The threads end on their own (the
     * stop eventfd wakes them); {@link #stop()} afterwards waits for them, closes what they used
     * and returns the same states. For a stop inside a migration's downtime, where only the
     * queues' final state matters.
     *
     * @return as {@link #stop()}
     * @throws IllegalStateException when a running worker did not leave within {@value
     *     #QUIESCE_TIMEOUT_MILLIS} ms (named by its queue pair; the stop flag stays set)
     */
    public synchronized List<QueueState> quiesce() {
        if (finalStates != null) {
            return finalStates;
        }
        if (quiescedStates != null) {
            return quiescedStates;
        }
        stopper = Thread.currentThread();
        try {
            requestStop();
            long deadline = System.nanoTime() + QUIESCE_TIMEOUT_MILLIS * 1_000_000L;
            for (DatapathWorker worker : workers) {
                // Acquire: the claim's compare-and-set (or the worker's own STOPPED) orders its
                // ring writes and chains in hand before the reads of collect().
                while (!worker.claimIfSleeping()) {
                    long left = deadline - System.nanoTime();
                    if (left <= 0) {
                        throw new IllegalStateException("userspace datapath, " + pairNames(worker)
                                + ": its worker did not leave its queues within " + QUIESCE_TIMEOUT_MILLIS + " ms of the stop");
                    }
                    LockSupport.parkNanos(this, left);
                }
            }
        } finally {
            stopper = null;
        }
        quiescedStates = collect();
        return quiescedStates;
    }

    /** The thread waiting in {@link #quiesce}, if any: a worker leaving its queues unparks it. */
    Thread stopper() {
        return stopper;
    }

    private synchronized List<QueueState> stopAndCollect() {
        if (finalStates != null) {
            return finalStates;
        }
        requestStop();
        boolean interrupted = false;
        for (Thread thread : threads) {
            while (thread.isAlive()) {
                try {
                    thread.join();
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        List<QueueState> states = quiescedStates != null ? quiescedStates : collect();
        closeDescriptors();
        finalStates = states;
        return finalStates;
    }

    /** Every queue's state, chains in hand given back; only once no worker touches them. */
    private List<QueueState> collect() {
        List<QueueState> states = new ArrayList<>();
        for (ServedPair pair : served) {
            RxPath rx = pair.rx;
            rx.abandonPendingFrame();
            states.add(giveBack(rx.queue().saveState(), rx.heldChains(), rx.heldSlots()));
            TxPath tx = pair.tx;
            states.add(giveBack(tx.queue().saveState(), tx.heldChains(), tx.heldSlots()));
        }
        return List.copyOf(states);
    }

    /** Same as {@link #stop()}. */
    @Override
    public void close() {
        stop();
    }

    private void requestStop() {
        stopRequested = true;
        try {
            stopEvent.signal();
        } catch (NativeCallException | RuntimeException e) {
            // The flag alone stops a busy worker; a sleeping one needs the signal. Closed means
            // every worker is already gone.
            if (stopEvent.fd().isOpen()) {
                LOG.log(Level.ERROR, "userspace datapath: cannot wake the workers to stop", e);
            }
        }
    }

    /**
     * A queue's state with {@code chains} chains taken but not used given back: the next owner
     * of the queue takes them again. Split: last_avail_idx moves back by the chains (16-bit);
     * packed: the position moves back by their ring slots, flipping the wrap counter at 0.
     */
    static QueueState giveBack(QueueState state, int chains, int slots) {
        if (chains == 0) {
            return state;
        }
        QueuePosition p = state.position();
        if (p.packed()) {
            int position = p.lastAvailIdx() - slots;
            boolean wrap = p.lastAvailWrapCounter();
            if (position < 0) {
                position += state.geometry().size();
                wrap = !wrap;
            }
            return state.withPosition(QueuePosition.packed(position, wrap, p.usedIdx(), p.usedWrapCounter(),
                    p.inuse() - chains));
        }
        return state.withPosition(QueuePosition.split((p.lastAvailIdx() - chains) & 0xffff, p.usedIdx(),
                p.inuse() - chains));
    }

    /** Whether {@code t} is the guest's doing (bad rings or buffers): its pair stops alone. */
    static boolean isGuestFault(Throwable t) {
        return t instanceof VirtqueueException || t instanceof GuestMemoryException
                || t instanceof BadGuestInputException;
    }

    /** "queue pair 0" or "queue pairs 0, 2": the pairs a worker serves. */
    private static String pairNames(DatapathWorker worker) {
        ServedPair[] mine = worker.pairs();
        StringBuilder names = new StringBuilder(mine.length == 1 ? "queue pair " : "queue pairs ");
        for (int i = 0; i < mine.length; i++) {
            names.append(i == 0 ? "" : ", ").append(mine[i].pair);
        }
        return names.toString();
    }

    /**
     * A pair stopped on bad guest input (on its worker's thread, which goes on with its other
     * pairs): recorded in {@link #stoppedPairs()}, and the listener hears which queue and why.
     */
    void pairStopped(ServedPair pair, Throwable t) {
        int queueIndex = t instanceof VirtqueueException v ? v.queueIndex()
                : t instanceof BadGuestInputException b ? b.queueIndex() : -1;
        String reason = "userspace datapath, queue pair " + pair.pair + ": " + t.getMessage();
        failure.compareAndSet(null, reason);
        stoppedPairs.put(pair.index, reason);
        PAIR_STOPPED_WARNINGS.warn(reason);
        try {
            // Outside every lock of ours: the device may call stop() back on this thread.
            listener.queuePairStopped(queueIndex, reason);
        } catch (RuntimeException e) {
            // The worker serves other pairs: a listener's defect must not stop them.
            LOG.log(Level.ERROR, "userspace datapath: the listener failed on " + reason, e);
        } finally {
            reportedPairs.incrementAndGet();
        }
    }

    /**
     * A worker ended with an exception other than bad guest input (a TAP or poll failure, a
     * defect; its thread ends with it): every pair stops.
     */
    void workerFailed(DatapathWorker worker, Throwable t) {
        ServedPair at = worker.current();
        String reason = "userspace datapath, " + (at != null ? "queue pair " + at.pair : pairNames(worker)) + ": "
                + t.getMessage();
        if (!failure.compareAndSet(null, reason) && stopRequested) {
            return; // stopping already (asked, or another worker failed first)
        }
        requestStop();
        LOG.log(Level.ERROR, "userspace datapath failed: " + reason, t);
    }
}

package io.vhostffm.vhost.vhostuser.frontend;

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
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.MemfdRegion;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.os.UnixSocket;
import io.vhostffm.vhost.virtio.DeviceStatus;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vhost.vhostuser.LogArea;
import io.vhostffm.vhost.vhostuser.MemoryRegion;
import io.vhostffm.vhost.vhostuser.VhostUserCodec;
import io.vhostffm.vhost.vhostuser.VhostUserConnection;
import io.vhostffm.vhost.vhostuser.VhostUserMessage;
import io.vhostffm.vhost.vhostuser.VhostUserProtocolException;
import io.vhostffm.vhost.vhostuser.VhostUserProtocolFeature;
import io.vhostffm.vhost.vhostuser.VhostUserRequest;
import io.vhostffm.vhost.vhostuser.VringAddress;
import io.vhostffm.vhost.vhostuser.VringState;
import io.vhostffm.vring.GuestMemory;
import io.vhostffm.vring.GuestRegion;
import io.vhostffm.vring.QueueGeometry;
import io.vhostffm.vring.QueuePosition;
import io.vhostffm.vring.VhostVringBase;
import io.vhostffm.vring.VirtqueueException;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * The third datapath: an external vhost-user backend process (DPDK's {@code net_vhost}, OVS-DPDK,
 * a rust-vmm vhost-user-net backend) moves the frames, and this class is its frontend: it speaks
 * vhost-user to the backend's socket the way QEMU does, with the same prestart / quickstart / stop
 * contract as the kernel backend, so early migration and its quickstart work for it too.
 *
 * <h2>Messages</h2>
 * {@link #connect}: GET_FEATURES, GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES (what both sides
 * know of MQ, REPLY_ACK, STATUS), GET_QUEUE_NUM under MQ. {@link #prestart}: SET_OWNER (the
 * first time on the connection), SET_FEATURES (the acked datapath bits plus
 * VHOST_USER_F_PROTOCOL_FEATURES, so the rings start disabled), SET_STATUS(ACKNOWLEDGE | DRIVER |
 * FEATURES_OK) under STATUS, SET_MEM_TABLE (each memfd region: guest address, size, our mapping's
 * address as the user address, offset 0, its memfd), then per ring SET_VRING_NUM, SET_VRING_ADDR
 * (our mapping's addresses), SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR; the rings stay
 * disabled. {@link #quickstart}: per ring SET_VRING_BASE then SET_VRING_ENABLE(1) for the rings of
 * the active pairs, then SET_STATUS with DRIVER_OK under STATUS (DPDK starts a ring only after
 * it), nothing else. {@link #stop}: SET_VRING_ENABLE(0) per enabled ring (transmit rings first,
 * so a frame a forwarding backend took still finds its receive ring), SET_STATUS(0) under
 * STATUS, GET_VRING_BASE per ring. A vhost-user backend forgets a ring's addresses and kick at
 * GET_VRING_BASE (DPDK does), so a start after a stop is a prestart again.
 *
 * <h2>Replies and deadlines</h2>
 * Under REPLY_ACK every request that has no reply of its own is sent with NEED_REPLY and its
 * acknowledgement awaited, so a refusal is seen at the request that caused it, named. Every
 * reply is awaited with the reply deadline given to {@link #connect}; a reply that does not
 * come in time, a malformed one, or the connection ending is an {@link IOException} naming the
 * request and ring, and the backend is gone from then on (a late or stray reply would otherwise be
 * taken for the next request's): reported as below. Connecting to a UNIX socket does not wait (the listener's backlog takes it,
 * or it is refused at once), so the connect's own deadline is the first reply's.
 *
 * <h2>Positions</h2>
 * Split: SET_VRING_BASE takes the 16-bit {@code last_avail_idx}; at stop the used index is read
 * from the used ring in guest memory (the backend keeps it there). Packed: the vhost-user form
 * {@code (wrap << 15) | last_avail_idx} of {@link VhostVringBase} both ways; the form carries no
 * used position, so the backend's used position is its last avail one. A vhost-user backend takes
 * no chains in flight (without INFLIGHT_SHMFD it cannot be told of any), so a quickstart refuses a
 * position with chains in use.
 *
 * <h2>The backend process dying</h2>
 * A watcher thread polls the socket (while no request waits for its reply) and each ring's error
 * eventfd. End of stream or a reset on the socket is reported once to the start's
 * {@link BackendListener#backendGone}; an error eventfd as
 * {@link BackendListener#badGuestInput} naming the ring. Once gone, {@link #stop} cannot ask for
 * the rings' bases: for split rings it returns the positions the guest memory shows (last avail =
 * the used index: what the backend had taken but not used is taken again by the next datapath,
 * nothing lost), for packed rings it fails naming the ring. A packed ring's used position lives
 * only in the backend process: the device writes a used element over the head of the chain it
 * used and skips the rest of the chain, so the descriptor ring does not tell how long the last
 * used chain was (its tail and a chain the driver made available after it, under a reused buffer
 * id, look alike); DPDK's net datapath keeps no INFLIGHT_SHMFD record that would tell.
 * {@code NetDeviceRuntime} then needs a reset and starts its fallback on fresh rings.
 *
 * <h2>Dirty log</h2>
 * Under LOG_SHMFD (with VHOST_F_LOG_ALL offered): SET_LOG_BASE hands the backend the
 * {@link DirtyLog}'s own memfd (vhost's bitmap layout, one bit per 4 KiB guest page), so what the
 * backend marks is in the log the other backends fill, with nothing to merge; SET_FEATURES adds
 * VHOST_F_LOG_ALL and each SET_VRING_ADDR the log flag with the guest address of the ring the
 * backend writes (split: the used ring; packed: the descriptor ring, where used descriptors go).
 *
 * <h2>Not here</h2>
 * {@link #transfer}: nothing of a vhost-user backend moves between processes; each side of a
 * migration connects its own backend process.
 */
public final class VhostUserFrontendBackend implements NetBackend {
    private static final System.Logger LOG = System.getLogger(VhostUserFrontendBackend.class.getName());
    /** Protocol features this frontend can use. */
    private static final long OUR_PROTOCOL_FEATURES = VhostUserProtocolFeature.maskOf(VhostUserProtocolFeature.MQ,
            VhostUserProtocolFeature.REPLY_ACK, VhostUserProtocolFeature.STATUS, VhostUserProtocolFeature.LOG_SHMFD);
    private static final long LOG_ALL = 1L << VirtioFeature.LOG_ALL.bit();
    /** used.idx is 2-aligned (the used ring is 4-aligned): an aligned handle, which has acquire access. */
    private static final VarHandle U16 = ValueLayout.JAVA_SHORT.varHandle();
    private static final int RING_NONE = -1;

    private final Path path;
    private final String name;
    private final VhostUserConnection connection;
    private final Duration replyDeadline;
    private final long backendFeatures;
    private final long protocolFeatures;
    private final int maxQueuePairs;
    private final BackendCapabilities capabilities;
    private final EventFd[] errors;
    private final EventFd watcherWake;
    private final Thread watcher;

    // Guarded by this.
    private BackendStart current;       // non-null while prestarted or running
    private boolean running;
    private boolean owned;              // SET_OWNER sent on this connection
    private boolean[] ringEnabled = new boolean[0];
    private boolean[] pairEnabled = new boolean[0];
    private MessageObserver observer;
    private DirtyLog dirtyLog;          // the log the backend writes into, or null
    private long sent;                  // requests sent, for counting
    private volatile String goneReason; // non-null once the backend process is gone
    private volatile BackendListener listener;
    private volatile boolean closed;

    private VhostUserFrontendBackend(Path path, VhostUserConnection connection, Duration replyDeadline, int maxPairs)
            throws IOException {
        this.path = path;
        this.name = "vhost-user " + path;
        this.connection = connection;
        this.replyDeadline = replyDeadline;
        long features = askU64(VhostUserRequest.GET_FEATURES);
        this.backendFeatures = features;
        long protocol = 0;
        if ((features & VhostUserProtocolFeature.PROTOCOL_FEATURES_BIT) != 0) {
            long offered = askU64(VhostUserRequest.GET_PROTOCOL_FEATURES);
            protocol = offered & OUR_PROTOCOL_FEATURES;
            // No REPLY_ACK on this one: it is what negotiates it.
            send(VhostUserRequest.SET_PROTOCOL_FEATURES, RING_NONE, VhostUserCodec.u64(protocol), List.of(), false);
        }
        this.protocolFeatures = protocol;
        int pairs = 1;
        if (VhostUserProtocolFeature.MQ.in(protocol)) {
            long queues = askU64(VhostUserRequest.GET_QUEUE_NUM);
            if (queues < 1 || queues > 256) {
                throw new IOException(name + ": GET_QUEUE_NUM answered " + queues + "; expected 1..256 queue pairs");
            }
            pairs = (int) queues;
        }
        this.maxQueuePairs = Math.min(pairs, maxPairs);
        // Datapath bits only: not LOG_ALL (a vhost bit), not PROTOCOL_FEATURES (bit 30, vhost-user's own).
        long datapath = features & VirtioFeature.knownMask() & ~LOG_ALL & ~VhostUserProtocolFeature.PROTOCOL_FEATURES_BIT;
        this.capabilities = BackendCapabilities.of(name, datapath);
        this.errors = new EventFd[2 * maxQueuePairs];
        EventFd wake = null;
        try {
            for (int i = 0; i < errors.length; i++) {
                errors[i] = EventFd.create("vhost-user frontend ring error, virtqueue " + i);
            }
            wake = EventFd.create("vhost-user frontend watcher wake-up");
        } catch (NativeCallException | RuntimeException e) {
            for (EventFd f : errors) {
                if (f != null) f.close();
            }
            throw e;
        }
        this.watcherWake = wake;
        this.watcher = Thread.ofPlatform().daemon().name("vhost-user-frontend " + path.getFileName()).unstarted(this::watch);
        watcher.start();
    }

    /**
     * Connects to a vhost-user backend listening at {@code socket} and negotiates (GET_FEATURES,
     * GET/SET_PROTOCOL_FEATURES, GET_QUEUE_NUM), each reply within {@code replyDeadline}.
     *
     * @param maxPairs the most queue pairs this device will use (the backend may offer more)
     * @throws IOException when the socket refuses, a reply is late or malformed (the socket is
     *     then closed)
     */
    public static VhostUserFrontendBackend connect(Path socket, Duration replyDeadline, int maxPairs) throws IOException {
        Objects.requireNonNull(socket, "socket");
        if (replyDeadline.isNegative() || replyDeadline.isZero()) {
            throw new IllegalArgumentException("reply deadline must be positive: " + replyDeadline);
        }
        if (maxPairs < 1) {
            throw new IllegalArgumentException("maxPairs must be at least 1: " + maxPairs);
        }
        VhostUserConnection c = VhostUserConnection.frontend(UnixSocket.connect(socket));
        try {
            return new VhostUserFrontendBackend(socket, c, replyDeadline, maxPairs);
        } catch (IOException | RuntimeException e) {
            c.close();
            throw e;
        }
    }

    // ------------------------------------------------------------------ accessors

    @Override
    public BackendCapabilities capabilities() {
        return capabilities;
    }

    @Override
    public int maxQueuePairs() {
        return maxQueuePairs;
    }

    /** What GET_FEATURES answered. */
    public long backendFeatures() {
        return backendFeatures;
    }

    /** The protocol features negotiated (SET_PROTOCOL_FEATURES). */
    public long protocolFeatures() {
        return protocolFeatures;
    }

    /** Sets the request observer (counting, fault injection); null removes it. */
    public synchronized void setMessageObserver(MessageObserver observer) {
        this.observer = observer;
    }

    /** Requests sent on this connection so far (acknowledgements awaited are not counted apart). */
    public synchronized long requestsSent() {
        return sent;
    }

    /** Why the backend process is gone, or null while it is there. */
    public String goneReason() {
        return goneReason;
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
            program(start);
        } catch (IOException | RuntimeException e) {
            abandon();
            throw e;
        }
    }

    @Override
    public synchronized void quickstart(List<QueuePosition> finalPositions) throws IOException {
        if (current == null || running) {
            throw new IllegalStateException(name + ": quickstart needs a prestarted, not running, backend");
        }
        current.requireOnePositionPerQueue(finalPositions);
        try {
            // Every position checked before the first request: a refused one sends nothing.
            int[] bases = new int[finalPositions.size()];
            for (int i = 0; i < bases.length; i++) {
                bases[i] = baseOf(current.queues().get(i), finalPositions.get(i));
            }
            for (int i = 0; i < bases.length; i++) {
                request(VhostUserRequest.SET_VRING_BASE, i, VhostUserCodec.vringState(i, Integer.toUnsignedLong(bases[i])));
                if (pairEnabled[i / 2]) {
                    setRingEnabled(i, true);
                }
            }
            if (VhostUserProtocolFeature.STATUS.in(protocolFeatures)) {
                request(VhostUserRequest.SET_STATUS, RING_NONE, VhostUserCodec.u64(DeviceStatus.ACKNOWLEDGE
                        | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK | DeviceStatus.DRIVER_OK));
            }
            current = current.withPositions(finalPositions);
            running = true;
        } catch (IOException | RuntimeException e) {
            abandon();
            throw e;
        }
    }

    /** The SET_VRING_BASE value of {@code position} on {@code q}, checked against the queue first. */
    private int baseOf(QueueBinding q, QueuePosition position) {
        QueueGeometry g = q.state().geometry();
        if (position.packed() != g.packed()) {
            throw new IllegalArgumentException(String.format("%s: virtqueue %d is %s; its final position is %s", name,
                    q.index(), g.packed() ? "packed" : "split", position.packed() ? "packed" : "split"));
        }
        try {
            position.check(q.index(), g.size());
        } catch (VirtqueueException e) {
            throw new IllegalArgumentException(name + ": " + e.getMessage(), e);
        }
        if (position.inuse() != 0) {
            throw new IllegalArgumentException(String.format("%s: virtqueue %d has %d chains in use at last_avail_idx %d; "
                    + "a vhost-user backend cannot be given chains in flight (no INFLIGHT_SHMFD)", name, q.index(),
                    position.inuse(), position.lastAvailIdx()));
        }
        if (position.packed() && (position.usedIdx() != position.lastAvailIdx()
                || position.usedWrapCounter() != position.lastAvailWrapCounter())) {
            throw new IllegalArgumentException(String.format("%s: packed virtqueue %d: used position %d/%b differs from "
                    + "last avail %d/%b with nothing in use", name, q.index(), position.usedIdx(), position.usedWrapCounter(),
                    position.lastAvailIdx(), position.lastAvailWrapCounter()));
        }
        return VhostVringBase.encodeVhostUser(position);
    }

    private void checkStart(BackendStart start) {
        Objects.requireNonNull(start, "start");
        if (closed) {
            throw new IllegalStateException(name + " is closed");
        }
        if (goneReason != null) {
            throw new IllegalStateException(name + " is gone (" + goneReason + "); connect to the backend again");
        }
        if (current != null) {
            throw new IllegalStateException(name + " is already started; stop it first");
        }
        if (start.pairs() > maxQueuePairs) {
            throw new IllegalArgumentException(start.pairs() + " queue pairs asked; " + name + " serves " + maxQueuePairs);
        }
        boolean packed = VirtioFeature.RING_PACKED.in(start.ackedFeatures());
        if (packed && !capabilities.packedRings()) {
            throw new IllegalArgumentException(name + " offers no VIRTIO_F_RING_PACKED");
        }
        for (QueueBinding q : start.queues()) {
            if (q.state().geometry().packed() != packed) {
                throw new IllegalArgumentException(name + ": virtqueue " + q.index() + " is "
                        + (q.state().geometry().packed() ? "packed" : "split") + " but RING_PACKED is "
                        + (packed ? "" : "not ") + "acked");
            }
        }
        if (start.dirtyLog() != null) {
            checkLoggable(start.dirtyLog());
        }
        if (!(start.memory() instanceof MemfdGuestMemory)) {
            throw new IllegalArgumentException(name + ": guest memory must be memfd-backed to be shared with the backend "
                    + "process, not " + start.memory().getClass().getSimpleName());
        }
    }

    /** The prestart sequence: everything up to (not including) SET_VRING_BASE and enabling. */
    private void program(BackendStart start) throws IOException {
        MemfdGuestMemory memory = (MemfdGuestMemory) start.memory();
        for (QueueBinding q : start.queues()) {
            try {
                q.state().validate(q.index(), memory);
            } catch (VirtqueueException e) {
                throw new IOException(name + ": " + e.getMessage(), e);
            }
        }
        List<MemfdRegion> regions = memory.memfdRegions();
        if (regions.size() > VhostUserCodec.MAX_MEMORY_REGIONS) {
            throw new IllegalArgumentException(name + ": " + regions.size() + " guest memory regions; vhost-user's "
                    + "SET_MEM_TABLE carries at most " + VhostUserCodec.MAX_MEMORY_REGIONS);
        }
        current = start;
        listener = start.listener();
        int queues = start.queues().size();
        ringEnabled = new boolean[queues];
        pairEnabled = new boolean[start.pairs()];
        for (int p = 0; p < pairEnabled.length; p++) {
            pairEnabled[p] = p < start.activePairs();
        }
        if (!owned) {
            request(VhostUserRequest.SET_OWNER, RING_NONE, new byte[0]);
            owned = true;
        }
        DirtyLog log = start.dirtyLog();
        request(VhostUserRequest.SET_FEATURES, RING_NONE, VhostUserCodec.u64(featuresFor(start.ackedFeatures(), log != null)));
        if (VhostUserProtocolFeature.STATUS.in(protocolFeatures)) {
            request(VhostUserRequest.SET_STATUS, RING_NONE, VhostUserCodec.u64(DeviceStatus.ACKNOWLEDGE
                    | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK));
        }
        List<MemoryRegion> table = new ArrayList<>();
        List<FileDescriptor> fds = new ArrayList<>();
        for (MemfdRegion r : regions) {
            table.add(new MemoryRegion(r.guestAddress(), r.size(), r.userspaceAddress(), 0));
            fds.add(r.fd());
        }
        request(VhostUserRequest.SET_MEM_TABLE, RING_NONE, VhostUserCodec.memoryTable(table), fds);
        if (log != null) {
            setLogBase(log);
        }
        dirtyLog = log;
        for (QueueBinding q : start.queues()) {
            int i = q.index();
            QueueGeometry g = q.state().geometry();
            request(VhostUserRequest.SET_VRING_NUM, i, VhostUserCodec.vringState(i, g.size()));
            setVringAddr(i, g, memory, log != null);
            request(VhostUserRequest.SET_VRING_KICK, i, VhostUserCodec.vringFd(i, false), List.of(q.kick().fd()));
            request(VhostUserRequest.SET_VRING_CALL, i, VhostUserCodec.vringFd(i, false), List.of(q.call().fd()));
            request(VhostUserRequest.SET_VRING_ERR, i, VhostUserCodec.vringFd(i, false), List.of(errors[i].fd()));
        }
    }

    /** SET_FEATURES' value: the acked bits the backend knows, bit 30, and LOG_ALL while logging. */
    private long featuresFor(long acked, boolean logging) {
        long features = acked & backendFeatures & ~LOG_ALL;
        if ((backendFeatures & VhostUserProtocolFeature.PROTOCOL_FEATURES_BIT) != 0) {
            features |= VhostUserProtocolFeature.PROTOCOL_FEATURES_BIT; // the rings start disabled
        }
        return logging ? features | LOG_ALL : features;
    }

    private void setVringAddr(int ring, QueueGeometry g, GuestMemory memory, boolean log) throws IOException {
        // With the log flag the backend logs its used-ring writes at log_guest_addr (guest-physical)
        // plus their offset in the ring it writes: the used ring (split), or the descriptor ring
        // (packed: used descriptors are written there; DPDK logs them at log_guest_addr + their
        // index times 16), so that is the address to give for a packed ring.
        long logAddress = g.packed() ? g.descTableAddress() : g.deviceAreaAddress();
        if (log && logAddress == 0) {
            // DPDK takes a log address of 0 for "not mapped" and stops the ring without a word.
            throw new IllegalArgumentException(String.format("%s: virtqueue %d's %s is at guest address 0, which a "
                    + "vhost-user backend cannot be given as the log address (DPDK takes 0 as unmapped)", name, ring,
                    g.packed() ? "descriptor ring" : "used ring"));
        }
        request(VhostUserRequest.SET_VRING_ADDR, ring, VhostUserCodec.vringAddress(new VringAddress(ring,
                log ? VringAddress.LOG : 0,
                userspaceAddress(memory, g.descTableAddress(), g.descTableBytes()),
                userspaceAddress(memory, g.deviceAreaAddress(), g.deviceAreaBytes()),
                userspaceAddress(memory, g.driverAreaAddress(), g.driverAreaBytes()),
                log ? logAddress : 0)));
    }

    /**
     * SET_LOG_BASE with the log's memfd: the backend maps the bitmap and marks what it writes
     * straight into the same pages {@link DirtyLog} reads. The backend always answers it (once
     * the log is mapped), REPLY_ACK or not.
     */
    private void setLogBase(DirtyLog log) throws IOException {
        long pages = log.coveredBytes() / DirtyLog.PAGE_SIZE;
        long bytes = (pages + 63) / 64 * 8;
        long mapped = (bytes + DirtyLog.PAGE_SIZE - 1) / DirtyLog.PAGE_SIZE * DirtyLog.PAGE_SIZE;
        send(VhostUserRequest.SET_LOG_BASE, RING_NONE, VhostUserCodec.logArea(new LogArea(mapped, 0)),
                List.of(log.fd()), false);
        // The reply's payload is empty (DPDK 22.11, as the protocol describes it) or a u64 status.
        VhostUserMessage m = awaitMessage(VhostUserRequest.SET_LOG_BASE, RING_NONE);
        try (m) {
            if (!m.isReply() || m.code() != VhostUserRequest.SET_LOG_BASE.code() || m.fdCount() != 0
                    || (m.size() != 0 && m.size() != 8)) {
                gone("malformed reply to SET_LOG_BASE(6): " + m);
                throw new IOException(name + ": reply to SET_LOG_BASE(6) malformed: " + m);
            }
            if (m.size() == 8 && VhostUserCodec.u64(m) != 0) {
                throw new IOException(name + " refused SET_LOG_BASE(6): status " + VhostUserCodec.u64(m));
            }
        }
    }

    /** A log this backend can hand over: LOG_SHMFD negotiated, LOG_ALL offered, the bitmap in a memfd of its own. */
    private void checkLoggable(DirtyLog log) {
        if (!VhostUserProtocolFeature.LOG_SHMFD.in(protocolFeatures) || (backendFeatures & LOG_ALL) == 0) {
            throw new IllegalArgumentException(name + " cannot log dirty pages: it offers "
                    + ((backendFeatures & LOG_ALL) == 0 ? "no VHOST_F_LOG_ALL" : "no LOG_SHMFD protocol feature"));
        }
        try {
            log.fd();
        } catch (IllegalStateException e) {
            throw new IllegalArgumentException(name + ": the dirty log must be in a memfd of its own (DirtyLog.create), "
                    + "to be shared with the backend process", e);
        }
    }

    @Override
    public synchronized List<QueuePosition> stop() throws IOException {
        if (current == null) {
            throw new IllegalStateException(name + " is not started");
        }
        BackendStart stopping = current;
        try {
            if (goneReason != null) {
                return positionsFromMemory(stopping);
            }
            // Transmit rings (odd) first: a frame the backend took from one is still forwarded
            // into a receive ring that is enabled; then the receive rings. The acknowledgements
            // (REPLY_ACK) order the two.
            for (int parity = 1; parity >= 0; parity--) {
                for (int i = parity; i < ringEnabled.length; i += 2) {
                    if (ringEnabled[i]) {
                        setRingEnabled(i, false);
                    }
                }
            }
            if (running && VhostUserProtocolFeature.STATUS.in(protocolFeatures)) {
                request(VhostUserRequest.SET_STATUS, RING_NONE, VhostUserCodec.u64(0));
            }
            List<QueuePosition> positions = new ArrayList<>(stopping.queues().size());
            for (QueueBinding q : stopping.queues()) {
                positions.add(finalPosition(q, stopping.memory()));
            }
            return List.copyOf(positions);
        } finally {
            current = null;
            running = false;
            ringEnabled = new boolean[0];
        }
    }

    /** GET_VRING_BASE decoded; for a split ring the used index read from the used ring. */
    private QueuePosition finalPosition(QueueBinding q, GuestMemory memory) throws IOException {
        int i = q.index();
        VringState state = askVringState(VhostUserRequest.GET_VRING_BASE, i);
        if (state.index() != i) {
            throw new IOException(String.format("%s: GET_VRING_BASE for virtqueue %d answered for virtqueue %d", name, i,
                    state.index()));
        }
        int num = (int) state.num();
        QueueGeometry g = q.state().geometry();
        QueuePosition position;
        try {
            if (g.packed()) {
                position = VhostVringBase.decodeVhostUserPacked(num);
            } else {
                int lastAvail = VhostVringBase.decodeSplit(num);
                int usedIdx = usedIdx(memory, g);
                position = QueuePosition.split(lastAvail, usedIdx, (lastAvail - usedIdx) & 0xffff);
            }
            position.check(i, g.size());
        } catch (IllegalArgumentException | VirtqueueException e) {
            throw new IOException(String.format("%s: GET_VRING_BASE of virtqueue %d answered 0x%x: %s", name, i, num,
                    e.getMessage()), e);
        }
        return position;
    }

    /**
     * The positions guest memory shows once the backend is gone: split, last avail = used =
     * used.idx (whatever the backend took but did not use is taken again by the next datapath);
     * packed rings keep no index a frontend could read (see the class comment), so that is an
     * error naming the ring.
     */
    private List<QueuePosition> positionsFromMemory(BackendStart stopping) throws IOException {
        List<QueuePosition> positions = new ArrayList<>();
        for (QueueBinding q : stopping.queues()) {
            QueueGeometry g = q.state().geometry();
            if (g.packed()) {
                throw new IOException(String.format("%s is gone (%s): packed virtqueue %d's position cannot be read back "
                        + "from guest memory (a packed ring keeps its used position in the backend only)", name, goneReason,
                        q.index()));
            }
            int used = usedIdx(stopping.memory(), g);
            positions.add(QueuePosition.split(used, used, 0));
        }
        return List.copyOf(positions);
    }

    private static int usedIdx(GuestMemory memory, QueueGeometry g) {
        MemorySegment used = memory.slice(g.deviceAreaAddress(), 4);
        // Acquire: the backend's used.idx (its release after the used elements), read after the
        // ring stopped, so every element it covers is visible.
        return Short.toUnsignedInt((short) U16.getAcquire(used, 2L));
    }

    /** After a failed (pre/quick)start: disable what was enabled, forget the start. Never throws. */
    private void abandon() {
        if (goneReason == null) {
            for (int i = 0; i < ringEnabled.length; i++) {
                if (ringEnabled[i]) {
                    try {
                        setRingEnabled(i, false);
                    } catch (IOException | RuntimeException e) {
                        LOG.log(Level.WARNING, name + ": cannot disable virtqueue " + i + " after a failed start", e);
                    }
                }
            }
        }
        current = null;
        running = false;
        ringEnabled = new boolean[0];
    }

    @Override
    public synchronized void setQueuePairEnabled(int pair, boolean enabled) throws IOException {
        Objects.checkIndex(pair, maxQueuePairs);
        if (current == null || pair >= current.pairs() || pairEnabled[pair] == enabled) {
            return;
        }
        if (running) {
            setRingEnabled(2 * pair, enabled);
            setRingEnabled(2 * pair + 1, enabled);
        }
        pairEnabled[pair] = enabled;
    }

    private void setRingEnabled(int ring, boolean enabled) throws IOException {
        request(VhostUserRequest.SET_VRING_ENABLE, ring, VhostUserCodec.vringState(ring, enabled ? 1 : 0));
        ringEnabled[ring] = enabled;
    }

    /** The backend process applies the guest's offloads from the negotiated features; nothing to send. */
    @Override
    public void setOffloads(int tunOffloadFlags) {}

    /**
     * Starts logging on a running or prestarted backend in QEMU's order: SET_LOG_BASE,
     * SET_FEATURES with VHOST_F_LOG_ALL, SET_VRING_ADDR with the log flag per ring. Stopped: the
     * next start logs (its {@link BackendStart#dirtyLog()}).
     *
     * @throws IllegalArgumentException when the backend cannot log (no LOG_SHMFD or LOG_ALL) or
     *     the log has no memfd of its own
     */
    @Override
    public synchronized void startDirtyLog(DirtyLog log) throws IOException {
        Objects.requireNonNull(log, "log");
        checkLoggable(log);
        if (current == null) {
            return;
        }
        setLogBase(log);
        request(VhostUserRequest.SET_FEATURES, RING_NONE, VhostUserCodec.u64(featuresFor(current.ackedFeatures(), true)));
        for (QueueBinding q : current.queues()) {
            setVringAddr(q.index(), q.state().geometry(), current.memory(), true);
        }
        dirtyLog = log;
        current = current.withDirtyLog(log);
    }

    /** Stops logging: SET_VRING_ADDR without the log flag per ring, SET_FEATURES without LOG_ALL. */
    @Override
    public synchronized void stopDirtyLog() throws IOException {
        if (current != null && dirtyLog != null) {
            for (QueueBinding q : current.queues()) {
                setVringAddr(q.index(), q.state().geometry(), current.memory(), false);
            }
            request(VhostUserRequest.SET_FEATURES, RING_NONE, VhostUserCodec.u64(featuresFor(current.ackedFeatures(),
                    false)));
            current = current.withDirtyLog(null);
        }
        dirtyLog = null;
    }

    /**
     * @throws UnsupportedOperationException always: a vhost-user backend is another process, which
     *     each side of a migration connects to itself; nothing moves
     */
    @Override
    public BackendTransfer transfer() {
        throw new UnsupportedOperationException(name + ": nothing to transfer; the destination connects its own "
                + "vhost-user backend");
    }

    // ------------------------------------------------------------------ messages

    /** A request without a reply of its own; under REPLY_ACK its acknowledgement is awaited. */
    private void request(VhostUserRequest r, int ring, byte[] payload) throws IOException {
        request(r, ring, payload, List.of());
    }

    private void request(VhostUserRequest r, int ring, byte[] payload, List<FileDescriptor> fds) throws IOException {
        boolean ack = VhostUserProtocolFeature.REPLY_ACK.in(protocolFeatures);
        send(r, ring, payload, fds, ack);
        if (ack) {
            long status = VhostUserCodec.u64(awaitReply(r, ring));
            if (status != 0) {
                throw new IOException(String.format("%s refused %s%s: REPLY_ACK status %d", name, r, ringName(ring), status));
            }
        }
    }

    private void send(VhostUserRequest r, int ring, byte[] payload, List<FileDescriptor> fds, boolean needReply)
            throws IOException {
        if (goneReason != null) {
            throw new IOException(name + " is gone (" + goneReason + "); cannot send " + r + ringName(ring));
        }
        MessageObserver o = observer;
        if (o != null) {
            o.beforeSend(r, ring);
        }
        try {
            connection.send(VhostUserMessage.request(r, needReply, payload, fds));
        } catch (NativeCallException e) {
            gone("sending " + r + ringName(ring) + " failed: " + e.getMessage());
            throw new IOException(name + ": sending " + r + ringName(ring) + " failed", e);
        }
        sent++;
    }

    private long askU64(VhostUserRequest r) throws IOException {
        synchronized (this) {
            send(r, RING_NONE, new byte[0], List.of(), false);
            return VhostUserCodec.u64(awaitReply(r, RING_NONE));
        }
    }

    private VringState askVringState(VhostUserRequest r, int ring) throws IOException {
        send(r, ring, VhostUserCodec.vringState(ring, 0), List.of(), false);
        return VhostUserCodec.vringState(awaitReply(r, ring));
    }

    /** The reply to {@code r}, within the reply deadline, checked (request number, size, no fds). */
    private VhostUserMessage awaitReply(VhostUserRequest r, int ring) throws IOException {
        VhostUserMessage m = awaitMessage(r, ring);
        try (m) {
            VhostUserCodec.checkReply(m, r);
            return m;
        } catch (VhostUserProtocolException e) {
            gone("malformed reply to " + r + ringName(ring) + ": " + e.getMessage());
            throw new IOException(name + ": reply to " + r + ringName(ring) + ": " + e.getMessage(), e);
        }
    }

    /** The next message, awaited as the reply to {@code r} within the reply deadline; not checked. */
    private VhostUserMessage awaitMessage(VhostUserRequest r, int ring) throws IOException {
        if (!DescriptorPoller.awaitReadable(connection.socket().fd(), replyDeadline)) {
            // A late reply would be taken for the next request's: the connection is out of step for good.
            String why = String.format("no reply to %s%s within %d ms", r, ringName(ring), replyDeadline.toMillis());
            gone(why);
            throw new IOException(name + ": " + why);
        }
        VhostUserMessage m;
        try {
            m = connection.receive();
        } catch (VhostUserProtocolException e) {
            gone("malformed reply to " + r + ringName(ring) + ": " + e.getMessage());
            throw new IOException(name + ": reply to " + r + ringName(ring) + ": " + e.getMessage(), e);
        }
        if (m == null) {
            String why = connection.endReason();
            gone(why + " (awaiting the reply to " + r + ringName(ring) + ")");
            throw new IOException(name + ": " + why + " awaiting the reply to " + r + ringName(ring));
        }
        return m;
    }

    private static String ringName(int ring) {
        return ring < 0 ? "" : " of virtqueue " + ring;
    }

    // ------------------------------------------------------------------ the backend process's end

    /** Records that the backend is gone, once; the watcher tells the listener (never the caller's thread). */
    private void gone(String reason) {
        synchronized (this) {
            if (goneReason != null || closed) {
                return;
            }
            goneReason = reason;
        }
        LOG.log(Level.WARNING, name + " is gone: " + reason);
        try {
            watcherWake.signal(); // the watcher reports it and stops
        } catch (NativeCallException | RuntimeException e) {
            // not started yet (connect) or closed meanwhile: nobody to tell
        }
    }

    /** Tells the listener of the current start, if any, that the backend is gone. */
    private void reportGone() {
        BackendListener l;
        synchronized (this) {
            l = current != null ? listener : null;
        }
        if (l != null) {
            l.backendGone(this, goneReason);
        }
    }

    /**
     * The watcher: the socket readable while no request waits for its reply is the backend going
     * away (end of stream, reset) or an unsolicited message; a ring's error eventfd is reported
     * naming the ring.
     */
    private void watch() {
        List<FileDescriptor> fds = new ArrayList<>();
        for (EventFd e : errors) {
            fds.add(e.fd());
        }
        fds.add(watcherWake.fd());
        fds.add(connection.socket().fd());
        int wakeIndex = errors.length;
        int socketIndex = errors.length + 1;
        try (DescriptorPoller poller = new DescriptorPoller(fds);
                DescriptorPoller socketNow = new DescriptorPoller(List.of(connection.socket().fd()))) {
            while (!closed && goneReason == null) {
                if (poller.poll(-1) == 0) {
                    continue;
                }
                for (int i = 0; i < errors.length; i++) {
                    if (poller.isReadable(i) && errors[i].consume() != 0) {
                        String reason = String.format("%s signalled a ring error on virtqueue %d (SET_VRING_ERR)", name, i);
                        BackendListener l = listener;
                        if (l != null) {
                            l.badGuestInput(i, reason);
                        } else {
                            LOG.log(Level.WARNING, reason);
                        }
                    }
                }
                if (poller.isReadable(wakeIndex)) {
                    watcherWake.consume();
                }
                if (poller.isReadable(socketIndex)) {
                    checkSocket(socketNow);
                }
            }
            if (!closed && goneReason != null) {
                reportGone();
            }
        } catch (NativeCallException | RuntimeException e) {
            if (!closed) {
                LOG.log(Level.ERROR, name + ": watcher stopped", e);
            }
        }
    }

    /** Reads what came on the socket while nothing is awaited: end of stream, or an unsolicited message. */
    private void checkSocket(DescriptorPoller socketNow) throws NativeCallException {
        String reason = null;
        synchronized (this) {
            // A life-cycle method holds the lock while it awaits a reply: once we have it, a
            // readable socket holds nothing a request waits for.
            if (closed || goneReason != null || socketNow.poll(0) == 0) {
                return;
            }
            try {
                VhostUserMessage m = connection.receive();
                if (m == null) {
                    reason = connection.endReason();
                } else {
                    m.close();
                    reason = "it sent " + m + " unasked (protocol violation)";
                }
            } catch (VhostUserProtocolException e) {
                reason = "it sent a malformed message: " + e.getMessage();
            }
        }
        gone(reason);
    }

    /**
     * Stops the datapath if started (telling the start's listener, as the other backends do), ends
     * the connection (the backend process sees end of stream) and closes the error eventfds.
     */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            if (current != null) {
                BackendListener inUse = current.listener();
                try {
                    stop();
                } catch (IOException | RuntimeException e) {
                    LOG.log(Level.WARNING, name + ": stop on close failed", e);
                }
                inUse.backendClosed(this);
            }
            closed = true;
        }
        try {
            watcherWake.signal();
            watcher.join();
        } catch (NativeCallException e) {
            LOG.log(Level.WARNING, name + ": cannot wake the watcher", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        connection.close();
        for (EventFd e : errors) {
            e.close();
        }
        watcherWake.close();
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

    @Override
    public String toString() {
        return name + " (" + maxQueuePairs + " pair" + (maxQueuePairs == 1 ? ")" : "s)");
    }
}

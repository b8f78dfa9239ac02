package io.vhostffm.vhost.vhostuser.backend;

import io.vhostffm.vhost.device.DirtyLog;
import io.vhostffm.vhost.device.userspace.QueuePairConfig;
import io.vhostffm.vhost.device.userspace.QueuePairStats;
import io.vhostffm.vhost.device.userspace.UserspaceDatapath;
import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.FileDescriptor;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.os.TapDevice;
import io.vhostffm.vhost.virtio.DeviceStatus;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vhost.vhostuser.MemoryRegion;
import io.vhostffm.vhost.vhostuser.VhostUserCodec;
import io.vhostffm.vhost.vhostuser.VhostUserConnection;
import io.vhostffm.vhost.vhostuser.VhostUserMessage;
import io.vhostffm.vhost.vhostuser.VhostUserProtocolException;
import io.vhostffm.vhost.vhostuser.VhostUserProtocolFeature;
import io.vhostffm.vhost.vhostuser.VhostUserRequest;
import io.vhostffm.vhost.vhostuser.VringAddress;
import io.vhostffm.vhost.vhostuser.VringFd;
import io.vhostffm.vhost.vhostuser.VringState;
import io.vhostffm.vring.QueueGeometry;
import io.vhostffm.vring.QueueState;
import io.vhostffm.vring.VirtqueueException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Consumer;

/**
 * The device side of vhost-user for virtio-net: serves a frontend (QEMU, DPDK's virtio-user,
 * any vhost-user VMM) the datapath of its guest's network device on a TAP, with this library's
 * own rings and {@link UserspaceDatapath}.
 *
 * <p>{@link #serve} runs one frontend's session on the calling thread: it answers the
 * frontend's requests, maps the guest memory SET_MEM_TABLE hands over, and starts a queue pair's
 * datapath once both its rings have a size, addresses, a kick and a call descriptor, are enabled
 * (rings start disabled once PROTOCOL_FEATURES is acked), and, when the STATUS protocol feature
 * is acked, the driver has set DRIVER_OK. GET_VRING_BASE stops the ring's pair and reports where
 * it stopped (packed: {@code (wrap << 15) | index}), chains taken but not used given back.
 *
 * <p>Everything from the socket is untrusted: a malformed or out-of-order message ends the
 * session with a {@link VhostUserProtocolException} naming request and field; ring addresses are
 * checked against the memory table before any access; bad guest input on a ring stops that queue
 * pair (and signals its error eventfd). When the session ends, for whatever reason, every
 * datapath is stopped, the guest memory unmapped and every received descriptor closed; the TAP
 * stays, ready for the next frontend.
 *
 * <p>Thread-safe for {@link #stats()} and {@link #stopSession()} from other threads; one
 * {@link #serve} at a time.
 */
public final class VhostUserNetBackend implements AutoCloseable {
    /** Device features offered by default: the ring formats and buffer layouts the datapath serves. */
    public static final long DEFAULT_FEATURES = VirtioFeature.maskOf(VirtioFeature.VERSION_1,
            VirtioFeature.RING_PACKED, VirtioFeature.MRG_RXBUF, VirtioFeature.EVENT_IDX, VirtioFeature.INDIRECT_DESC,
            VirtioFeature.LOG_ALL)
            | VhostUserProtocolFeature.PROTOCOL_FEATURES_BIT;
    /** Protocol features offered by default. */
    public static final long DEFAULT_PROTOCOL_FEATURES = VhostUserProtocolFeature.maskOf(VhostUserProtocolFeature.MQ,
            VhostUserProtocolFeature.REPLY_ACK, VhostUserProtocolFeature.RARP, VhostUserProtocolFeature.NET_MTU,
            VhostUserProtocolFeature.STATUS, VhostUserProtocolFeature.LOG_SHMFD);

    /**
     * What the backend serves.
     *
     * @param tap              the TAP the frames go through: one queue per queue pair, opened with
     *                         {@link TapDevice#VHOST_FLAGS}; its vnet header size is set to 12 here
     * @param queuePairs       queue pairs offered (GET_QUEUE_NUM); at most the TAP's queues
     * @param mtu              the TAP's MTU, for sizing receive buffers (68..65535)
     * @param features         device features offered (GET_FEATURES)
     * @param protocolFeatures protocol features offered (GET_PROTOCOL_FEATURES)
     * @param status           receives one human-readable line per event (negotiation, rings
     *                         started and stopped, errors); never null
     */
    public record Config(TapDevice tap, int queuePairs, int mtu, long features, long protocolFeatures,
            Consumer<String> status) {
        public Config {
            Objects.requireNonNull(tap, "tap");
            Objects.requireNonNull(status, "status");
            if (queuePairs < 1 || queuePairs > tap.queues().size() || queuePairs > 0x80) {
                throw new IllegalArgumentException("queuePairs must be 1.." + Math.min(tap.queues().size(), 0x80)
                        + " (the TAP's queues): " + queuePairs);
            }
            if (mtu < 68 || mtu > 65535) {
                throw new IllegalArgumentException("mtu must be 68..65535: " + mtu);
            }
            if ((features & VirtioFeature.VERSION_1.mask()) == 0) {
                throw new IllegalArgumentException("the datapath speaks the 12-byte virtio_net_hdr_v1: VERSION_1 must be offered");
            }
        }

        /**
         * The defaults for a TAP: all its queues, MTU 1500, {@link #DEFAULT_FEATURES} (with
         * VIRTIO_NET_F_MQ when the TAP has more than one queue), {@link #DEFAULT_PROTOCOL_FEATURES}.
         */
        public static Config of(TapDevice tap, Consumer<String> status) {
            return new Config(tap, tap.queues().size(), 1500, defaultFeatures(tap.queues().size()), DEFAULT_PROTOCOL_FEATURES,
                    status);
        }
    }

    /** {@link #DEFAULT_FEATURES}, plus VIRTIO_NET_F_MQ when more than one queue pair is served. */
    public static long defaultFeatures(int queuePairs) {
        return DEFAULT_FEATURES | (queuePairs > 1 ? VirtioFeature.MQ.mask() : 0);
    }

    /** {@code -Dvhostffm.vhostuser.trace=true}: one status line per message received. */
    private static final boolean TRACE = Boolean.getBoolean("vhostffm.vhostuser.trace");
    private static final long DRIVER_OK = DeviceStatus.DRIVER_OK;
    private static final int RING_SIZE_LIMIT = QueueGeometry.MAX_SIZE;

    private final Config config;
    private final Ring[] rings;
    private final UserspaceDatapath[] datapaths;
    private final ConcurrentHashMap<Integer, String> brokenPairs = new ConcurrentHashMap<>();
    private final long[] finishedStats = new long[7];
    private volatile VhostUserConnection session;

    // Session state, owned by the serving thread.
    private long ackedFeatures;
    private boolean featuresSet;
    private long ackedProtocolFeatures;
    private long deviceStatus;
    private int mtu;
    private FrontendMemory memory;
    /** SET_LOG_BASE's bitmap; marked by the datapaths while VHOST_F_LOG_ALL is acked. */
    private volatile DirtyLog log;
    private volatile boolean logging;

    /** A backend over {@code config.tap()}; sets the TAP's vnet header size to 12. */
    public VhostUserNetBackend(Config config) throws NativeCallException {
        this.config = Objects.requireNonNull(config, "config");
        config.tap().setVnetHeaderSize(12);
        this.rings = new Ring[2 * config.queuePairs()];
        for (int i = 0; i < rings.length; i++) {
            rings[i] = new Ring(i);
        }
        this.datapaths = new UserspaceDatapath[config.queuePairs()];
        resetSession();
    }

    /**
     * Serves one frontend until it disconnects, breaks the protocol, or {@link #stopSession()} is
     * called; then stops every datapath, unmaps the guest memory and closes the descriptors it
     * received. The connection is closed too.
     *
     * @return why the session ended, for a person to read
     */
    public String serve(VhostUserConnection connection) throws NativeCallException {
        Objects.requireNonNull(connection, "connection");
        session = connection;
        try (connection) {
            while (true) {
                VhostUserMessage message;
                try {
                    message = connection.receive();
                } catch (VhostUserProtocolException e) {
                    config.status().accept("protocol error, closing the connection: " + e.getMessage());
                    return "protocol error: " + e.getMessage();
                }
                if (message == null) {
                    String reason = connection.endReason();
                    config.status().accept("frontend gone: " + reason);
                    return reason;
                }
                try (message) {
                    handle(connection, message);
                } catch (VhostUserProtocolException e) {
                    config.status().accept("protocol error, closing the connection: " + e.getMessage());
                    if (message.needsReply() && hasProtocolFeature(VhostUserProtocolFeature.REPLY_ACK)
                            && message.request() != null && !message.request().answers()) {
                        trySend(connection, VhostUserMessage.reply(message.request(), VhostUserCodec.u64(1)));
                    }
                    return "protocol error: " + e.getMessage();
                }
            }
        } finally {
            session = null;
            resetSession();
        }
    }

    /** Ends the session being served (from any thread): {@link #serve} returns soon after. */
    public void stopSession() {
        VhostUserConnection c = session;
        if (c != null) {
            c.shutdown();
        }
    }

    // ---------------------------------------------------------------------------------------

    private void handle(VhostUserConnection connection, VhostUserMessage m) throws NativeCallException {
        if (TRACE) {
            config.status().accept("<- " + m + " " + java.util.HexFormat.of().formatHex(m.payload(), 0, Math.min(m.size(), 40)));
        }
        VhostUserRequest request = VhostUserCodec.checkRequest(m);
        byte[] answer = switch (request) {
            case GET_FEATURES -> VhostUserCodec.u64(config.features());
            case SET_FEATURES -> { setFeatures(VhostUserCodec.u64(m)); yield null; }
            case SET_OWNER -> null;
            case RESET_OWNER, RESET_DEVICE -> {
                config.status().accept(request + ": every queue stopped");
                resetSession();
                yield null;
            }
            case GET_PROTOCOL_FEATURES -> {
                requireOffered(request, VhostUserProtocolFeature.PROTOCOL_FEATURES_BIT);
                yield VhostUserCodec.u64(config.protocolFeatures());
            }
            case SET_PROTOCOL_FEATURES -> { setProtocolFeatures(VhostUserCodec.u64(m)); yield null; }
            case GET_QUEUE_NUM -> VhostUserCodec.u64(config.queuePairs());
            case SET_MEM_TABLE -> { setMemTable(m); yield null; }
            case SET_LOG_BASE -> setLogBase(m);
            case SET_LOG_FD -> null; // the legacy log-fd eventfd: nothing is ever written to it here
            case SET_VRING_NUM -> { setVringNum(VhostUserCodec.vringState(m)); yield null; }
            case SET_VRING_ADDR -> { setVringAddr(VhostUserCodec.vringAddress(m)); yield null; }
            case SET_VRING_BASE -> { setVringBase(VhostUserCodec.vringState(m)); yield null; }
            case GET_VRING_BASE -> getVringBase(VhostUserCodec.vringState(m));
            case SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR -> { setVringFd(request, m); yield null; }
            case SET_VRING_ENABLE -> { setVringEnable(VhostUserCodec.vringState(m)); yield null; }
            case SEND_RARP -> { sendRarp(VhostUserCodec.u64(m)); yield null; }
            case NET_SET_MTU -> { setMtu(VhostUserCodec.u64(m)); yield null; }
            case SET_STATUS -> { setStatus(VhostUserCodec.u64(m)); yield null; }
            case GET_STATUS -> VhostUserCodec.u64(deviceStatus);
            case SET_BACKEND_REQ_FD -> null; // BACKEND_REQ is not offered; the descriptor is closed with the message
            default -> throw new VhostUserProtocolException(request.toString(), "request", "not served by this backend");
        };
        if (answer != null) {
            connection.send(VhostUserMessage.reply(request, answer));
        } else if (m.needsReply() && hasProtocolFeature(VhostUserProtocolFeature.REPLY_ACK)) {
            connection.send(VhostUserMessage.reply(request, VhostUserCodec.u64(0)));
        }
    }

    private void setFeatures(long features) throws NativeCallException {
        String name = VhostUserRequest.SET_FEATURES.toString();
        long unoffered = features & ~config.features();
        if (unoffered != 0) {
            throw new VhostUserProtocolException(name, "features", "acks features never offered: "
                    + VirtioFeature.describe(unoffered));
        }
        if ((features & (VirtioFeature.VERSION_1.mask() | VirtioFeature.MRG_RXBUF.mask())) == 0) {
            throw new VhostUserProtocolException(name, "features", "neither VERSION_1 nor MRG_RXBUF: the legacy 10-byte "
                    + "virtio_net_hdr is not served");
        }
        boolean changed = !featuresSet || features != ackedFeatures;
        if (changed && anyRunning() && ((features ^ ackedFeatures) & ~VirtioFeature.LOG_ALL.mask()) != 0) {
            // A ring format or buffer layout change under a running datapath: restart on the new one.
            stopAll("features changed");
        }
        ackedFeatures = features;
        featuresSet = true;
        boolean logAll = VirtioFeature.LOG_ALL.in(features);
        if (logAll != logging) {
            logging = logAll;
            config.status().accept(logAll ? "dirty logging on (VHOST_F_LOG_ALL)" + (log == null ? ", but no log yet" : "")
                    : "dirty logging off");
        }
        if (changed) {
            config.status().accept("features negotiated: 0x" + Long.toHexString(features) + " "
                    + VirtioFeature.describe(features & ~VhostUserProtocolFeature.PROTOCOL_FEATURES_BIT)
                    + ((features & VhostUserProtocolFeature.PROTOCOL_FEATURES_BIT) != 0 ? "|VHOST_USER_F_PROTOCOL_FEATURES(30)" : ""));
        }
        startReadyPairs();
    }

    private void setProtocolFeatures(long features) {
        String name = VhostUserRequest.SET_PROTOCOL_FEATURES.toString();
        requireOffered(VhostUserRequest.SET_PROTOCOL_FEATURES, VhostUserProtocolFeature.PROTOCOL_FEATURES_BIT);
        long unoffered = features & ~config.protocolFeatures();
        if (unoffered != 0) {
            throw new VhostUserProtocolException(name, "features", "acks protocol features never offered: "
                    + VhostUserProtocolFeature.describe(unoffered));
        }
        ackedProtocolFeatures = features;
        config.status().accept("protocol features negotiated: 0x" + Long.toHexString(features) + " "
                + VhostUserProtocolFeature.describe(features));
    }

    private void requireOffered(VhostUserRequest request, long feature) {
        if ((config.features() & feature) == 0) {
            throw new VhostUserProtocolException(request.toString(), "request", "VHOST_USER_F_PROTOCOL_FEATURES was not offered");
        }
    }

    private void setMemTable(VhostUserMessage m) throws NativeCallException {
        List<MemoryRegion> table = VhostUserCodec.memoryTable(m);
        List<FileDescriptor> fds = new ArrayList<>();
        for (int i = 0; i < m.fdCount(); i++) {
            fds.add(m.takeFd(i));
        }
        // The rings' addresses were translated through the old table: a running pair stops,
        // and restarts on the new mapping once the frontend has set its rings again.
        boolean wasRunning = anyRunning();
        stopAll("new memory table");
        FrontendMemory mapped = FrontendMemory.map(table, fds);
        if (memory != null) {
            memory.close();
        }
        memory = mapped;
        StringBuilder line = new StringBuilder("memory table: ").append(table.size()).append(" region(s)");
        for (MemoryRegion r : table) {
            line.append(String.format(" [gpa 0x%x size 0x%x]", r.guestAddress(), r.size()));
        }
        config.status().accept(line.toString());
        if (wasRunning) {
            startReadyPairs();
        }
    }

    /**
     * SET_LOG_BASE: maps the frontend's dirty log bitmap; the datapaths mark it while LOG_ALL is
     * acked. Answered with 0 once mapped (the frontend waits for it under LOG_SHMFD).
     */
    private byte[] setLogBase(VhostUserMessage m) throws NativeCallException {
        if (!hasProtocolFeature(VhostUserProtocolFeature.LOG_SHMFD)) {
            throw new VhostUserProtocolException(m.requestName(), "order", "LOG_SHMFD was not negotiated");
        }
        io.vhostffm.vhost.vhostuser.LogArea area = VhostUserCodec.logArea(m);
        DirtyLog mapped = FrontendMemory.mapLog(area, m.takeFd(0));
        DirtyLog old = log;
        log = mapped;
        if (old != null) {
            // A datapath may still hold the old log for the write in hand: stop the pairs around the swap.
            boolean wasRunning = anyRunning();
            stopAll("dirty log replaced");
            old.close();
            if (wasRunning) {
                startReadyPairs();
            }
        }
        config.status().accept(String.format("dirty log: %d bytes covering guest [0, 0x%x)", area.mmapSize(), mapped.coveredBytes()));
        return VhostUserCodec.u64(0);
    }

    /** The log the datapaths mark now: null unless LOG_ALL is acked and a log was given. */
    private DirtyLog activeLog() {
        return logging ? log : null;
    }

    private Ring ring(VhostUserRequest request, int index) {
        if (index < 0 || index >= rings.length) {
            throw new VhostUserProtocolException(request.toString(), "index", index + " is beyond the " + rings.length
                    + " rings of " + config.queuePairs() + " queue pair(s) (GET_QUEUE_NUM)");
        }
        return rings[index];
    }

    private void requireStopped(VhostUserRequest request, Ring ring) {
        if (ring.running) {
            throw new VhostUserProtocolException(request.toString(), "index", "ring " + ring.index
                    + " is running; stop it with GET_VRING_BASE first");
        }
    }

    private void setVringNum(VringState s) {
        VhostUserRequest request = VhostUserRequest.SET_VRING_NUM;
        Ring ring = ring(request, s.index());
        requireStopped(request, ring);
        boolean packed = featuresSet && VirtioFeature.RING_PACKED.in(ackedFeatures);
        if (s.num() > RING_SIZE_LIMIT) {
            throw new VhostUserProtocolException(request.toString(), "num", s.num() + " for ring " + s.index()
                    + "; a ring holds at most " + RING_SIZE_LIMIT + " entries");
        }
        // 0: the frontend does not use this ring (DPDK sends it for queue pairs it leaves unconfigured).
        if (!packed && s.num() != 0 && Long.bitCount(s.num()) != 1) {
            throw new VhostUserProtocolException(request.toString(), "num", s.num() + " for ring " + s.index()
                    + "; a split ring's size must be a power of two");
        }
        ring.size = (int) s.num();
    }

    private void setVringAddr(VringAddress a) throws NativeCallException {
        VhostUserRequest request = VhostUserRequest.SET_VRING_ADDR;
        Ring ring = ring(request, a.index());
        if (memory == null) {
            throw new VhostUserProtocolException(request.toString(), "order", "ring " + a.index()
                    + " addresses before any SET_MEM_TABLE: nothing to translate them through");
        }
        if (ring.size == 0) {
            // An unused ring (SET_VRING_NUM 0): DPDK sends zero addresses for the queue pairs it
            // leaves unconfigured. Nothing to translate; the ring cannot start without a size.
            ring.addressed = false;
            return;
        }
        long desc = memory.toGuestPhysical(a.descUser(), request.toString(), "desc_user_addr");
        long used = memory.toGuestPhysical(a.usedUser(), request.toString(), "used_user_addr");
        long avail = memory.toGuestPhysical(a.availUser(), request.toString(), "avail_user_addr");
        if (ring.running && ring.addressed && desc == ring.desc && used == ring.deviceArea && avail == ring.driverArea) {
            ring.logged = a.logged(); // only the log flag changed (migration starting or ending)
            return;
        }
        if (ring.running) {
            stopPair(ring.index / 2, "ring " + ring.index + " moved");
        }
        ring.desc = desc;
        ring.deviceArea = used;
        ring.driverArea = avail;
        ring.logged = a.logged();
        ring.addressed = true;
        brokenPairs.remove(ring.index / 2);
        maybeStart(ring.index / 2);
    }

    private void setVringBase(VringState s) {
        VhostUserRequest request = VhostUserRequest.SET_VRING_BASE;
        Ring ring = ring(request, s.index());
        requireStopped(request, ring);
        boolean packed = featuresSet && VirtioFeature.RING_PACKED.in(ackedFeatures);
        if (!packed && s.num() > 0xffff) {
            throw new VhostUserProtocolException(request.toString(), "num", s.num() + " for split ring " + s.index()
                    + "; last_avail_idx is 16 bits");
        }
        if (packed && ring.size > 0 && ((s.num() & 0x7fff) >= ring.size || ((s.num() >>> 16) & 0x7fff) >= ring.size)) {
            throw new VhostUserProtocolException(request.toString(), "num", String.format(
                    "packed avail position %d, used position %d for ring %d of size %d",
                    s.num() & 0x7fff, (s.num() >>> 16) & 0x7fff, s.index(), ring.size));
        }
        ring.base = s.num();
        brokenPairs.remove(ring.index / 2);
    }

    private byte[] getVringBase(VringState s) {
        Ring ring = ring(VhostUserRequest.GET_VRING_BASE, s.index());
        if (ring.running) {
            stopPair(ring.index / 2, "GET_VRING_BASE of ring " + ring.index);
        }
        // The ring is stopped until the frontend starts it again with a new kick.
        ring.replaceKick(null);
        return VhostUserCodec.vringState(ring.index, ring.base);
    }

    private void setVringFd(VhostUserRequest request, VhostUserMessage m) throws NativeCallException {
        VringFd v = VhostUserCodec.vringFd(m);
        Ring ring = ring(request, v.index());
        if (v.noFd() && request == VhostUserRequest.SET_VRING_KICK) {
            throw new VhostUserProtocolException(request.toString(), "payload", "no kick descriptor for ring " + v.index()
                    + ": polling rings is not served");
        }
        EventFd fd = v.noFd() ? null : EventFd.wrap(m.takeFd(0));
        if (request != VhostUserRequest.SET_VRING_ERR && ring.running) {
            // The datapath holds the old descriptor: stop it before the descriptor is closed.
            stopPair(ring.index / 2, request + " of ring " + ring.index);
        }
        switch (request) {
            case SET_VRING_KICK -> ring.replaceKick(fd);
            case SET_VRING_CALL -> ring.replaceCall(fd);
            default -> ring.replaceErr(fd);
        }
        maybeStart(ring.index / 2);
    }

    private void setVringEnable(VringState s) {
        VhostUserRequest request = VhostUserRequest.SET_VRING_ENABLE;
        Ring ring = ring(request, s.index());
        if (s.num() > 1) {
            throw new VhostUserProtocolException(request.toString(), "num", s.num() + " for ring " + s.index() + "; 0 or 1");
        }
        ring.enabled = s.num() == 1;
        if (!ring.enabled && ring.running) {
            stopPair(ring.index / 2, "ring " + ring.index + " disabled");
        }
        maybeStart(ring.index / 2);
    }

    private void setMtu(long value) {
        if (value < 68 || value > 65535) {
            throw new VhostUserProtocolException(VhostUserRequest.NET_SET_MTU.toString(), "mtu", value + "; must be 68..65535");
        }
        mtu = (int) value;
        config.status().accept("MTU " + mtu + " (applies to queue pairs started from now on)");
    }

    private void setStatus(long value) {
        if (value > 0xff) {
            throw new VhostUserProtocolException(VhostUserRequest.SET_STATUS.toString(), "status", "0x"
                    + Long.toHexString(value) + " is wider than the 8-bit device status");
        }
        deviceStatus = value;
        if ((value & DRIVER_OK) == 0 && anyRunning()) {
            stopAll("status 0x" + Long.toHexString(value) + " without DRIVER_OK");
        }
        startReadyPairs();
    }

    /**
     * SEND_RARP: announces the guest's MAC (after a migration) with a RARP request on the TAP, as
     * if the guest had sent it, so switches learn where the guest now is.
     */
    private void sendRarp(long payload) throws NativeCallException {
        byte[] mac = new byte[6];
        for (int i = 0; i < 6; i++) {
            mac[i] = (byte) (payload >>> (8 * i));
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment frame = arena.allocate(12 + 60);
            // virtio_net_hdr_v1: all zero (no offloads); then the Ethernet frame.
            long at = 12;
            for (int i = 0; i < 6; i++) {
                frame.set(ValueLayout.JAVA_BYTE, at + i, (byte) 0xff);
                frame.set(ValueLayout.JAVA_BYTE, at + 6 + i, mac[i]);
            }
            ValueLayout.OfShort be = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);
            frame.set(be, at + 12, (short) 0x8035);   // ETH_P_RARP
            frame.set(be, at + 14, (short) 1);        // hardware: Ethernet
            frame.set(be, at + 16, (short) 0x0800);   // protocol: IPv4
            frame.set(ValueLayout.JAVA_BYTE, at + 18, (byte) 6);
            frame.set(ValueLayout.JAVA_BYTE, at + 19, (byte) 4);
            frame.set(be, at + 20, (short) 3);        // reverse request
            for (int i = 0; i < 6; i++) {
                frame.set(ValueLayout.JAVA_BYTE, at + 22 + i, mac[i]);  // sender hardware address
                frame.set(ValueLayout.JAVA_BYTE, at + 32 + i, mac[i]);  // target hardware address
            }
            config.tap().queue(0).write(frame);
        }
        config.status().accept(String.format("SEND_RARP: announced %02x:%02x:%02x:%02x:%02x:%02x on %s",
                mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], config.tap().name()));
    }

    // ---------------------------------------------------------------------------------------
    // Queue pairs.

    private boolean hasProtocolFeature(VhostUserProtocolFeature f) {
        return f.in(ackedProtocolFeatures);
    }

    private boolean ringsStartDisabled() {
        return (ackedFeatures & VhostUserProtocolFeature.PROTOCOL_FEATURES_BIT) != 0 || !featuresSet;
    }

    private boolean ringReady(Ring ring) {
        return ring.size > 0 && ring.addressed && ring.kick != null && ring.call != null
                && (ring.enabled || !ringsStartDisabled());
    }

    private boolean anyRunning() {
        for (UserspaceDatapath d : datapaths) {
            if (d != null) {
                return true;
            }
        }
        return false;
    }

    private void startReadyPairs() {
        for (int p = 0; p < datapaths.length; p++) {
            maybeStart(p);
        }
    }

    private void maybeStart(int pair) {
        Ring rx = rings[2 * pair];
        Ring tx = rings[2 * pair + 1];
        if (datapaths[pair] != null || memory == null || !featuresSet || brokenPairs.containsKey(pair)
                || !ringReady(rx) || !ringReady(tx)) {
            return;
        }
        if (hasProtocolFeature(VhostUserProtocolFeature.STATUS) && (deviceStatus & DRIVER_OK) == 0) {
            return;
        }
        boolean packed = VirtioFeature.RING_PACKED.in(ackedFeatures);
        boolean eventIdx = VirtioFeature.EVENT_IDX.in(ackedFeatures);
        boolean mergeable = VirtioFeature.MRG_RXBUF.in(ackedFeatures);
        QueuePairConfig queues = new QueuePairConfig(pair, rx.startState(packed, eventIdx), tx.startState(packed, eventIdx),
                rx.kick, rx.call, tx.kick, tx.call, config.tap().queue(pair));
        UserspaceDatapath.Settings settings = new UserspaceDatapath.Settings(null,
                (queue, reason) -> pairFailed(pair, reason), this::activeLog, UserspaceDatapath.DEVICE_QUEUES, mtu, mergeable);
        try {
            datapaths[pair] = UserspaceDatapath.start(memory, List.of(queues), settings);
        } catch (VirtqueueException e) {
            pairFailed(pair, e.getMessage());
            return;
        } catch (NativeCallException e) {
            pairFailed(pair, "cannot start: " + e.getMessage());
            return;
        }
        rx.running = true;
        tx.running = true;
        config.status().accept(String.format("queue pair %d started: %s rings of %d/%d entries%s%s, on %s queue %d; "
                + "rx ring from %s, tx ring from %s", pair, packed ? "packed" : "split", rx.size, tx.size,
                eventIdx ? ", event idx" : "", mergeable ? ", mergeable rx buffers" : "", config.tap().name(), pair,
                position(rx), position(tx)));
    }

    /** A datapath reported bad guest input (on its own thread), or a start failed: the pair stays stopped. */
    private void pairFailed(int pair, String reason) {
        brokenPairs.put(pair, reason);
        config.status().accept("queue pair " + pair + " broken: " + reason);
        for (Ring ring : new Ring[] {rings[2 * pair], rings[2 * pair + 1]}) {
            EventFd err = ring.err;
            if (err != null) {
                try {
                    err.signal();
                } catch (NativeCallException | RuntimeException e) {
                    // the frontend's error eventfd is gone: the status line above still says why
                }
            }
        }
    }

    private void stopPair(int pair, String why) {
        UserspaceDatapath d = datapaths[pair];
        if (d == null) {
            return;
        }
        List<QueueState> states = d.stop();
        addFinished(d.stats());
        datapaths[pair] = null;
        Ring rx = rings[2 * pair];
        Ring tx = rings[2 * pair + 1];
        if (states.size() == 2) {
            rx.stoppedAt(states.get(0).position());
            tx.stoppedAt(states.get(1).position());
        }
        rx.running = false;
        tx.running = false;
        QueuePairStats s = d.stats();
        config.status().accept(String.format("queue pair %d stopped (%s): rx ring at %s, tx ring at %s; "
                + "%d frames to the guest, %d from it, %d dropped, %d tx errors%s", pair, why, position(rx), position(tx),
                s.rxFrames(), s.txFrames(), s.rxDropped(), s.txErrors(),
                d.failure().map(f -> "; failed: " + f).orElse("")));
    }

    /** A ring's stop position as a person reads it: split {@code 17}; packed {@code 17 (wrap 1)}. */
    private String position(Ring ring) {
        return VirtioFeature.RING_PACKED.in(ackedFeatures)
                ? String.format("avail %d (wrap %d), used %d (wrap %d)", ring.base & 0x7fff, (ring.base >>> 15) & 1,
                        (ring.base >>> 16) & 0x7fff, (ring.base >>> 31) & 1)
                : Long.toString(ring.base);
    }

    private void stopAll(String why) {
        for (int p = 0; p < datapaths.length; p++) {
            stopPair(p, why);
        }
    }

    private synchronized void addFinished(QueuePairStats s) {
        finishedStats[0] += s.txFrames();
        finishedStats[1] += s.txBytes();
        finishedStats[2] += s.txErrors();
        finishedStats[3] += s.rxFrames();
        finishedStats[4] += s.rxBytes();
        finishedStats[5] += s.rxFiltered();
        finishedStats[6] += s.rxDropped();
    }

    /** Every frame counted since this backend was made, over every session and queue pair. */
    public synchronized QueuePairStats stats() {
        long[] sum = finishedStats.clone();
        for (UserspaceDatapath d : datapaths.clone()) {
            if (d != null) {
                QueuePairStats s = d.stats();
                sum[0] += s.txFrames();
                sum[1] += s.txBytes();
                sum[2] += s.txErrors();
                sum[3] += s.rxFrames();
                sum[4] += s.rxBytes();
                sum[5] += s.rxFiltered();
                sum[6] += s.rxDropped();
            }
        }
        return new QueuePairStats(sum[0], sum[1], sum[2], sum[3], sum[4], sum[5], sum[6]);
    }

    /** The features the current (or last) frontend acked. */
    public long ackedFeatures() {
        return ackedFeatures;
    }

    /** The protocol features the current (or last) frontend acked. */
    public long ackedProtocolFeatures() {
        return ackedProtocolFeatures;
    }

    /** Queue pairs that stopped on bad guest input in this session, with why. */
    public java.util.Map<Integer, String> brokenPairs() {
        return java.util.Map.copyOf(brokenPairs);
    }

    /** Stops everything of the session and forgets it: the state of a fresh connection. */
    private void resetSession() {
        stopAll("session reset");
        for (Ring ring : rings) {
            ring.reset(false);
        }
        if (memory != null) {
            memory.close();
            memory = null;
        }
        featuresSet = false;
        logging = false;
        DirtyLog oldLog = log;
        log = null;
        if (oldLog != null) {
            oldLog.close();
        }
        deviceStatus = 0;
        mtu = config.mtu();
        brokenPairs.clear();
    }

    private static void trySend(VhostUserConnection c, VhostUserMessage m) {
        try {
            c.send(m);
        } catch (NativeCallException | RuntimeException e) {
            // the connection is being closed for the error anyway
        }
    }

    /** Ends any session and stops every datapath. The TAP stays the caller's. */
    @Override
    public void close() {
        stopSession();
    }
}

package io.vhostffm.jmh;

import io.vhostffm.vhost.device.BackendStart;
import io.vhostffm.vhost.device.QueueBinding;
import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.FileDescriptor;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.MemfdRegion;
import io.vhostffm.vhost.os.UnixSocket;
import io.vhostffm.vhost.virtio.DeviceStatus;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vhost.vhostuser.MemoryRegion;
import io.vhostffm.vhost.vhostuser.VhostUserCodec;
import io.vhostffm.vhost.vhostuser.VhostUserMessage;
import io.vhostffm.vhost.vhostuser.VhostUserProtocolFeature;
import io.vhostffm.vhost.vhostuser.VhostUserRequest;
import io.vhostffm.vhost.vhostuser.VringAddress;
import io.vhostffm.vring.QueueGeometry;
import io.vhostffm.vring.QueuePosition;
import io.vhostffm.vring.VhostVringBase;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * The protocol's floor for {@link VhostUserSwitchoverBenchmark}: a vhost-user frontend with no
 * machinery, on a plain {@link UnixSocket}. No backend object, no observer, no watcher thread, no
 * lock, no position checks: {@link #quickstart()} writes the quickstart's requests, encoded once
 * into native memory, straight on the socket and reads each 20-byte REPLY_ACK into one native
 * buffer, checking only its request number, reply flag and status.
 *
 * <p>Everything around it sends exactly what {@code VhostUserFrontendBackend} sends, in the same
 * order (the fixture test compares the two request by request), so testpmd is in the same state
 * before and after each quickstart whichever frontend drives it: {@link #connect} negotiates as
 * its connect does, {@link #prestart} programs as its prestart does, {@link #stop} stops as its
 * stop does. Those parts are plain code built on the codec, never measured.
 */
final class BareVhostUserFrontend implements AutoCloseable {
    private static final int REPLY_SIZE = VhostUserMessage.HEADER_SIZE + 8;
    private static final ValueLayout.OfInt LE_INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong LE_LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final long OUR_PROTOCOL_FEATURES = VhostUserProtocolFeature.maskOf(VhostUserProtocolFeature.MQ,
            VhostUserProtocolFeature.REPLY_ACK, VhostUserProtocolFeature.STATUS, VhostUserProtocolFeature.LOG_SHMFD);
    private static final long LOG_ALL = 1L << VirtioFeature.LOG_ALL.bit();
    private static final int NO_RING = -1;

    /** One request as sent, for comparing with the backend's (request, virtqueue or -1). */
    record Sent(VhostUserRequest request, int ring) {}

    private final UnixSocket socket;
    private final Duration deadline;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment reply = arena.allocate(REPLY_SIZE, 8);
    private final long backendFeatures;
    private final long protocolFeatures;
    private final EventFd[] errors;
    private boolean owned;
    /** The quickstart's requests, encoded once; their request numbers in {@link #quickstartCodes}. */
    private MemorySegment[] quickstartRequests = new MemorySegment[0];
    private int[] quickstartCodes = new int[0];
    private int[] quickstartRings = new int[0];
    private BackendStart current;
    /** What this frontend sent, when recording (the fixture test); null while benchmarking. */
    private List<Sent> recorded;

    private BareVhostUserFrontend(UnixSocket socket, Duration deadline, int pairs) throws IOException {
        this.socket = socket;
        this.deadline = deadline;
        this.backendFeatures = ask(VhostUserRequest.GET_FEATURES);
        long protocol = 0;
        if ((backendFeatures & VhostUserProtocolFeature.PROTOCOL_FEATURES_BIT) != 0) {
            protocol = ask(VhostUserRequest.GET_PROTOCOL_FEATURES) & OUR_PROTOCOL_FEATURES;
            send(VhostUserRequest.SET_PROTOCOL_FEATURES, NO_RING, VhostUserCodec.u64(protocol), List.of(), false);
        }
        this.protocolFeatures = protocol;
        if (!VhostUserProtocolFeature.REPLY_ACK.in(protocol)) {
            throw new IOException("the backend offers no REPLY_ACK: there is no acknowledgement to measure");
        }
        if (VhostUserProtocolFeature.MQ.in(protocol) && ask(VhostUserRequest.GET_QUEUE_NUM) < pairs) {
            throw new IOException("the backend serves fewer than " + pairs + " queue pairs");
        }
        this.errors = new EventFd[2 * pairs];
        for (int i = 0; i < errors.length; i++) {
            errors[i] = EventFd.create("bare vhost-user ring error, virtqueue " + i);
        }
    }

    /** Connects and negotiates as {@code VhostUserFrontendBackend.connect} does. */
    static BareVhostUserFrontend connect(Path path, Duration deadline, int pairs) throws IOException {
        UnixSocket socket = UnixSocket.connect(path);
        try {
            return new BareVhostUserFrontend(socket, deadline, pairs);
        } catch (IOException | RuntimeException e) {
            socket.close();
            throw e;
        }
    }

    /** Records every request sent from now on (null: stop recording). */
    void record(List<Sent> into) {
        this.recorded = into;
    }

    /**
     * The backend's prestart, request for request: SET_OWNER (once), SET_FEATURES, SET_STATUS,
     * SET_MEM_TABLE, per ring NUM, ADDR, KICK, CALL, ERR. Then encodes the quickstart's requests
     * for the start's positions.
     */
    void prestart(BackendStart start) throws IOException {
        if (!owned) {
            request(VhostUserRequest.SET_OWNER, NO_RING, new byte[0], List.of());
            owned = true;
        }
        long features = start.ackedFeatures() & backendFeatures & ~LOG_ALL;
        if ((backendFeatures & VhostUserProtocolFeature.PROTOCOL_FEATURES_BIT) != 0) {
            features |= VhostUserProtocolFeature.PROTOCOL_FEATURES_BIT;
        }
        request(VhostUserRequest.SET_FEATURES, NO_RING, VhostUserCodec.u64(features), List.of());
        if (VhostUserProtocolFeature.STATUS.in(protocolFeatures)) {
            request(VhostUserRequest.SET_STATUS, NO_RING, VhostUserCodec.u64(DeviceStatus.ACKNOWLEDGE
                    | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK), List.of());
        }
        MemfdGuestMemory memory = (MemfdGuestMemory) start.memory();
        List<MemoryRegion> table = new ArrayList<>();
        List<FileDescriptor> fds = new ArrayList<>();
        for (MemfdRegion r : memory.memfdRegions()) {
            table.add(new MemoryRegion(r.guestAddress(), r.size(), r.userspaceAddress(), 0));
            fds.add(r.fd());
        }
        request(VhostUserRequest.SET_MEM_TABLE, NO_RING, VhostUserCodec.memoryTable(table), fds);
        for (QueueBinding q : start.queues()) {
            int i = q.index();
            QueueGeometry g = q.state().geometry();
            request(VhostUserRequest.SET_VRING_NUM, i, VhostUserCodec.vringState(i, g.size()), List.of());
            request(VhostUserRequest.SET_VRING_ADDR, i, VhostUserCodec.vringAddress(new VringAddress(i, 0,
                    user(memory, g.descTableAddress()), user(memory, g.deviceAreaAddress()),
                    user(memory, g.driverAreaAddress()), 0)), List.of());
            request(VhostUserRequest.SET_VRING_KICK, i, VhostUserCodec.vringFd(i, false), List.of(q.kick().fd()));
            request(VhostUserRequest.SET_VRING_CALL, i, VhostUserCodec.vringFd(i, false), List.of(q.call().fd()));
            request(VhostUserRequest.SET_VRING_ERR, i, VhostUserCodec.vringFd(i, false), List.of(errors[i].fd()));
        }
        current = start;
        encodeQuickstart(start.positions(), start.activePairs());
    }

    /** Per ring SET_VRING_BASE and SET_VRING_ENABLE(1) (rings of active pairs), then SET_STATUS with DRIVER_OK. */
    private void encodeQuickstart(List<QueuePosition> positions, int activePairs) {
        List<byte[]> wire = new ArrayList<>();
        List<Integer> codes = new ArrayList<>();
        List<Integer> rings = new ArrayList<>();
        for (int i = 0; i < positions.size(); i++) {
            long base = Integer.toUnsignedLong(VhostVringBase.encodeVhostUser(positions.get(i)));
            wire.add(VhostUserMessage.request(VhostUserRequest.SET_VRING_BASE, true, VhostUserCodec.vringState(i, base),
                    List.of()).wireBytes());
            codes.add(VhostUserRequest.SET_VRING_BASE.code());
            rings.add(i);
            if (i / 2 < activePairs) {
                wire.add(VhostUserMessage.request(VhostUserRequest.SET_VRING_ENABLE, true, VhostUserCodec.vringState(i, 1),
                        List.of()).wireBytes());
                codes.add(VhostUserRequest.SET_VRING_ENABLE.code());
                rings.add(i);
            }
        }
        if (VhostUserProtocolFeature.STATUS.in(protocolFeatures)) {
            wire.add(VhostUserMessage.request(VhostUserRequest.SET_STATUS, true, VhostUserCodec.u64(DeviceStatus.ACKNOWLEDGE
                    | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK | DeviceStatus.DRIVER_OK), List.of()).wireBytes());
            codes.add(VhostUserRequest.SET_STATUS.code());
            rings.add(NO_RING);
        }
        if (quickstartRequests.length != wire.size()) {
            quickstartRequests = new MemorySegment[wire.size()];
            quickstartCodes = new int[wire.size()];
            quickstartRings = new int[wire.size()];
        }
        for (int k = 0; k < wire.size(); k++) {
            byte[] bytes = wire.get(k);
            MemorySegment s = quickstartRequests[k];
            if (s == null || s.byteSize() != bytes.length) {
                s = arena.allocate(bytes.length, 8);
                quickstartRequests[k] = s;
            }
            MemorySegment.copy(bytes, 0, s, ValueLayout.JAVA_BYTE, 0, bytes.length);
            quickstartCodes[k] = codes.get(k);
            quickstartRings[k] = rings.get(k);
        }
    }

    /**
     * The measured part: each preencoded request written on the socket, its acknowledgement read
     * and checked (request number, reply flag, status 0) before the next goes.
     */
    void quickstart() throws IOException {
        MemorySegment[] requests = quickstartRequests;
        int[] codes = quickstartCodes;
        List<Sent> r = recorded;
        for (int k = 0; k < requests.length; k++) {
            writeFully(requests[k]);
            readFully(reply);
            if (reply.get(LE_INT, 0) != codes[k] || (reply.get(LE_INT, 4) & VhostUserMessage.REPLY) == 0
                    || reply.get(LE_INT, 8) != 8 || reply.get(LE_LONG, VhostUserMessage.HEADER_SIZE) != 0) {
                throw new IOException(String.format("quickstart request %d (%s): acknowledgement code %d, flags 0x%x, "
                        + "size %d, status %d", k, VhostUserRequest.forCode(codes[k]), reply.get(LE_INT, 0),
                        reply.get(LE_INT, 4), reply.get(LE_INT, 8), reply.get(LE_LONG, VhostUserMessage.HEADER_SIZE)));
            }
            if (r != null) {
                r.add(new Sent(VhostUserRequest.forCode(codes[k]), quickstartRings[k]));
            }
        }
    }

    /**
     * The backend's stop, request for request: SET_VRING_ENABLE(0) per ring (transmit rings
     * first), SET_STATUS(0), GET_VRING_BASE per ring.
     *
     * @return GET_VRING_BASE's answer per ring
     */
    int[] stop() throws IOException {
        BackendStart stopping = current;
        int rings = stopping.queues().size();
        for (int parity = 1; parity >= 0; parity--) {
            for (int i = parity; i < rings; i += 2) {
                if (i / 2 < stopping.activePairs()) {
                    request(VhostUserRequest.SET_VRING_ENABLE, i, VhostUserCodec.vringState(i, 0), List.of());
                }
            }
        }
        if (VhostUserProtocolFeature.STATUS.in(protocolFeatures)) {
            request(VhostUserRequest.SET_STATUS, NO_RING, VhostUserCodec.u64(0), List.of());
        }
        int[] bases = new int[rings];
        for (int i = 0; i < rings; i++) {
            send(VhostUserRequest.GET_VRING_BASE, i, VhostUserCodec.vringState(i, 0), List.of(), false);
            byte[] answer = awaitReply(VhostUserRequest.GET_VRING_BASE, i, 8);
            bases[i] = (int) MemorySegment.ofArray(answer).get(LE_INT, 4);
        }
        current = null;
        return bases;
    }

    private long ask(VhostUserRequest r) throws IOException {
        send(r, NO_RING, new byte[0], List.of(), false);
        return MemorySegment.ofArray(awaitReply(r, NO_RING, 8)).get(LE_LONG, 0);
    }

    /** A request without a reply of its own, with NEED_REPLY; its acknowledgement awaited and checked. */
    private void request(VhostUserRequest r, int ring, byte[] payload, List<FileDescriptor> fds) throws IOException {
        send(r, ring, payload, fds, true);
        long status = MemorySegment.ofArray(awaitReply(r, ring, 8)).get(LE_LONG, 0);
        if (status != 0) {
            throw new IOException("the backend refused " + r + " of virtqueue " + ring + ": status " + status);
        }
    }

    private void send(VhostUserRequest r, int ring, byte[] payload, List<FileDescriptor> fds, boolean needReply)
            throws IOException {
        socket.send(VhostUserMessage.request(r, needReply, payload, fds).wireBytes(), fds);
        if (recorded != null) {
            recorded.add(new Sent(r, ring));
        }
    }

    /** The reply's payload of {@code size} bytes, after checking its header. */
    private byte[] awaitReply(VhostUserRequest r, int ring, int size) throws IOException {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment m = a.allocate(VhostUserMessage.HEADER_SIZE + size);
            readFully(m);
            if (m.get(LE_INT, 0) != r.code() || (m.get(LE_INT, 4) & VhostUserMessage.REPLY) == 0
                    || m.get(LE_INT, 8) != size) {
                throw new IOException(String.format("reply to %s of virtqueue %d: code %d, flags 0x%x, size %d", r, ring,
                        m.get(LE_INT, 0), m.get(LE_INT, 4), m.get(LE_INT, 8)));
            }
            return m.asSlice(VhostUserMessage.HEADER_SIZE).toArray(ValueLayout.JAVA_BYTE);
        }
    }

    private void writeFully(MemorySegment bytes) throws IOException {
        long done = 0;
        while (done < bytes.byteSize()) {
            done += socket.write(bytes.asSlice(done), deadline);
        }
    }

    private void readFully(MemorySegment into) throws IOException {
        long done = 0;
        while (done < into.byteSize()) {
            long got = socket.read(into.asSlice(done), deadline);
            if (got == 0) {
                throw new IOException("the backend closed the connection " + done + " bytes into a reply");
            }
            done += got;
        }
    }

    /** Where guest address {@code address} is mapped in this process. */
    private static long user(MemfdGuestMemory memory, long address) {
        for (MemfdRegion r : memory.memfdRegions()) {
            if (address >= r.guestAddress() && address - r.guestAddress() < r.size()) {
                return r.userspaceAddress() + (address - r.guestAddress());
            }
        }
        throw new IllegalArgumentException(String.format("guest address 0x%x is in no region", address));
    }

    /** Closes the socket (testpmd sees the connection end), the error eventfds and the encoded requests. */
    @Override
    public void close() {
        socket.close();
        for (EventFd e : errors) {
            e.close();
        }
        arena.close();
    }
}

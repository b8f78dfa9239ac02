package io.vhostffm.migration.net;

import io.vhostffm.migration.MigrationException;
import io.vhostffm.migration.MigrationPeerException;
import io.vhostffm.migration.MigrationPhase;
import io.vhostffm.migration.schema.StateDecodeException;
import io.vhostffm.migration.schema.StateSchema;
import io.vhostffm.vhost.os.FileDescriptor;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.MemfdRegion;
import io.vhostffm.vhost.os.UnixSocket;
import io.vhostffm.vhost.device.BackendTransfer;
import java.io.EOFException;
import java.io.IOException;
import java.time.Duration;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.nio.ByteOrder;

/**
 * The first message of a migration between two processes on one host: the guest memory memfds
 * and the backend's endpoint descriptors (a TAP's queue fds, from {@link
 * io.vhostffm.vhost.device.NetBackend#transfer()}), passed with SCM_RIGHTS over the UNIX socket
 * that then carries the migration stream. Guest memory is then shared, not copied: the source's
 * memfds are mapped by the destination, so no RAM precopy is needed.
 *
 * <p>Wire format: magic {@code "VFMH"}, a 4-byte big-endian length, then a {@link Manifest}
 * encoded by its {@link StateSchema}; the descriptors ride on the first bytes, at most
 * {@link UnixSocket#MAX_FDS_PER_MESSAGE} per byte, memfds first (one per region, in manifest
 * order), then the endpoint's.
 */
public final class LocalHandoff {
    private static final int MAGIC = 0x56464d48; // "VFMH"
    private static final int MAX_MANIFEST = 1 << 20;
    private static final StateSchema<Manifest> SCHEMA = StateSchema.of(Manifest.class);

    private LocalHandoff() {}

    /** One guest memory region. */
    public record Region(long guestAddress, long size) {}

    /**
     * What travels as bytes next to the descriptors.
     *
     * @param regions the guest memory regions, one memfd each when shared
     * @param sharedMemory whether the memfds travel (one host) or the destination makes its own
     *     memory of the same shape, filled by {@link RamPrecopy} (two hosts)
     * @param backendKind {@link BackendTransfer#kind()}
     * @param backendName {@link BackendTransfer#name()}
     * @param vnetHeaderSize {@link BackendTransfer#vnetHeaderSize()}
     * @param backendFds how many endpoint descriptors follow the memfds
     */
    public record Manifest(List<Region> regions, boolean sharedMemory, String backendKind, String backendName,
            int vnetHeaderSize, int backendFds) {}

    /** What the destination received: its mapping of the shared guest memory, and the endpoint to rebuild a backend on. */
    public record Received(MemfdGuestMemory memory, BackendTransfer backend) {}

    /** Source: sends the memfds of {@code memory} and {@code transfer}'s descriptors. */
    public static void send(UnixSocket socket, MemfdGuestMemory memory, BackendTransfer transfer)
            throws MigrationException {
        send(socket, memory, true, transfer);
    }

    /**
     * Source: sends {@code transfer}'s descriptors and the shape of {@code memory}; its memfds
     * too when {@code shareMemory}, else the destination makes its own memory (RAM precopy).
     *
     * @throws MigrationPeerException (phase HANDOFF) when the destination or the connection failed
     */
    public static void send(UnixSocket socket, MemfdGuestMemory memory, boolean shareMemory, BackendTransfer transfer)
            throws MigrationException {
        List<Region> regions = new ArrayList<>();
        List<FileDescriptor> fds = new ArrayList<>();
        for (MemfdRegion r : memory.memfdRegions()) {
            regions.add(new Region(r.guestAddress(), r.size()));
            if (shareMemory) {
                fds.add(r.fd());
            }
        }
        fds.addAll(transfer.fds());
        byte[] manifest = SCHEMA.encode(new Manifest(regions, shareMemory, transfer.kind(), transfer.name(), transfer.vnetHeaderSize(),
                transfer.fds().size()));
        ByteBuffer message = ByteBuffer.allocate(8 + manifest.length);
        message.putInt(MAGIC).putInt(manifest.length).put(manifest);
        byte[] bytes = message.array();
        // One SCM_RIGHTS message carries at most MAX_FDS_PER_MESSAGE descriptors (the kernel's
        // SCM_MAX_FD): a TAP of 256 queues has more. Each full batch rides on a byte of its own;
        // the receiver's reads stop at every batch and collect them in order.
        int batches = Math.max(1, Math.ceilDiv(fds.size(), UnixSocket.MAX_FDS_PER_MESSAGE));
        if (batches > bytes.length) {
            throw new IllegalArgumentException(fds.size() + " descriptors need more messages than the handoff has bytes");
        }
        for (int b = 0; b < batches; b++) {
            int from = b * UnixSocket.MAX_FDS_PER_MESSAGE;
            List<FileDescriptor> batch = fds.subList(from, Math.min(fds.size(), from + UnixSocket.MAX_FDS_PER_MESSAGE));
            byte[] part = b < batches - 1 ? new byte[] {bytes[b]} : java.util.Arrays.copyOfRange(bytes, b, bytes.length);
            try {
                socket.send(part, batch);
            } catch (IOException e) {
                throw MigrationPeerException.of(MigrationPhase.HANDOFF, "the destination (" + socket.fd().description()
                        + ")", e);
            }
        }
    }

    /**
     * Destination: receives the descriptors, maps the guest memory (refusing unsealed or short
     * memfds), and returns the endpoint for a {@link io.vhostffm.vhost.device.NetBackendFactory}.
     * Every received descriptor is closed on failure.
     *
     * @throws MigrationException when the message is malformed (naming the byte offset)
     */
    public static Received receive(UnixSocket socket) throws IOException, MigrationException {
        return receive(socket, MigrationDeadlines.defaults().handoff());
    }

    /**
     * As {@link #receive(UnixSocket)}, waiting at most {@code timeout} for each part of the
     * message.
     *
     * @throws MigrationPeerException (phase HANDOFF) when the source sent nothing in time (it
     *     stalled: TIMEOUT), closed the socket before the message was complete (CLOSED), or the
     *     connection failed
     */
    public static Received receive(UnixSocket socket, Duration timeout) throws IOException, MigrationException {
        List<FileDescriptor> fds = new ArrayList<>();
        boolean done = false;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment header = arena.allocate(8);
            readFully(socket, header, fds, timeout);
            int magic = header.get(ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN), 0);
            int length = header.get(ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN), 4);
            if (magic != MAGIC) {
                throw new MigrationException(String.format("handoff: magic 0x%08x at byte offset 0 is not \"VFMH\"", magic));
            }
            if (length < 0 || length > MAX_MANIFEST) {
                throw new MigrationException("handoff: manifest length " + length + " at byte offset 4 outside 0.."
                        + MAX_MANIFEST);
            }
            MemorySegment body = arena.allocate(Math.max(1, length));
            readFully(socket, body.asSlice(0, length), fds, timeout);
            Manifest m;
            try {
                m = SCHEMA.decode(body.asSlice(0, length).toArray(ValueLayout.JAVA_BYTE));
            } catch (StateDecodeException e) {
                throw new MigrationException("handoff: " + e.reason() + " at byte offset " + (8 + e.offset())
                        + (e.fieldPath() == null ? "" : ", field '" + e.fieldPath() + "'"), e);
            }
            int memfds = m.sharedMemory() ? m.regions().size() : 0;
            if (fds.size() != memfds + m.backendFds() || m.backendFds() < 1) {
                throw new MigrationException("handoff: " + fds.size() + " descriptors arrived; the manifest names "
                        + memfds + " memfds and " + m.backendFds() + " endpoint descriptors");
            }
            MemfdGuestMemory memory;
            try {
                if (m.sharedMemory()) {
                    List<MemfdGuestMemory.ReceivedRegion> regions = new ArrayList<>();
                    for (int i = 0; i < memfds; i++) {
                        Region r = m.regions().get(i);
                        regions.add(new MemfdGuestMemory.ReceivedRegion(r.guestAddress(), r.size(), fds.get(i)));
                    }
                    memory = MemfdGuestMemory.map(regions);
                } else {
                    List<MemfdGuestMemory.RegionSpec> specs = new ArrayList<>();
                    for (Region r : m.regions()) {
                        specs.add(new MemfdGuestMemory.RegionSpec(r.guestAddress(), r.size()));
                    }
                    memory = MemfdGuestMemory.create("guest", specs);
                }
            } catch (IllegalArgumentException e) {
                throw new MigrationException("handoff: guest memory refused: " + e.getMessage(), e);
            }
            List<FileDescriptor> endpoint = List.copyOf(fds.subList(memfds, fds.size()));
            BackendTransfer transfer = new BackendTransfer(m.backendKind(), m.backendName(), m.vnetHeaderSize(), endpoint);
            done = true;
            return new Received(memory, transfer);
        } finally {
            if (!done) {
                fds.forEach(FileDescriptor::close);
            }
        }
    }

    private static void readFully(UnixSocket socket, MemorySegment into, List<FileDescriptor> fds, Duration timeout)
            throws MigrationException {
        long at = 0;
        String peer = "the source (" + socket.fd().description() + ")";
        while (at < into.byteSize()) {
            UnixSocket.Received r;
            try {
                r = socket.receive(into.asSlice(at), UnixSocket.MAX_FDS_PER_MESSAGE, timeout);
            } catch (IOException e) {
                throw MigrationPeerException.of(MigrationPhase.HANDOFF, peer, e);
            }
            fds.addAll(r.fds());
            if (r.bytes() == 0) {
                throw MigrationPeerException.of(MigrationPhase.HANDOFF, peer, new EOFException(
                        "handoff: the peer closed the socket after " + at + " of " + into.byteSize() + " bytes"));
            }
            at += r.bytes();
        }
    }
}

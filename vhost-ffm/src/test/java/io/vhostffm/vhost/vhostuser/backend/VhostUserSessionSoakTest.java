package io.vhostffm.vhost.vhostuser.backend;

import static io.vhostffm.vhost.vhostuser.backend.HandWrittenFrontend.AVAIL_OFFSET;
import static io.vhostffm.vhost.vhostuser.backend.HandWrittenFrontend.MEMORY;
import static io.vhostffm.vhost.vhostuser.backend.HandWrittenFrontend.RING_SIZE;
import static io.vhostffm.vhost.vhostuser.backend.HandWrittenFrontend.USED_OFFSET;
import static io.vhostffm.vhost.vhostuser.backend.HandWrittenFrontend.ringBase;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.PacketSocket;
import io.vhostffm.vhost.os.TapDevice;
import io.vhostffm.vhost.os.UnixSocket;
import io.vhostffm.vhost.os.UnixSocketListener;
import io.vhostffm.vhost.vhostuser.VhostUserCodec;
import io.vhostffm.vhost.vhostuser.VhostUserConnection;
import io.vhostffm.vhost.vhostuser.VhostUserRequest;
import io.vhostffm.vhost.vhostuser.VringState;
import io.vhostffm.vring.SplitDriverQueue;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The soak of the device side's vhost-user sessions: one backend on one real TAP, serving frontend
 * after frontend on a real listening UNIX socket, as {@code bin/vhost-user-net --server} does. Each
 * cycle a {@link HandWrittenFrontend} connects, negotiates, hands over a fresh memfd as its memory
 * table, sets up and enables both rings of the pair (its own kick and call eventfds), and then, as
 * the guest's driver ({@link SplitDriverQueue} over the shared memfd), receives {@value #FRAMES}
 * frames a {@link PacketSocket} on the TAP's far side sends and sends {@value #FRAMES} the packet
 * socket receives, each checked byte for byte and in order. The session then ends in turn by a
 * clean close (both rings stopped by GET_VRING_BASE first, their positions checked), an abrupt
 * close (a frame still in flight, the rings running), or a malformed message (a ring index beyond
 * the queue count), and the backend must report the matching end.
 *
 * <p>After {@value #WARM_UP} cycles (class loading, the JDK's own lazily opened files and threads)
 * the {@link SessionLedger} is taken, and after the last it must be equal (and so must the ledgers
 * taken in the middle of the first session after warm-up and of the last): descriptors by kind,
 * threads by name prefix, memfd mappings and their bytes. A session that leaves one eventfd, memfd
 * mapping or datapath thread behind fails naming the kind and both counts.
 *
 * <p>{@value #CYCLES} cycles, as many as the other soaks run: each costs a connection, about 20
 * messages, the start and stop of a datapath (its thread) and a 1 MiB memfd mapped and unmapped,
 * about 5 to 9 ms on a 2-core machine shared with other builds (1,000 cycles took 5 to 9 s), so the soak
 * stays well under half a minute even when the machine is twice as loaded, and a leak of one
 * resource per session shows as hundreds.
 */
class VhostUserSessionSoakTest {
    private static final int WARM_UP = 5;
    private static final int CYCLES = 1_000;
    private static final int FRAMES = 3;
    private static final int VNET_HEADER = 12;
    private static final int BUFFER = 2048;
    private static final long RX_BUFFERS = 0x40000;
    private static final long TX_BUFFERS = 0x80000;
    private static final Duration DEADLINE = Duration.ofSeconds(10);

    /** How a cycle's session ends. */
    private enum Ending { CLEAN_CLOSE, ABRUPT_CLOSE, MALFORMED_MESSAGE }

    private final BlockingQueue<String> sessionEnds = new LinkedBlockingQueue<>();
    private final MemorySegment frameBuffer = Arena.ofAuto().allocate(2048);
    private StatusLog status;
    private PacketSocket host;
    private Path socketPath;
    private int framesNumbered;
    private int pairsStarted;
    /** The ledger in the middle of a session (after its traffic): the first after warm-up, and the last. */
    private SessionLedger warmSession;
    private SessionLedger lastSession;
    private volatile boolean closing;

    @Test
    void connectTrafficAndDisconnectLeaveNothingBehind(@TempDir Path dir) throws Exception {
        socketPath = dir.resolve("vu.sock");
        status = new StatusLog(null);
        TapDevice tap = TapDevice.create("vusoak%d", 1, TapDevice.VHOST_FLAGS);
        Thread server = null;
        try (tap; UnixSocketListener listener = UnixSocketListener.bind(socketPath)) {
            // No IPv6 on the TAP: the kernel's own solicitations would be frames nobody asked for.
            Path disable = Path.of("/proc/sys/net/ipv6/conf", tap.name(), "disable_ipv6");
            if (Files.exists(disable)) {
                Files.writeString(disable, "1");
            }
            tap.setLinkUp(true);
            VhostUserNetBackend backend = new VhostUserNetBackend(VhostUserNetBackend.Config.of(tap, status));
            server = Thread.ofPlatform().daemon().name("soak backend").start(() -> serveEveryFrontend(backend, listener));
            try (PacketSocket packets = PacketSocket.bind(tap.name())) {
                host = packets;
                SessionLedger warm = null;
                for (int cycle = 0; cycle < CYCLES; cycle++) {
                    if (cycle == WARM_UP) {
                        warm = SessionLedger.take();
                    }
                    session(cycle, Ending.values()[cycle % Ending.values().length]);
                }
                SessionLedger after = SessionLedger.take();
                SessionLedger.requireFlat("vhost-user sessions (" + (CYCLES - WARM_UP) + " cycles after " + WARM_UP
                        + " to warm up)", warm, after);
                SessionLedger.requireFlat("a vhost-user session in progress (cycle " + (CYCLES - 1) + " against cycle "
                        + WARM_UP + ")", warmSession, lastSession);
                System.out.println("vhost-user session soak: ledger between sessions after " + WARM_UP + " and after " + CYCLES
                        + " cycles: " + after.counts() + "; during a session: " + lastSession.counts());
            } finally {
                closing = true;
                backend.close();
                UnixSocket.connect(socketPath).close(); // ends the server's accept
                server.join(DEADLINE.toMillis());
            }
        }
        assertTrue(!server.isAlive(), "the backend's server thread ended");
    }

    /** The server: one session after another, each one's end reported, until the test is closing. */
    private void serveEveryFrontend(VhostUserNetBackend backend, UnixSocketListener listener) {
        while (!closing) {
            try {
                UnixSocket connection = listener.accept();
                if (closing) {
                    connection.close();
                    return;
                }
                sessionEnds.add(backend.serve(VhostUserConnection.backend(connection)));
            } catch (IOException | RuntimeException e) {
                sessionEnds.add("serving failed: " + e);
            }
        }
    }

    private void session(int cycle, Ending ending) throws Exception {
        String what = "cycle " + cycle + " (" + ending + ")";
        try (MemfdGuestMemory guest = MemfdGuestMemory.create("soak-frontend", List.of(new MemfdGuestMemory.RegionSpec(0, MEMORY)));
             EventFd rxKick = EventFd.create(); EventFd rxCall = EventFd.create();
             EventFd txKick = EventFd.create(); EventFd txCall = EventFd.create()) {
            VhostUserConnection connection = VhostUserConnection.frontend(UnixSocket.connect(socketPath));
            try {
                HandWrittenFrontend frontend = new HandWrittenFrontend(connection);
                frontend.negotiate();
                frontend.memTable(guest);
                SplitDriverQueue rx = driverQueue(0, guest);
                SplitDriverQueue tx = driverQueue(1, guest);
                for (int i = 0; i < FRAMES; i++) {
                    assertEquals(i, rx.add(new long[] {RX_BUFFERS + (long) i * BUFFER}, new int[] {BUFFER}, 0, 1));
                }
                frontend.ring(0, rxKick, rxCall);
                frontend.ring(1, txKick, txCall);
                status.await("queue pair 0 started (" + what + ")", l -> l.startsWith("queue pair 0 started"), ++pairsStarted,
                        DEADLINE);
                MemorySegment memory = guest.memfdRegions().get(0).segment();
                toGuest(what, rx, rxCall, memory);
                fromGuest(what, tx, txKick, txCall, memory);
                if (cycle == WARM_UP) {
                    warmSession = SessionLedger.take();
                } else if (cycle == CYCLES - 1) {
                    lastSession = SessionLedger.take();
                }
                switch (ending) {
                    case CLEAN_CLOSE -> {
                        assertEquals(new VringState(0, FRAMES), VhostUserCodec.vringState(frontend.ask(
                                VhostUserRequest.GET_VRING_BASE, VhostUserCodec.vringState(0, 0))), what + ": receive ring");
                        assertEquals(new VringState(1, FRAMES), VhostUserCodec.vringState(frontend.ask(
                                VhostUserRequest.GET_VRING_BASE, VhostUserCodec.vringState(1, 0))), what + ": transmit ring");
                        connection.close();
                        assertEquals("the peer closed the connection", sessionEnd(what));
                    }
                    case ABRUPT_CLOSE -> {
                        transmit(tx, txKick, memory, FRAMES, Frames.numbered(framesNumbered++, 60, Frames.HOST_MAC,
                                Frames.GUEST_MAC));
                        connection.close();
                        assertEquals("the peer closed the connection", sessionEnd(what));
                    }
                    case MALFORMED_MESSAGE -> {
                        frontend.send(VhostUserRequest.SET_VRING_NUM, VhostUserCodec.vringState(2, RING_SIZE), List.of());
                        String end = sessionEnd(what);
                        assertTrue(end.startsWith("protocol error: SET_VRING_NUM(8): index:"), what + ": " + end);
                    }
                }
            } finally {
                connection.close();
            }
        }
    }

    private static SplitDriverQueue driverQueue(int index, MemfdGuestMemory guest) {
        long base = ringBase(index);
        return new SplitDriverQueue(index, guest, RING_SIZE, base, base + AVAIL_OFFSET, base + USED_OFFSET, false, 0);
    }

    private String sessionEnd(String what) throws InterruptedException {
        String end = sessionEnds.poll(DEADLINE.toMillis(), TimeUnit.MILLISECONDS);
        if (end == null) {
            throw new AssertionError(what + ": the session did not end within " + DEADLINE.toSeconds() + " s; status:\n  "
                    + String.join("\n  ", status.lines().subList(Math.max(0, status.lines().size() - 20), status.lines().size())));
        }
        return end;
    }

    /** The packet socket sends {@value #FRAMES} frames; they arrive in the posted receive buffers, in order. */
    private void toGuest(String what, SplitDriverQueue rx, EventFd rxCall, MemorySegment memory) throws Exception {
        byte[][] sent = new byte[FRAMES][];
        for (int i = 0; i < FRAMES; i++) {
            int n = framesNumbered++;
            sent[i] = Frames.numbered(n, Frames.lengthOf(n), Frames.GUEST_MAC, Frames.HOST_MAC);
            MemorySegment.copy(sent[i], 0, frameBuffer, ValueLayout.JAVA_BYTE, 0, sent[i].length);
            host.send(frameBuffer.asSlice(0, sent[i].length));
        }
        int[] ids = new int[FRAMES];
        int[] lengths = new int[FRAMES];
        collect(what + ": receive ring", rx, rxCall, ids, lengths);
        for (int i = 0; i < FRAMES; i++) {
            assertEquals(i, ids[i], what + ": receive buffers used in order");
            assertEquals(sent[i].length + VNET_HEADER, lengths[i], what + ": frame " + i + " length with its header");
            byte[] got = memory.asSlice(RX_BUFFERS + (long) i * BUFFER + VNET_HEADER, sent[i].length).toArray(ValueLayout.JAVA_BYTE);
            assertArrayEquals(sent[i], got, what + ": frame " + i + " into the guest");
        }
    }

    /** The driver transmits {@value #FRAMES} frames; the packet socket receives them, in order. */
    private void fromGuest(String what, SplitDriverQueue tx, EventFd txKick, EventFd txCall, MemorySegment memory)
            throws Exception {
        byte[][] sent = new byte[FRAMES][];
        int first = framesNumbered;
        for (int i = 0; i < FRAMES; i++) {
            int n = framesNumbered++;
            sent[i] = Frames.numbered(n, Frames.lengthOf(n), Frames.HOST_MAC, Frames.GUEST_MAC);
            transmit(tx, txKick, memory, i, sent[i]);
        }
        long deadline = System.nanoTime() + DEADLINE.toNanos();
        for (int i = 0; i < FRAMES; ) {
            int left = (int) Math.max(1, (deadline - System.nanoTime()) / 1_000_000);
            long length = host.receive(frameBuffer, left);
            if (length < 0) {
                throw new AssertionError(what + ": frame " + i + " from the guest never reached the TAP's far side");
            }
            byte[] got = frameBuffer.asSlice(0, Math.min(length, frameBuffer.byteSize())).toArray(ValueLayout.JAVA_BYTE);
            if (Frames.numberOf(got, got.length) < first) {
                continue; // not ours, or the frame an abrupt end left in flight, sent by then or never
            }
            assertArrayEquals(sent[i], got, what + ": frame " + i + " out of the guest");
            i++;
        }
        collect(what + ": transmit ring", tx, txCall, new int[FRAMES], new int[FRAMES]);
    }

    /** Puts a zero virtio-net header and {@code frame} in transmit buffer {@code slot} and makes it available. */
    private static void transmit(SplitDriverQueue tx, EventFd txKick, MemorySegment memory, int slot, byte[] frame)
            throws Exception {
        long address = TX_BUFFERS + (long) slot * BUFFER;
        memory.asSlice(address, VNET_HEADER).fill((byte) 0);
        MemorySegment.copy(frame, 0, memory, ValueLayout.JAVA_BYTE, address + VNET_HEADER, frame.length);
        assertTrue(tx.add(new long[] {address}, new int[] {VNET_HEADER + frame.length}, 1, 0) >= 0, "a free descriptor");
        if (tx.needsKick()) {
            txKick.signal();
        }
    }

    /** Collects exactly {@code ids.length} used elements, waiting on the ring's call eventfd. */
    private static void collect(String ring, SplitDriverQueue queue, EventFd call, int[] ids, int[] lengths) throws Exception {
        long deadline = System.nanoTime() + DEADLINE.toNanos();
        int got = 0;
        int[] id = new int[1];
        int[] length = new int[1];
        while (got < ids.length) {
            if (queue.collectUsed(id, length, 1) == 1) {
                ids[got] = id[0];
                lengths[got] = length[0];
                got++;
                continue;
            }
            long left = (deadline - System.nanoTime()) / 1_000_000;
            if (left <= 0) {
                throw new AssertionError(ring + ": " + got + " of " + ids.length + " used within " + DEADLINE.toSeconds() + " s");
            }
            if (call.poll((int) left)) {
                call.consume();
            }
        }
    }
}

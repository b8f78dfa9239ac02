package io.vhostffm.vhost.vhostuser.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.TapDevice;
import io.vhostffm.vhost.os.UnixSocket;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vhost.vhostuser.MemoryRegion;
import io.vhostffm.vhost.vhostuser.VhostUserCodec;
import io.vhostffm.vhost.vhostuser.VhostUserConnection;
import io.vhostffm.vhost.vhostuser.VhostUserMessage;
import io.vhostffm.vhost.vhostuser.VhostUserProtocolFeature;
import io.vhostffm.vhost.vhostuser.VhostUserRequest;
import io.vhostffm.vhost.vhostuser.VringAddress;
import io.vhostffm.vhost.vhostuser.VringState;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * A hand-written frontend on a real socket pair, in front of a real backend on a real TAP: the
 * well-formed start and stop of a queue pair, and each malformed or out-of-order message, which
 * must end the session with an error naming the request and the field, leaving nothing open.
 */
class HostileFrontendTest {
    private static final long FRONTEND_VA = HandWrittenFrontend.FRONTEND_VA;
    private static final long MEMORY = HandWrittenFrontend.MEMORY;

    private Map<Integer, String> before;
    private TapDevice tap;
    private VhostUserNetBackend backend;
    private StatusLog status;
    private VhostUserConnection frontend;
    private HandWrittenFrontend client;
    private CompletableFuture<String> session;
    private MemfdGuestMemory guest;

    @BeforeEach
    void connect() throws Exception {
        before = PeerTools.sessionDescriptors();
        tap = TapDevice.create("vuhostile%d", 1, TapDevice.VHOST_FLAGS);
        status = new StatusLog("backend: ");
        backend = new VhostUserNetBackend(VhostUserNetBackend.Config.of(tap, status));
        guest = MemfdGuestMemory.create("hostile-frontend", List.of(new MemfdGuestMemory.RegionSpec(0, MEMORY)));
        UnixSocket.Pair pair = UnixSocket.pair();
        session = new CompletableFuture<>();
        VhostUserConnection backendEnd = VhostUserConnection.open(pair.first(), false, Duration.ofMillis(500));
        Thread.ofPlatform().daemon().name("backend session").start(() -> {
            try {
                session.complete(backend.serve(backendEnd));
            } catch (Throwable t) {
                session.completeExceptionally(t);
            }
        });
        frontend = VhostUserConnection.frontend(pair.second());
        client = new HandWrittenFrontend(frontend);
    }

    @AfterEach
    void close() throws Exception {
        frontend.close();
        session.handle((r, e) -> r).get(10, TimeUnit.SECONDS);
        backend.close();
        guest.close();
        tap.close();
        assertEquals(before, PeerTools.sessionDescriptors(), "descriptors left open");
    }

    /** The session ends with a protocol error naming request and field. */
    private void sessionEndsWith(String request, String field) throws Exception {
        String end = session.get(10, TimeUnit.SECONDS);
        assertTrue(end.startsWith("protocol error: " + request + ": " + field + ":"), end);
        assertNull(frontend.receive(), "the backend closes the connection");
    }

    @Test
    void aWellFormedFrontendStartsAndStopsAQueuePair() throws Exception {
        client.negotiate();
        assertEquals(1, VhostUserCodec.u64(client.ask(VhostUserRequest.GET_QUEUE_NUM, new byte[0])));
        assertEquals(VhostUserNetBackend.DEFAULT_PROTOCOL_FEATURES,
                VhostUserCodec.u64(client.ask(VhostUserRequest.GET_PROTOCOL_FEATURES, new byte[0])));
        frontend.send(VhostUserMessage.request(VhostUserRequest.SET_OWNER, true, new byte[0], List.of()));
        assertEquals(0, VhostUserCodec.u64(frontend.receive()), "REPLY_ACK of SET_OWNER");
        client.memTable(guest);
        try (EventFd kick0 = EventFd.create(); EventFd call0 = EventFd.create(); EventFd kick1 = EventFd.create();
             EventFd call1 = EventFd.create()) {
            client.ring(0, kick0, call0);
            client.ring(1, kick1, call1);
            status.await("the pair started", l -> l.startsWith("queue pair 0 started: split"), 1, Duration.ofSeconds(10));
            assertEquals(new VringState(0, 0), VhostUserCodec.vringState(client.ask(VhostUserRequest.GET_VRING_BASE,
                    VhostUserCodec.vringState(0, 0))));
            assertEquals(new VringState(1, 0), VhostUserCodec.vringState(client.ask(VhostUserRequest.GET_VRING_BASE,
                    VhostUserCodec.vringState(1, 0))));
            status.await("the pair stopped", l -> l.startsWith("queue pair 0 stopped"), 1, Duration.ofSeconds(10));
        }
        frontend.close();
        assertEquals("the peer closed the connection", session.get(10, TimeUnit.SECONDS));
    }

    @Test
    void withLogAllTheDatapathMarksTheUsedRingsInTheFrontendsLog() throws Exception {
        client.send(VhostUserRequest.SET_FEATURES, VhostUserCodec.u64(VirtioFeature.VERSION_1.mask() | VirtioFeature.LOG_ALL.mask()
                | VhostUserProtocolFeature.PROTOCOL_FEATURES_BIT), List.of());
        client.send(VhostUserRequest.SET_PROTOCOL_FEATURES, VhostUserCodec.u64(VhostUserProtocolFeature.LOG_SHMFD.mask()), List.of());
        client.memTable(guest);
        try (MemfdGuestMemory logMemory = MemfdGuestMemory.create("frontend-log",
                List.of(new MemfdGuestMemory.RegionSpec(0, 4096)))) {
            frontend.send(VhostUserMessage.request(VhostUserRequest.SET_LOG_BASE, false,
                    VhostUserCodec.logArea(new io.vhostffm.vhost.vhostuser.LogArea(4096, 0)), List.of(logMemory.memfdRegions().get(0).fd())));
            assertEquals(0, VhostUserCodec.u64(frontend.receive()), "SET_LOG_BASE is answered once the log is mapped");
            status.await("the log", l -> l.startsWith("dirty log: 4096 bytes"), 1, Duration.ofSeconds(10));
            try (EventFd kick0 = EventFd.create(); EventFd call0 = EventFd.create(); EventFd kick1 = EventFd.create();
                 EventFd call1 = EventFd.create()) {
                client.ring(0, kick0, call0);
                client.ring(1, kick1, call1);
                status.await("the pair started", l -> l.startsWith("queue pair 0 started"), 1, Duration.ofSeconds(10));
                // With empty rings each path asks for notifications: used.flags, in the used ring's page.
                java.lang.foreign.MemorySegment bitmap = logMemory.memfdRegions().get(0).segment();
                for (int ring = 0; ring < 2; ring++) {
                    long page = (0x10000L * (ring + 1) + 0x2000) >>> 12;
                    long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
                    while ((bitmap.get(java.lang.foreign.ValueLayout.JAVA_BYTE, page / 8) & (1 << (page % 8))) == 0) {
                        assertTrue(System.nanoTime() < deadline, "page 0x" + Long.toHexString(page << 12) + " never marked");
                        Thread.onSpinWait();
                    }
                }
                client.ask(VhostUserRequest.GET_VRING_BASE, VhostUserCodec.vringState(0, 0));
            }
        }
        frontend.close();
        assertEquals("the peer closed the connection", session.get(10, TimeUnit.SECONDS));
    }

    @Test
    void aLogBaseWithoutLogShmfdIsOutOfOrder() throws Exception {
        try (MemfdGuestMemory logMemory = MemfdGuestMemory.create("frontend-log",
                List.of(new MemfdGuestMemory.RegionSpec(0, 4096)))) {
            client.send(VhostUserRequest.SET_LOG_BASE, VhostUserCodec.logArea(new io.vhostffm.vhost.vhostuser.LogArea(4096, 0)),
                    List.of(logMemory.memfdRegions().get(0).fd()));
        }
        sessionEndsWith("SET_LOG_BASE(6)", "order");
    }

    @Test
    void aLogLargerThanItsFileIsNotMapped() throws Exception {
        client.send(VhostUserRequest.SET_PROTOCOL_FEATURES, VhostUserCodec.u64(VhostUserProtocolFeature.LOG_SHMFD.mask()), List.of());
        try (MemfdGuestMemory logMemory = MemfdGuestMemory.create("frontend-log",
                List.of(new MemfdGuestMemory.RegionSpec(0, 4096)))) {
            client.send(VhostUserRequest.SET_LOG_BASE, VhostUserCodec.logArea(new io.vhostffm.vhost.vhostuser.LogArea(8192, 0)),
                    List.of(logMemory.memfdRegions().get(0).fd()));
        }
        sessionEndsWith("SET_LOG_BASE(6)", "mmap_size");
    }

    @Test
    void aWrongVersionEndsTheSession() throws Exception {
        frontend.send(new VhostUserMessage(VhostUserRequest.GET_FEATURES.code(), 0x2, new byte[0], List.of()));
        sessionEndsWith("GET_FEATURES(1)", "flags");
    }

    @Test
    void aRingBeyondGetQueueNumIsRefused() throws Exception {
        client.send(VhostUserRequest.SET_VRING_NUM, VhostUserCodec.vringState(2, 256), List.of());
        sessionEndsWith("SET_VRING_NUM(8)", "index");
    }

    @Test
    void aSplitRingSizeNotAPowerOfTwoIsRefused() throws Exception {
        client.negotiate();
        client.send(VhostUserRequest.SET_VRING_NUM, VhostUserCodec.vringState(0, 1000), List.of());
        sessionEndsWith("SET_VRING_NUM(8)", "num");
    }

    @Test
    void aRingOver32768IsRefused() throws Exception {
        client.send(VhostUserRequest.SET_VRING_NUM, VhostUserCodec.vringState(0, 65536), List.of());
        sessionEndsWith("SET_VRING_NUM(8)", "num");
    }

    @Test
    void ringAddressesBeforeAMemoryTableAreOutOfOrder() throws Exception {
        client.negotiate();
        client.send(VhostUserRequest.SET_VRING_NUM, VhostUserCodec.vringState(0, 256), List.of());
        client.send(VhostUserRequest.SET_VRING_ADDR, VhostUserCodec.vringAddress(new VringAddress(0, 0, FRONTEND_VA, FRONTEND_VA,
                FRONTEND_VA, 0)), List.of());
        sessionEndsWith("SET_VRING_ADDR(9)", "order");
    }

    @Test
    void aRingAddressOutsideEveryRegionIsRefused() throws Exception {
        client.negotiate();
        client.memTable(guest);
        client.send(VhostUserRequest.SET_VRING_NUM, VhostUserCodec.vringState(0, 256), List.of());
        client.send(VhostUserRequest.SET_VRING_ADDR, VhostUserCodec.vringAddress(new VringAddress(0, 0, FRONTEND_VA + MEMORY,
                FRONTEND_VA, FRONTEND_VA, 0)), List.of());
        sessionEndsWith("SET_VRING_ADDR(9)", "desc_user_addr");
    }

    @Test
    void aRegionLargerThanItsFileIsNotMapped() throws Exception {
        client.negotiate();
        client.send(VhostUserRequest.SET_MEM_TABLE, VhostUserCodec.memoryTable(List.of(new MemoryRegion(0, 2 * MEMORY, FRONTEND_VA, 0))),
                List.of(guest.memfdRegions().get(0).fd()));
        sessionEndsWith("SET_MEM_TABLE(5)", "regions[0].memory_size");
    }

    @Test
    void overlappingRegionsAreRefused() throws Exception {
        client.send(VhostUserRequest.SET_MEM_TABLE, VhostUserCodec.memoryTable(List.of(new MemoryRegion(0, MEMORY, FRONTEND_VA, 0),
                new MemoryRegion(MEMORY / 2, MEMORY / 2, FRONTEND_VA + 2 * MEMORY, 0))),
                List.of(guest.memfdRegions().get(0).fd(), guest.memfdRegions().get(0).fd()));
        sessionEndsWith("SET_MEM_TABLE(5)", "regions[1].guest_phys_addr");
    }

    @Test
    void tooManyDescriptorsAreRefused() throws Exception {
        try (EventFd a = EventFd.create(); EventFd b = EventFd.create()) {
            client.send(VhostUserRequest.SET_VRING_CALL, VhostUserCodec.vringFd(0, false), List.of(a.fd(), b.fd()));
        }
        sessionEndsWith("SET_VRING_CALL(13)", "fds");
    }

    @Test
    void moreDescriptorsThanAnyRequestCarriesAreRefused() throws Exception {
        List<EventFd> fds = new java.util.ArrayList<>();
        try {
            for (int i = 0; i < 9; i++) {
                fds.add(EventFd.create());
            }
            client.send(VhostUserRequest.SET_MEM_TABLE, VhostUserCodec.memoryTable(List.of(new MemoryRegion(0, MEMORY, FRONTEND_VA, 0))),
                    fds.stream().map(EventFd::fd).toList());
        } finally {
            fds.forEach(EventFd::close);
        }
        sessionEndsWith("message", "fds");
    }

    @Test
    void featuresNeverOfferedAreRefused() throws Exception {
        client.send(VhostUserRequest.SET_FEATURES, VhostUserCodec.u64(VirtioFeature.VERSION_1.mask() | (1L << 63)), List.of());
        sessionEndsWith("SET_FEATURES(2)", "features");
    }

    @Test
    void aMessageCutShortIsAnError() throws Exception {
        byte[] wire = VhostUserMessage.request(VhostUserRequest.SET_FEATURES, false, VhostUserCodec.u64(1), List.of()).wireBytes();
        frontend.socket().send(java.util.Arrays.copyOf(wire, 16));
        frontend.socket().fd(); // the rest never comes: the backend's message deadline (500 ms here) ends the wait
        sessionEndsWith("SET_FEATURES(2)", "payload");
    }

    @Test
    void aFrontendThatGoesAwayEndsTheSessionCleanly() throws Exception {
        client.negotiate();
        client.memTable(guest);
        frontend.close();
        assertEquals("the peer closed the connection", session.get(10, TimeUnit.SECONDS));
    }
}

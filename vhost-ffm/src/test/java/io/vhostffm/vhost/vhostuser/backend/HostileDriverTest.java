package io.vhostffm.vhost.vhostuser.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.PacketSocket;
import io.vhostffm.vhost.os.TapDevice;
import io.vhostffm.vhost.os.UnixSocket;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vhost.vhostuser.VhostUserCodec;
import io.vhostffm.vhost.vhostuser.VhostUserConnection;
import io.vhostffm.vhost.vhostuser.VhostUserProtocolFeature;
import io.vhostffm.vhost.vhostuser.VhostUserRequest;
import io.vhostffm.vring.SplitDriverQueue;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * A hostile guest's driver behind a well-behaved frontend, against the device side of vhost-user:
 * a real {@link VhostUserNetBackend} on a real two-queue TAP, two queue pairs set up by a
 * {@link HandWrittenFrontend}-style session, the guest's rings in the frontend's memfd. Pair 0's
 * transmit ring gets a chain whose two descriptors point at each other.
 *
 * <p>The backend runs one userspace datapath per pair, so the isolation is per pair here: pair 0
 * is reported broken naming the virtqueue, the rule and the head, its rings' error eventfds
 * (VHOST_USER_SET_VRING_ERR) are signalled, and pair 1 goes on carrying frames; once the
 * frontend stops pair 0's rings and sets them up afresh, pair 0 starts again and carries frames;
 * nothing is left open after the session.
 */
class HostileDriverTest {
    private static final long MEMORY = HandWrittenFrontend.MEMORY;
    private static final int RING_SIZE = HandWrittenFrontend.RING_SIZE;
    private static final long TX_BUFFERS = 0x80000;
    private static final int VNET_HEADER = 12;
    private static final Duration DEADLINE = Duration.ofSeconds(10);
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    @Test
    void aLoopedChainBreaksOnlyItsPairAndSignalsItsErrorEventfds() throws Exception {
        Map<Integer, String> before = PeerTools.sessionDescriptors();
        StatusLog status = new StatusLog("backend: ");
        try (TapDevice tap = TapDevice.create("vuhostd%d", 2, TapDevice.VHOST_FLAGS)) {
            Path disable = Path.of("/proc/sys/net/ipv6/conf", tap.name(), "disable_ipv6");
            if (Files.exists(disable)) {
                Files.writeString(disable, "1"); // no solicitations of the kernel's own on the far side
            }
            tap.setLinkUp(true);
            VhostUserNetBackend backend = new VhostUserNetBackend(VhostUserNetBackend.Config.of(tap, status));
            EventFd[] kicks = new EventFd[4];
            EventFd[] calls = new EventFd[4];
            EventFd[] errs = new EventFd[4];
            try (MemfdGuestMemory guest = MemfdGuestMemory.create("hostile-driver",
                    List.of(new MemfdGuestMemory.RegionSpec(0, MEMORY)));
                 PacketSocket host = PacketSocket.bind(tap.name())) {
                for (int i = 0; i < 4; i++) {
                    kicks[i] = EventFd.create();
                    calls[i] = EventFd.create();
                    errs[i] = EventFd.create();
                }
                UnixSocket.Pair pair = UnixSocket.pair();
                CompletableFuture<String> session = new CompletableFuture<>();
                VhostUserConnection backendEnd = VhostUserConnection.open(pair.first(), false, Duration.ofMillis(500));
                Thread.ofPlatform().daemon().name("backend session").start(() -> {
                    try {
                        session.complete(backend.serve(backendEnd));
                    } catch (Throwable t) {
                        session.completeExceptionally(t);
                    }
                });
                VhostUserConnection frontend = VhostUserConnection.frontend(pair.second());
                try {
                    HandWrittenFrontend client = new HandWrittenFrontend(frontend);
                    assertEquals(2, VhostUserCodec.u64(client.ask(VhostUserRequest.GET_QUEUE_NUM, new byte[0])));
                    client.ask(VhostUserRequest.GET_FEATURES, new byte[0]);
                    client.send(VhostUserRequest.SET_FEATURES, VhostUserCodec.u64(VirtioFeature.VERSION_1.mask()
                            | VirtioFeature.MRG_RXBUF.mask() | VirtioFeature.MQ.mask()
                            | VhostUserProtocolFeature.PROTOCOL_FEATURES_BIT), List.of());
                    client.send(VhostUserRequest.SET_PROTOCOL_FEATURES,
                            VhostUserCodec.u64(VhostUserProtocolFeature.REPLY_ACK.mask()), List.of());
                    client.memTable(guest);
                    for (int i = 0; i < 4; i++) {
                        client.send(VhostUserRequest.SET_VRING_ERR, VhostUserCodec.vringFd(i, false), List.of(errs[i].fd()));
                        client.ring(i, kicks[i], calls[i]);
                    }
                    status.await("both pairs started", l -> l.contains(" started: split"), 2, DEADLINE);

                    MemorySegment memory = guest.memfdRegions().get(0).segment();
                    long desc = HandWrittenFrontend.ringBase(1);
                    writeDescriptor(memory, desc, 10, TX_BUFFERS, 100, 1, 11);
                    writeDescriptor(memory, desc, 11, TX_BUFFERS, 100, 1, 10);
                    long avail = desc + HandWrittenFrontend.AVAIL_OFFSET;
                    memory.set(U16, avail + 4, (short) 10);
                    VarHandle.releaseFence(); // the entry before the index the device acquires
                    memory.set(U16, avail + 2, (short) 1);
                    kicks[1].signal();

                    String broken = status.await("pair 0 broken", l -> l.startsWith("queue pair 0 broken: "), 1, DEADLINE)
                            .get(0);
                    assertTrue(broken.contains("virtqueue 1: descriptor loop or chain longer than the queue size (head 10"),
                            broken);
                    assertTrue(errs[1].poll((int) DEADLINE.toMillis()), "ring 1's error eventfd");
                    assertTrue(errs[0].poll((int) DEADLINE.toMillis()), "ring 0's error eventfd: its pair stopped too");
                    assertEquals(Set.of(0), backend.brokenPairs().keySet());

                    // pair 1 carries a frame on
                    long base = HandWrittenFrontend.ringBase(3);
                    SplitDriverQueue tx1 = new SplitDriverQueue(3, guest, RING_SIZE, base,
                            base + HandWrittenFrontend.AVAIL_OFFSET, base + HandWrittenFrontend.USED_OFFSET, false, 0);
                    byte[] frame = Frames.numbered(7, 100, Frames.HOST_MAC, Frames.GUEST_MAC);
                    long address = TX_BUFFERS + 0x1000;
                    memory.asSlice(address, VNET_HEADER).fill((byte) 0);
                    MemorySegment.copy(frame, 0, memory, ValueLayout.JAVA_BYTE, address + VNET_HEADER, frame.length);
                    assertTrue(tx1.add(new long[] {address}, new int[] {VNET_HEADER + frame.length}, 1, 0) >= 0);
                    kicks[3].signal();
                    MemorySegment buffer = Arena.ofAuto().allocate(2048);
                    long deadline = System.nanoTime() + DEADLINE.toNanos();
                    byte[] got = null;
                    while (got == null) {
                        int left = (int) Math.max(1, (deadline - System.nanoTime()) / 1_000_000);
                        long length = host.receive(buffer, left);
                        assertTrue(length >= 0, "pair 1's frame never reached the TAP's far side");
                        byte[] bytes = buffer.asSlice(0, length).toArray(ValueLayout.JAVA_BYTE);
                        if (Frames.numberOf(bytes, bytes.length) == 7) {
                            got = bytes;
                        }
                    }
                    assertArrayEquals(frame, got);
                    int[] id = new int[1];
                    int[] len = new int[1];
                    while (tx1.collectUsed(id, len, 1) == 0) {
                        assertTrue(System.nanoTime() < deadline, "pair 1's chain never came back");
                        calls[3].poll(20);
                    }
                    assertEquals(Set.of(0), backend.brokenPairs().keySet());

                    // the guest's driver resets pair 0: the frontend stops its rings, fresh rings from 0
                    client.ask(VhostUserRequest.GET_VRING_BASE, VhostUserCodec.vringState(0, 0));
                    client.ask(VhostUserRequest.GET_VRING_BASE, VhostUserCodec.vringState(1, 0));
                    for (int r = 0; r < 2; r++) {
                        memory.asSlice(HandWrittenFrontend.ringBase(r), 0x3000).fill((byte) 0);
                        client.ring(r, kicks[r], calls[r]);
                    }
                    status.await("pair 0 started again", l -> l.startsWith("queue pair 0 started: split"), 2, DEADLINE);
                    assertEquals(Set.of(), backend.brokenPairs().keySet());
                    long base1 = HandWrittenFrontend.ringBase(1);
                    SplitDriverQueue tx0 = new SplitDriverQueue(1, guest, RING_SIZE, base1,
                            base1 + HandWrittenFrontend.AVAIL_OFFSET, base1 + HandWrittenFrontend.USED_OFFSET, false, 0);
                    byte[] again = Frames.numbered(8, 100, Frames.HOST_MAC, Frames.GUEST_MAC);
                    long address0 = TX_BUFFERS + 0x2000;
                    memory.asSlice(address0, VNET_HEADER).fill((byte) 0);
                    MemorySegment.copy(again, 0, memory, ValueLayout.JAVA_BYTE, address0 + VNET_HEADER, again.length);
                    assertTrue(tx0.add(new long[] {address0}, new int[] {VNET_HEADER + again.length}, 1, 0) >= 0);
                    kicks[1].signal();
                    deadline = System.nanoTime() + DEADLINE.toNanos();
                    got = null;
                    while (got == null) {
                        int left = (int) Math.max(1, (deadline - System.nanoTime()) / 1_000_000);
                        long length = host.receive(buffer, left);
                        assertTrue(length >= 0, "pair 0's frame after its reset never reached the TAP's far side");
                        byte[] bytes = buffer.asSlice(0, length).toArray(ValueLayout.JAVA_BYTE);
                        if (Frames.numberOf(bytes, bytes.length) == 8) {
                            got = bytes;
                        }
                    }
                    assertArrayEquals(again, got);
                } finally {
                    frontend.close();
                }
                assertEquals("the peer closed the connection", session.get(10, TimeUnit.SECONDS));
            } finally {
                for (EventFd[] fds : new EventFd[][] {kicks, calls, errs}) {
                    for (EventFd fd : fds) {
                        if (fd != null) {
                            fd.close();
                        }
                    }
                }
                backend.close();
            }
        }
        assertEquals(before, PeerTools.sessionDescriptors(), "descriptors left open");
    }

    private static void writeDescriptor(MemorySegment memory, long table, int index, long address, int length, int flags,
            int next) {
        long at = table + 16L * index;
        memory.set(U64, at, address);
        memory.set(U32, at + 8, length);
        memory.set(U16, at + 12, (short) flags);
        memory.set(U16, at + 14, (short) next);
    }
}

package io.vhostffm.vhost.os;

import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.vhost.os.MemfdGuestMemory.ReceivedRegion;
import io.vhostffm.vhost.os.MemfdGuestMemory.RegionSpec;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class UnixSocketTest {

    @Test
    void passesAMemfdAndAnEventFdThatTheReceiverUses() throws Exception {
        try (UnixSocket.Pair pair = UnixSocket.pair();
             MemfdGuestMemory memory = MemfdGuestMemory.create("guest-ram", List.of(new RegionSpec(0x100000, 0x4000)));
             EventFd kick = EventFd.create("eventfd kick");
             Arena arena = Arena.ofConfined()) {
            memory.slice(0x100010, 8).set(JAVA_LONG, 0, 0xfeedfaceL);
            pair.first().send("region 0x100000".getBytes(StandardCharsets.UTF_8),
                    List.of(memory.memfdRegions().get(0).fd(), kick.fd()));

            MemorySegment buffer = arena.allocate(64);
            UnixSocket.Received got = pair.second().receive(buffer, 4);
            assertEquals("region 0x100000", new String(buffer.asSlice(0, got.bytes()).toArray(ValueLayout.JAVA_BYTE), StandardCharsets.UTF_8));
            assertEquals(2, got.fds().size());
            assertTrue(got.fds().get(0).isCloseOnExec(), "MSG_CMSG_CLOEXEC");

            try (MemfdGuestMemory received = MemfdGuestMemory.map(List.of(new ReceivedRegion(0x100000, 0x4000, got.fds().get(0))));
                 EventFd receivedKick = EventFd.wrap(got.fds().get(1))) {
                assertEquals(0xfeedfaceL, received.slice(0x100010, 8).get(JAVA_LONG, 0), "same pages");
                received.slice(0x100018, 8).set(JAVA_LONG, 0, 99);
                assertEquals(99, memory.slice(0x100018, 8).get(JAVA_LONG, 0));
                receivedKick.signal();
                assertEquals(1, kick.consume(), "the same eventfd on both sides");
            }
            assertTrue(kick.fd().isOpen(), "the sender keeps its own descriptors");
        }
    }

    @Test
    void tooManyDescriptorsIsAnErrorAndNothingLeaks() throws Exception {
        var before = FdLinks.snapshot();
        try (UnixSocket.Pair pair = UnixSocket.pair();
             EventFd a = EventFd.create(); EventFd b = EventFd.create(); EventFd c = EventFd.create();
             Arena arena = Arena.ofConfined()) {
            pair.first().send(new byte[] {1}, List.of(a.fd(), b.fd(), c.fd()));
            NativeCallException e = assertThrows(NativeCallException.class, () -> pair.second().receive(arena.allocate(8), 1));
            assertTrue(e.getMessage().startsWith("recvmsg on socketpair end 1 (fd "), e.getMessage());
            assertTrue(e.getMessage().contains("MSG_CTRUNC"), e.getMessage());
        }
        assertEquals(before, FdLinks.snapshot());
    }

    @Test
    void wrapsAConnectedSocketAndRefusesOtherFiles() throws Exception {
        try (UnixSocket.Pair pair = UnixSocket.pair();
             UnixSocket wrapped = UnixSocket.wrap(pair.first().fd().duplicate("inherited unix socket"));
             Arena arena = Arena.ofConfined()) {
            wrapped.send(new byte[] {7, 8, 9});
            MemorySegment buffer = arena.allocate(8);
            assertEquals(3, pair.second().receive(buffer, 0).bytes());
            assertArrayEquals(new byte[] {7, 8, 9}, buffer.asSlice(0, 3).toArray(ValueLayout.JAVA_BYTE));
        }
        try (FileDescriptor devNull = FileDescriptor.openReadWrite("/dev/null")) {
            NativeCallException e = assertThrows(NativeCallException.class, () -> UnixSocket.wrap(devNull));
            assertTrue(e.getMessage().matches("getsockopt\\(SO_DOMAIN\\) on /dev/null \\(fd \\d+\\): ENOTSOCK \\(Socket operation on non-socket\\)"),
                    e.getMessage());
        }
    }

    @Test
    void connectsToAListeningPath(@TempDir Path dir) throws Exception {
        Path path = dir.resolve("migration.sock");
        try (ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            server.bind(UnixDomainSocketAddress.of(path));
            try (UnixSocket client = UnixSocket.connect(path); SocketChannel accepted = server.accept()) {
                client.send("hello".getBytes(StandardCharsets.UTF_8));
                ByteBuffer in = ByteBuffer.allocate(5);
                while (in.hasRemaining()) {
                    accepted.read(in);
                }
                assertEquals("hello", new String(in.array(), StandardCharsets.UTF_8));
            }
        }
        NativeCallException e = assertThrows(NativeCallException.class, () -> UnixSocket.connect(dir.resolve("nobody-listens")));
        assertTrue(e.getMessage().endsWith("ENOENT (No such file or directory)"), e.getMessage());
        assertTrue(Files.exists(path));
    }

    @Test
    void tenThousandSocketPairsOpenAndCloseWithoutLeak() throws Exception {
        var before = FdLinks.snapshot();
        for (int i = 0; i < 10_000; i++) {
            UnixSocket.pair().close();
        }
        assertEquals(before, FdLinks.snapshot());
    }
}

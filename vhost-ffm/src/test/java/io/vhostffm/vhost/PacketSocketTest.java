package io.vhostffm.vhost;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** A real AF_PACKET socket on a real TAP (needs CAP_NET_RAW: these machines run tests as root). */
class PacketSocketTest {
    private static final int HEADER = 12;

    static byte[] frame(int length, int seed) {
        byte[] f = new byte[length];
        for (int i = 0; i < 6; i++) {
            f[i] = (byte) 0xff;                // broadcast destination
            f[6 + i] = (byte) (0x02 + i);      // locally administered source
        }
        f[12] = (byte) 0x88;                   // local experimental EtherType 0x88b5
        f[13] = (byte) 0xb5;
        for (int i = 14; i < length; i++) {
            f[i] = (byte) (seed * 31 + i);
        }
        return f;
    }

    static void disableIpv6(String tap) throws Exception {
        Path knob = Path.of("/proc/sys/net/ipv6/conf", tap, "disable_ipv6");
        if (Files.exists(knob)) {
            Files.writeString(knob, "1"); // no router solicitations or MLD reports on the test TAP
        }
    }

    @Test
    void framesCrossBetweenTheTapAndItsNetworkSide() throws Exception {
        try (TapDevice tap = TapDevice.create("vffp%d"); Arena arena = Arena.ofConfined()) {
            tap.setVnetHeaderSize(HEADER);
            disableIpv6(tap.name());
            tap.setLinkUp(true);
            try (PacketSocket socket = PacketSocket.bind(tap.name())) {
                assertEquals(PacketSocket.interfaceIndex(tap.name()), socket.interfaceIndex());
                FileDescriptor queue = tap.queue(0);
                queue.setNonBlocking(true);

                // network side -> TAP reader: a zero virtio-net header, then the frame
                byte[] out = frame(300, 1);
                assertTrue(socket.send(native_(arena, out)));
                MemorySegment read = arena.allocate(2048);
                long n = readWithRetry(queue, read);
                assertEquals(HEADER + out.length, n);
                assertArrayEquals(out, read.asSlice(HEADER, out.length).toArray(JAVA_BYTE));

                // TAP writer -> network side
                byte[] in = frame(1000, 2);
                MemorySegment written = arena.allocate(HEADER + in.length);
                MemorySegment.copy(in, 0, written, JAVA_BYTE, HEADER, in.length);
                assertEquals(written.byteSize(), queue.write(written));
                assertTrue(socket.poll(5000), "frame on the packet socket");
                MemorySegment got = arena.allocate(2048);
                long m = socket.receive(got);
                assertEquals(in.length, m);
                assertArrayEquals(in, got.asSlice(0, m).toArray(JAVA_BYTE));
                assertEquals(-1, socket.receive(got), "own sends are not looped back (PACKET_IGNORE_OUTGOING)");
            }
        }
    }

    @Test
    void anUnknownInterfaceIsAClearError() {
        NativeCallException e = assertThrows(NativeCallException.class, () -> PacketSocket.bind("nonexistent0"));
        assertTrue(e.getMessage().startsWith("if_nametoindex [nonexistent0]: ENODEV"), e.getMessage());
    }

    @Test
    void noDescriptorLeaks() throws Exception {
        try (TapDevice tap = TapDevice.create("vffp%d")) {
            tap.setLinkUp(true);
            Map<Integer, String> before = OpenDescriptors.snapshot();
            for (int i = 0; i < 2000; i++) {
                PacketSocket socket = PacketSocket.bind(tap.name());
                socket.close();
                socket.close();
                assertFalse(socket.fd().isOpen());
            }
            assertEquals(before, OpenDescriptors.snapshot());
        }
    }

    private static MemorySegment native_(Arena arena, byte[] bytes) {
        MemorySegment s = arena.allocate(bytes.length);
        MemorySegment.copy(bytes, 0, s, JAVA_BYTE, 0, bytes.length);
        return s;
    }

    private static long readWithRetry(FileDescriptor queue, MemorySegment into) throws Exception {
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (true) {
            try {
                return queue.read(into);
            } catch (NativeCallException e) {
                if (!e.getMessage().contains("EAGAIN") || System.nanoTime() > deadline) {
                    throw e;
                }
                Thread.sleep(1);
            }
        }
    }
}

package io.vhostffm.vhost.os;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import io.vhostffm.vhost.virtio.net.VirtioNetHeader;

/**
 * AF_PACKET on a real TAP: what the TAP's fd writes (the guest's side) arrives on the socket, and
 * what the socket sends arrives at the TAP's fd with a virtio-net header in front.
 */
class PacketSocketTest {
    private static final int HEADER = VirtioNetHeader.SIZE;

    static byte[] frame(int length, int seed) {
        byte[] f = new byte[length];
        for (int i = 0; i < 6; i++) {
            f[i] = (byte) 0xff;              // broadcast: nobody filters it
        }
        f[6] = 0x52; f[7] = 0x54; f[8] = 0; f[9] = 0; f[10] = 0; f[11] = 1;
        f[12] = (byte) 0x88; f[13] = (byte) 0xb5; // IEEE local experimental ethertype: no stack touches it
        for (int i = 14; i < length; i++) {
            f[i] = (byte) (seed * 31 + i);
        }
        return f;
    }

    static void disableIpv6(String name) {
        try {
            Files.writeString(Path.of("/proc/sys/net/ipv6/conf", name, "disable_ipv6"), "1");
        } catch (Exception e) {
            // no IPv6 on this kernel: nothing will chatter on the link anyway
        }
    }

    @Test
    void framesCrossTheTapInBothDirections() throws Exception {
        try (TapDevice tap = TapDevice.create("vffps%d", 1, TapDevice.VHOST_FLAGS); Arena arena = Arena.ofConfined()) {
            tap.setVnetHeaderSize(HEADER);
            disableIpv6(tap.name());
            tap.setLinkUp(true);
            try (PacketSocket socket = PacketSocket.bind(tap.name())) {
                assertTrue(socket.interfaceIndex() > 0);
                socket.setReceiveBuffer(1 << 20);
                MemorySegment buffer = arena.allocate(4096);

                // guest side -> network side: header + frame written to the TAP fd
                byte[] out = frame(300, 7);
                MemorySegment write = arena.allocate(HEADER + out.length);
                MemorySegment.copy(out, 0, write, JAVA_BYTE, HEADER, out.length);
                assertEquals(write.byteSize(), tap.queue(0).write(write));
                byte[] got = receiveMatching(socket, buffer, out.length);
                assertArrayEquals(out, got);

                // network side -> guest side
                byte[] in = frame(1514, 9);
                socket.send(arena.allocateFrom(JAVA_BYTE, in));
                MemorySegment read = arena.allocate(HEADER + 2048);
                long n = readFrame(tap, read, in.length);
                assertEquals(HEADER + in.length, n);
                assertArrayEquals(in, read.asSlice(HEADER, in.length).toArray(JAVA_BYTE));

                assertEquals(-1, socket.receive(buffer, 0), "nothing else is pending");
            }
        }
    }

    /**
     * A socket created for ETH_P_ALL receives every interface's frames until bind() narrows it to
     * one; frames of another interface caught in that window would sit in the queue of a socket
     * bound elsewhere. Another TAP carries a flood of our ethertype while sockets are bound, one
     * after the other, to a quiet TAP: none may hold a frame when it is bound.
     */
    @Test
    void aSocketBoundToOneInterfaceNeverHoldsFramesOfAnother() throws Exception {
        try (TapDevice quiet = TapDevice.create("vffpq%d", 1, TapDevice.VHOST_FLAGS);
             TapDevice busy = TapDevice.create("vffpb%d", 1, TapDevice.VHOST_FLAGS);
             Arena arena = Arena.ofShared()) {
            for (TapDevice tap : new TapDevice[] {quiet, busy}) {
                tap.setVnetHeaderSize(HEADER);
                disableIpv6(tap.name());
                tap.setLinkUp(true);
            }
            byte[] out = frame(64, 3);
            MemorySegment write = arena.allocate(HEADER + out.length);
            MemorySegment.copy(out, 0, write, JAVA_BYTE, HEADER, out.length);
            java.util.concurrent.atomic.AtomicBoolean flooding = new java.util.concurrent.atomic.AtomicBoolean(true);
            java.util.concurrent.atomic.AtomicLong written = new java.util.concurrent.atomic.AtomicLong();
            java.util.concurrent.atomic.AtomicReference<Throwable> floodFailure = new java.util.concurrent.atomic.AtomicReference<>();
            Thread flooder = Thread.ofPlatform().name("flooder").start(() -> {
                try {
                    while (flooding.get()) {
                        busy.queue(0).write(write); // the busy TAP receives it: every ETH_P_ALL socket sees it
                        written.incrementAndGet();
                    }
                } catch (Throwable t) {
                    floodFailure.set(t);
                }
            });
            MemorySegment buffer = arena.allocate(4096);
            try {
                // the flood is under way before the first bind
                while (written.get() < 1000 && floodFailure.get() == null) {
                    Thread.onSpinWait();
                }
                for (int round = 0; round < 2000; round++) {
                    int i = round;
                    try (PacketSocket socket = PacketSocket.bind(quiet.name())) {
                        long n = socket.receive(buffer, 0);
                        assertEquals(-1, n, () -> "socket " + i + " on " + quiet.name() + " holds a " + n
                                + "-byte frame of another interface (" + busy.name() + " floods) as soon as it is bound");
                    }
                }
            } finally {
                flooding.set(false);
                flooder.join();
            }
            assertEquals(null, floodFailure.get());
            assertTrue(written.get() > 1000, written.get() + " frames flooded");
        }
    }

    /**
     * A reader that falls behind: the guest side writes far more frames than a minimal receive
     * buffer holds, nobody reads, and the socket's statistics count every frame either queued or
     * dropped; the queued ones are exactly those a reader then finds, and reading the statistics
     * resets them.
     */
    @Test
    void statisticsCountWhatTheSocketQueuedAndWhatItDropped() throws Exception {
        int written = 300;
        try (TapDevice tap = TapDevice.create("vffpd%d", 1, TapDevice.VHOST_FLAGS); Arena arena = Arena.ofConfined()) {
            tap.setVnetHeaderSize(HEADER);
            disableIpv6(tap.name());
            tap.setLinkUp(true);
            try (PacketSocket socket = PacketSocket.bind(tap.name())) {
                socket.setReceiveBuffer(1); // the kernel's minimum: a few frames
                assertEquals(new PacketSocket.Statistics(0, 0), socket.statistics(), "nothing yet");
                byte[] out = frame(64, 5);
                MemorySegment write = arena.allocate(HEADER + out.length);
                MemorySegment.copy(out, 0, write, JAVA_BYTE, HEADER, out.length);
                for (int i = 0; i < written; i++) {
                    assertEquals(write.byteSize(), tap.queue(0).write(write));
                }
                // The frames reach the socket from the softirq that drains the TAP's backlog:
                // add the intervals up until all are accounted for.
                long queued = 0;
                long dropped = 0;
                long deadline = System.nanoTime() + 10_000_000_000L;
                while (queued + dropped < written && System.nanoTime() < deadline) {
                    PacketSocket.Statistics st = socket.statistics();
                    queued += st.queued();
                    dropped += st.dropped();
                    if (st.queued() + st.dropped() == 0) {
                        Thread.onSpinWait();
                    }
                }
                assertEquals(written, queued + dropped, queued + " queued and " + dropped + " dropped of " + written);
                assertTrue(dropped > 0, "a minimal buffer holds far fewer than " + written + " frames: " + queued + " queued");
                MemorySegment buffer = arena.allocate(4096);
                long read = 0;
                while (socket.receive(buffer, 0) >= 0) {
                    read++;
                }
                assertEquals(queued, read, "what the socket queued is what a reader finds");
                assertEquals(new PacketSocket.Statistics(0, 0), socket.statistics(), "reading resets the counters");
            }
        }
    }

    @Test
    void anUnknownInterfaceIsANamedError() {
        NativeCallException e = assertThrows(NativeCallException.class, () -> PacketSocket.bind("no-such-if0"));
        assertEquals("if_nametoindex", e.call());
        assertTrue(e.getMessage().contains("no-such-if0"), e.getMessage());
    }

    /** The next frame of our ethertype (the host may still send something of its own). */
    private static byte[] receiveMatching(PacketSocket socket, MemorySegment buffer, int length) throws Exception {
        for (int tries = 0; tries < 20; tries++) {
            long n = socket.receive(buffer, 2000);
            assertTrue(n >= 0, "a frame within 2 s");
            if (n >= 14 && buffer.get(JAVA_BYTE, 12) == (byte) 0x88 && buffer.get(JAVA_BYTE, 13) == (byte) 0xb5) {
                assertEquals(length, n);
                return buffer.asSlice(0, n).toArray(JAVA_BYTE);
            }
        }
        throw new AssertionError("no frame of ours among 20");
    }

    private static long readFrame(TapDevice tap, MemorySegment read, int length) throws Exception {
        FileDescriptor q = tap.queue(0);
        q.setNonBlocking(true);
        long deadline = System.nanoTime() + 2_000_000_000L;
        try (DescriptorPoller readable = new DescriptorPoller(List.of(q))) {
            while (System.nanoTime() < deadline) {
                int waitMillis = (int) Math.max(1, (deadline - System.nanoTime()) / 1_000_000);
                if (readable.poll(waitMillis) <= 0) {
                    continue; // timed out (the loop ends) or interrupted by a signal
                }
                try {
                    long n = q.read(read);
                    if (n >= HEADER + 14 && read.get(JAVA_BYTE, HEADER + 12) == (byte) 0x88) {
                        return n;
                    }
                } catch (NativeCallException e) {
                    if (!"EAGAIN".equals(e.errnoSymbol())) {
                        throw e;
                    }
                }
            }
        }
        throw new AssertionError("no frame of length " + length + " at the TAP within 2 s");
    }
}

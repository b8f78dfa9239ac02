package io.vhostffm.vhost.os;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.vhost.virtio.net.VirtioNetHeader;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.BitSet;
import org.junit.jupiter.api.Test;

/**
 * io_uring through raw system calls on a real TAP: a batch of writevs submitted with one
 * io_uring_enter arrives on the TAP's far side (an AF_PACKET socket) frame for frame; readvs get
 * what the socket sent; a failed operation's completion is named; a full queue refuses more; the
 * ring leaves no descriptor open and holds the ones in flight.
 */
class IoUringTest {
    private static final int HEADER = VirtioNetHeader.SIZE;
    private static final int BATCH = 32;

    @Test
    void aBatchOfWritesLeavesTheTapFrameForFrameAfterOneEnter() throws Exception {
        int before = FdLinks.count();
        try (TapDevice tap = TapDevice.create("vffur%d", 1, TapDevice.VHOST_FLAGS); Arena arena = Arena.ofConfined();
                IoUring ring = IoUring.open(BATCH)) {
            tap.setVnetHeaderSize(HEADER);
            PacketSocketTest.disableIpv6(tap.name());
            tap.setLinkUp(true);
            try (PacketSocket socket = PacketSocket.bind(tap.name())) {
                socket.setReceiveBuffer(1 << 20);
                MemorySegment iovecs = arena.allocate(16L * BATCH, 8);
                for (int i = 0; i < BATCH; i++) {
                    byte[] frame = PacketSocketTest.frame(64 + i, i);
                    MemorySegment packet = arena.allocate(HEADER + frame.length);
                    MemorySegment.copy(frame, 0, packet, JAVA_BYTE, HEADER, frame.length);
                    iovecs.set(JAVA_LONG, 16L * i, packet.address());
                    iovecs.set(JAVA_LONG, 16L * i + 8, packet.byteSize());
                    assertTrue(ring.queueWritev(tap.queue(0), iovecs.asSlice(16L * i, 16), 1, 1000 + i));
                }
                assertEquals(BATCH, ring.inFlight());
                assertEquals(BATCH, ring.submit(BATCH), "taken in one enter");
                long[] tags = new long[BATCH];
                int[] results = new int[BATCH];
                assertEquals(BATCH, ring.completions(tags, results));
                BitSet done = new BitSet();
                for (int i = 0; i < BATCH; i++) {
                    int index = (int) tags[i] - 1000;
                    assertEquals(HEADER + 64 + index, results[i], "bytes written by writev " + index);
                    done.set(index);
                }
                assertEquals(BATCH, done.cardinality(), "every writev completed once");
                assertEquals(0, ring.inFlight());
                assertEquals(0, ring.completions(tags, results), "nothing more");

                // On the far side, in order: the frames of length 64, 65, ... with their contents.
                MemorySegment buffer = arena.allocate(4096);
                for (int i = 0; i < BATCH; i++) {
                    long n = socket.receive(buffer, 2000);
                    assertEquals(64 + i, n, "frame " + i + "'s length");
                    assertArrayEquals(PacketSocketTest.frame(64 + i, i), buffer.asSlice(0, n).toArray(JAVA_BYTE));
                }
                assertEquals(-1, socket.receive(buffer, 0), "nothing else");
            }
        }
        assertEquals(before, FdLinks.count(), "descriptors left open");
    }

    @Test
    void readsGetWhatTheFarSideSent() throws Exception {
        try (TapDevice tap = TapDevice.create("vffur%d", 1, TapDevice.VHOST_FLAGS); Arena arena = Arena.ofConfined();
                IoUring ring = IoUring.open(4)) {
            tap.setVnetHeaderSize(HEADER);
            PacketSocketTest.disableIpv6(tap.name());
            tap.setLinkUp(true);
            try (PacketSocket socket = PacketSocket.bind(tap.name())) {
                byte[] frame = PacketSocketTest.frame(1514, 5);
                socket.send(arena.allocateFrom(JAVA_BYTE, frame));
                MemorySegment read = arena.allocate(HEADER + 2048);
                MemorySegment iovec = arena.allocate(16, 8);
                iovec.set(JAVA_LONG, 0, read.address());
                iovec.set(JAVA_LONG, 8, read.byteSize());
                assertTrue(ring.queueReadv(tap.queue(0), iovec, 1, 7));
                assertEquals(1, ring.submit(1));
                long[] tags = new long[1];
                int[] results = new int[1];
                assertEquals(1, ring.completions(tags, results));
                assertEquals(7, tags[0]);
                assertEquals(HEADER + frame.length, results[0]);
                assertArrayEquals(frame, read.asSlice(HEADER, frame.length).toArray(JAVA_BYTE));
            }
        }
    }

    @Test
    void aFailedOperationIsNamedAndAFullQueueRefusesMore() throws Exception {
        int before = FdLinks.count();
        try (Arena arena = Arena.ofConfined(); IoUring ring = IoUring.open(2);
                FileDescriptor readOnly = FileDescriptor.openReadOnly("/dev/null")) {
            MemorySegment data = arena.allocate(8);
            MemorySegment iovec = arena.allocate(16, 8);
            iovec.set(JAVA_LONG, 0, data.address());
            iovec.set(JAVA_LONG, 8, data.byteSize());
            assertTrue(ring.queueWritev(readOnly, iovec, 1, 1));
            assertTrue(ring.queueWritev(readOnly, iovec, 1, 2));
            assertFalse(ring.queueWritev(readOnly, iovec, 1, 3), "a third into two entries");
            assertEquals(2, ring.submit(2));
            long[] tags = new long[4];
            int[] results = new int[4];
            assertEquals(2, ring.completions(tags, results));
            assertTrue(results[0] < 0 && results[1] < 0, "writes into a read-only descriptor fail");
            NativeCallException e = IoUring.failure("writev", readOnly, results[0]);
            assertTrue(e.getMessage().contains("io_uring writev") && e.getMessage().contains("EBADF"), e.getMessage());
            assertTrue(ring.queueWritev(readOnly, iovec, 1, 3), "room again once the completions were taken");
            // Held for the kernel: its owner's close waits for the completion to be taken.
            readOnly.close();
            assertTrue(FdLinks.count() > before, "the descriptor stays open while an operation holds it");
            assertEquals(1, ring.submit(1));
            assertEquals(1, ring.completions(tags, results));
        }
        assertEquals(before, FdLinks.count(), "descriptors left open");
    }

    @Test
    void iovecsOutsideTheirArrayAndUnknownFlagsAreRefusedQueuingNothing() throws Exception {
        try (Arena arena = Arena.ofConfined(); IoUring ring = IoUring.open(2);
                FileDescriptor devNull = FileDescriptor.openReadWrite("/dev/null")) {
            MemorySegment iovecs = arena.allocate(32, 8);
            assertThrows(IndexOutOfBoundsException.class, () -> ring.queueWritev(devNull, iovecs, 16, 2, 1, 0),
                    "the second iovec would end past the array");
            assertThrows(IllegalArgumentException.class,
                    () -> ring.queueWritev(devNull, iovecs, 0, 1, 1, 4), "not LINK_NEXT or NO_WAIT");
            assertEquals(0, ring.inFlight(), "nothing queued, no descriptor held");
            MemorySegment data = arena.allocate(8);
            iovecs.set(JAVA_LONG, 16, data.address());
            iovecs.set(JAVA_LONG, 24, data.byteSize());
            assertTrue(ring.queueWritev(devNull, iovecs, 16, 1, 7, IoUring.NO_WAIT), "the second iovec alone");
            assertEquals(1, ring.submit(1));
            long[] tags = new long[1];
            int[] results = new int[1];
            assertEquals(1, ring.completions(tags, results));
            assertEquals(7, tags[0]);
            assertEquals(8, results[0], "its 8 bytes written");
        }
    }

    @Test
    void entriesOutOfRangeAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> IoUring.open(0));
        assertThrows(IllegalArgumentException.class, () -> IoUring.open(8192));
    }
}

package io.vhostffm.programs.demo;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.testkit.Frames;
import io.vhostffm.testkit.NetworkSide;
import io.vhostffm.testkit.StreamCheck;
import io.vhostffm.vhost.os.FileDescriptor;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.os.TapDevice;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Why the network-to-guest check is "in order on each queue": on a real two-queue TAP, frames of
 * one stream from the network follow the queue the guest last transmitted their flow hash on, so
 * a stream is spread over the queues as the guest's transmissions go; and the check itself.
 */
class WireOrderTest {

    @Test
    void aStreamFromTheNetworkFollowsTheQueueTheGuestLastSentOn() throws Exception {
        try (TapDevice tap = TapDevice.create("vffwo%d", 2, TapDevice.VHOST_FLAGS); Arena arena = Arena.ofConfined()) {
            tap.setVnetHeaderSize(FakeGuest.HEADER);
            tap.setLinkUp(true);
            try (NetworkSide wire = new NetworkSide(tap.name(), 2, 64)) {
                MemorySegment guestFrame = arena.allocate(FakeGuest.HEADER + FakeGuest.NUMBERED_FRAME);
                MemorySegment read = arena.allocate(2048);
                for (FileDescriptor q : List.of(tap.queue(0), tap.queue(1))) {
                    q.setNonBlocking(true);
                }
                // The guest transmits on queue 1, then on queue 0: stream 0 from the network goes
                // where the guest last sent our ethertype's flow hash.
                for (int sentOn : new int[] {1, 0, 1}) {
                    Frames.write(guestFrame.asSlice(FakeGuest.HEADER), Frames.BROADCAST, FakeGuest.MAC, sentOn, 0,
                            FakeGuest.NUMBERED_FRAME, -1);
                    assertEquals(guestFrame.byteSize(), tap.queue(sentOn).write(guestFrame));
                    wire.sendToGuest(0, 3);
                    assertEquals(3, oursOn(tap.queue(sentOn), read), "stream 0 on queue " + sentOn);
                    assertEquals(0, oursOn(tap.queue(1 - sentOn), read), "stream 0 on queue " + (1 - sentOn));
                }
            }
        }
    }

    @Test
    void theCheckWantsEveryFrameOnceAndOrderOnEachQueue() {
        // 0..5 spread over two queues, in order on each: fine
        assertNull(StreamCheck.exactlyOnceInOrderPerQueue("s", List.of(0L, 1L, 4L, 2L, 3L, 5L),
                List.of(0, 0, 0, 1, 1, 0), 6));
        // 3 before 2 on queue 1
        String reordered = StreamCheck.exactlyOnceInOrderPerQueue("s", List.of(0L, 3L, 1L, 2L),
                List.of(0, 1, 0, 1), 4);
        assertTrue(reordered != null && reordered.contains("on queue pair 1 frame 2 arrived after 3"), reordered);
        // lost and duplicated
        String lost = StreamCheck.exactlyOnceInOrderPerQueue("s", List.of(0L, 1L, 3L), List.of(0, 1, 0), 4);
        assertTrue(lost != null && lost.contains("3 frames for 4 sent (1 missing"), lost);
        String twice = StreamCheck.exactlyOnceInOrderPerQueue("s", List.of(0L, 1L, 1L), List.of(0, 0, 1), 3);
        assertTrue(twice != null && twice.contains("is number 1"), twice);
        // the plain check (one queue) still wants the global order
        assertTrue(StreamCheck.exactlyOnceInOrder("s", List.of(0L, 2L, 1L), 3) != null);
    }

    /** Our frames waiting on a TAP queue fd, read and counted. */
    private static int oursOn(FileDescriptor queue, MemorySegment read) throws NativeCallException {
        int ours = 0;
        for (;;) {
            long n;
            try {
                n = queue.read(read);
            } catch (NativeCallException e) {
                if ("EAGAIN".equals(e.errnoSymbol())) {
                    return ours;
                }
                throw e;
            }
            if (n > FakeGuest.HEADER && Frames.isNumbered(read.asSlice(FakeGuest.HEADER), n - FakeGuest.HEADER)) {
                ours++;
            }
        }
    }
}

package io.vhostffm.testkit.device.userspace;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.testkit.Frames;
import io.vhostffm.testkit.RxFrame;
import io.vhostffm.vhost.device.userspace.UserspaceDatapath;
import io.vhostffm.vhost.os.DescriptorPoller;
import io.vhostffm.vhost.os.FileDescriptor;
import io.vhostffm.vring.DriverQueue;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Receive with a guest that learns of frames only from calls: the receive loop of the datapath
 * benchmark's guest (batches of 32 frames in 16 UDP flows, which the TAP spreads over its queues;
 * collect every receive ring, and when all are empty ask each for a call under event idx and poll
 * all the call eventfds at once, reading only those poll reported), on one worker thread serving
 * every pair. The benchmark's poll gives up after 100 ms and looks again, so a lost call only
 * slows it down; here a wait that ends without a call fails, saying whether the frames were in a
 * used ring (the device published without calling) or not (the worker slept with frames on the
 * TAP). Needs root (TAP, raw socket).
 */
class UserspaceRxCallTest {
    private static final int BATCH = 32;
    private static final int FLOWS = 16;
    /** Batches per case; the system property {@code rxcall.batches} sets more for a longer run. */
    private static final int BATCHES = Integer.getInteger("rxcall.batches", 2_000);
    /** Long enough that only a call that never comes runs it out, even on a loaded machine. */
    private static final int WAIT_MILLIS = 10_000;

    @ParameterizedTest(name = "{0} pair(s) on one worker")
    @ValueSource(ints = {1, 2})
    void everyWaitForReceivedFramesEndsWithACall(int pairs) throws Exception {
        try (DatapathRig rig = new DatapathRig(pairs, true)) {
            rig.guest.postRxBuffers();
            DriverQueue[] rx = new DriverQueue[pairs];
            List<FileDescriptor> calls = new ArrayList<>();
            for (int p = 0; p < pairs; p++) {
                rx[p] = rig.guest.rx(p);
                rx[p].disableUsedNotifications();
                calls.add(rig.transport.call(2 * p).fd());
            }
            UserspaceDatapath backend = UserspaceDatapath.start(rig.memory, rig.configs(), rig.device, null, 1);
            try (DescriptorPoller poller = new DescriptorPoller(calls)) {
                assertEquals(1, backend.workerThreads());
                List<RxFrame> got = new ArrayList<>();
                long seq = 0;
                long waits = 0;
                for (int batch = 0; batch < BATCHES; batch++) {
                    for (int i = 0; i < BATCH; i++) {
                        rig.network.send(Frames.frame(FakeGuest.MAC, Frames.NETWORK_MAC, 0, seq++, Frames.MIN_LENGTH,
                                i % FLOWS));
                    }
                    int arrived = 0;
                    while (arrived < BATCH) {
                        got.clear();
                        int collected = 0;
                        for (int p = 0; p < pairs; p++) {
                            collected += rig.guest.receive(p, got);
                        }
                        for (RxFrame f : got) {
                            arrived += Frames.isNumbered(f.frame()) ? 1 : 0;
                        }
                        if (collected > 0) {
                            continue;
                        }
                        boolean pending = false;
                        for (int p = 0; p < pairs; p++) {
                            pending |= rx[p].enableUsedNotifications();
                        }
                        if (!pending) {
                            waits++;
                            if (!awaitCall(poller)) {
                                fail(lost(rx, backend, batch, arrived, waits));
                            }
                            for (int p = 0; p < pairs; p++) {
                                if (poller.isReadable(p)) {
                                    rig.transport.call(2 * p).consume();
                                }
                            }
                        }
                        for (int p = 0; p < pairs; p++) {
                            rx[p].disableUsedNotifications();
                        }
                    }
                }
                long frames = backend.stats().rxFrames();
                assertTrue(frames >= BATCHES * (long) BATCH, frames + " frames received after " + waits
                        + " waits for a call");
            } finally {
                backend.stop();
            }
        }
    }

    /** Polls the calls until one is readable; false when {@value #WAIT_MILLIS} ms pass first. */
    private static boolean awaitCall(DescriptorPoller poller) throws Exception {
        long deadline = System.nanoTime() + WAIT_MILLIS * 1_000_000L;
        while (true) {
            long left = (deadline - System.nanoTime()) / 1_000_000L;
            if (left <= 0) {
                return false;
            }
            if (poller.poll((int) left) > 0) {
                return true; // 0: timed out, or a signal interrupted the wait
            }
        }
    }

    private static String lost(DriverQueue[] rx, UserspaceDatapath backend, int batch, int arrived, long waits) {
        StringBuilder published = new StringBuilder();
        for (int p = 0; p < rx.length; p++) {
            // Still enabled: true when used elements wait in the ring.
            if (rx[p].enableUsedNotifications()) {
                published.append(published.isEmpty() ? "" : ", ").append(p);
            }
        }
        String what = published.isEmpty()
                ? "no frame in any used ring: the worker did not take the frames off the TAP"
                : "frames in the used ring of pair(s) " + published + " and no call: a lost notification";
        return "batch " + batch + ", " + arrived + " of " + BATCH + " frames, wait " + waits + ": no call in "
                + WAIT_MILLIS + " ms; " + what + "; datapath " + backend.stats();
    }
}

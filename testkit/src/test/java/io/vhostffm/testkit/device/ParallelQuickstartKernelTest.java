package io.vhostffm.testkit.device;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.testkit.FakeGuest;
import io.vhostffm.vhost.device.DatapathState;
import io.vhostffm.vhost.device.kernel.VhostNet;
import io.vhostffm.vhost.device.kernel.VhostNetBackend;
import io.vhostffm.vhost.os.Errno;
import io.vhostffm.vhost.os.IoctlObserver;
import io.vhostffm.vhost.os.IoctlRequest;
import io.vhostffm.vhost.os.NativeCallException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The kernel backend's quickstart with each pair's steps on its own thread
 * ({@link VhostNetBackend#setQuickstartThreads}), on the real kernel vhost-net (bin/kernel-bench;
 * elsewhere every test FAILS), driven by the testkit's {@link FakeGuest}: each pair gets exactly
 * its SET_VRING_BASE x2 and NET_SET_BACKEND x2 in order, on the threads parked at prestart, and
 * frames flow on every pair afterwards; a failure injected on one pair names that pair, the ioctl
 * and the errno, and leaves no queue bound, and the device then starts classically.
 */
@Tag("kernel")
class ParallelQuickstartKernelTest {
    private static final int PAIRS = 4;
    private static final String THREAD_MARKER = "vhost-net quickstart ";

    /** The backend, its stopped state and the recorder attached, after a prestart from that state. */
    private record Prestarted(VhostNetBackend kernel, DatapathState stopped, Recorder recorder) {}

    /**
     * Every pair on, {@code frames} through them, the quickstart set to {@code threads}, the
     * datapath stopped and prestarted again from where it stopped, the recorder cleared.
     */
    private static Prestarted prestart(RuntimeRig rig, int threads, int frames) throws Exception {
        rig.setQueuePairs(PAIRS);
        assertEquals(frames, DeviceTraffic.transmitAndCheck(rig, 0, frames));
        VhostNetBackend kernel = (VhostNetBackend) rig.backend;
        kernel.setQuickstartThreads(threads);
        DatapathState stopped = rig.device.stopDatapath();
        Recorder recorder = new Recorder();
        recorder.attach(kernel);
        rig.device.prestartDatapath(stopped.dataQueues());
        recorder.clear();
        return new Prestarted(kernel, stopped, recorder);
    }

    @ParameterizedTest
    @ValueSource(ints = {2, 4})
    void framesFlowOnEveryPairAfterAParallelQuickstart(int threads) throws Exception {
        try (RuntimeRig rig = RuntimeRig.kernel(PAIRS)) {
            Prestarted ready = prestart(rig, threads, 200);
            VhostNetBackend kernel = ready.kernel();
            DatapathState stopped = ready.stopped();
            Recorder recorder = ready.recorder();

            rig.device.quickstartDatapath(stopped);
            kernel.setIoctlObserver(null);
            Set<String> threadNames = new TreeSet<>();
            for (int p = 0; p < PAIRS; p++) {
                List<Call> calls = recorder.ofPair(p);
                assertEquals(List.of("SET_VRING_BASE 0", "SET_VRING_BASE 1", "NET_SET_BACKEND 0 bound",
                        "NET_SET_BACKEND 1 bound"), calls.stream().map(Call::step).toList(), "pair " + p);
                String thread = calls.get(0).thread();
                assertTrue(calls.stream().allMatch(c -> c.thread().equals(thread)), "pair " + p + " on one thread: " + calls);
                if (p % threads == 0) {
                    assertEquals(Thread.currentThread().getName(), thread, "pair " + p + ": the quickstart's own thread");
                } else {
                    assertTrue(thread.startsWith(THREAD_MARKER) && thread.endsWith(" share " + p % threads),
                            "pair " + p + " on its parked thread, not " + thread);
                }
                threadNames.add(thread);
            }
            assertEquals(threads, threadNames.size(), "threads used: " + threadNames);
            assertTrue(rig.device.isDatapathRunning());

            assertEquals(400, DeviceTraffic.transmitAndCheck(rig, 200, 400)); // round-robin over every pair
            rig.guest.postRxBuffers();
            DeviceTraffic.receiveAndCheck(rig, 0, 64, null);
            assertFalse(rig.guest.needsReset());
            rig.device.stopDatapath();
            RuntimeRig.awaitThreadsEnd(THREAD_MARKER + rig.tap.name());
        }
    }

    /**
     * One pair's step fails (EIO, injected before the ioctl): its receive queue bound already
     * (tx's NET_SET_BACKEND), or nothing bound yet (rx's SET_VRING_BASE).
     */
    @ParameterizedTest
    @CsvSource({"2, VHOST_NET_SET_BACKEND, 1", "3, VHOST_SET_VRING_BASE, 0", "0, VHOST_NET_SET_BACKEND, 0"})
    void aFailedPairIsNamedAndLeavesNoQueueBound(int pair, IoctlRequest request, int queue) throws Exception {
        try (RuntimeRig rig = RuntimeRig.kernel(PAIRS)) {
            Prestarted ready = prestart(rig, PAIRS, 100);
            VhostNetBackend kernel = ready.kernel();
            DatapathState stopped = ready.stopped();
            Recorder recorder = ready.recorder();
            recorder.failOnce(pair, request, queue);

            NativeCallException e = assertThrows(NativeCallException.class, () -> rig.device.quickstartDatapath(stopped));
            assertTrue(e.getMessage().contains("queue pair " + pair + ": "), e.getMessage());
            assertTrue(e.getMessage().contains(rig.tap.name()), e.getMessage());
            assertEquals(request.name(), e.request());
            assertEquals("EIO", e.errnoSymbol());
            assertFalse(kernel.isPrestarted(), "the failed quickstart forgot the start");
            assertFalse(rig.device.isDatapathRunning());
            // Every queue's last NET_SET_BACKEND (if any) unbound it.
            Map<String, Integer> lastFd = new HashMap<>();
            for (Call c : recorder.all()) {
                if (c.request() == IoctlRequest.VHOST_NET_SET_BACKEND && !c.injected()) {
                    lastFd.put(c.pair() + "/" + c.queue(), c.value());
                }
            }
            lastFd.forEach((q, fd) -> assertEquals(-1, fd, "pair/queue " + q + " left bound"));
            if (request == IoctlRequest.VHOST_NET_SET_BACKEND && queue == 1) {
                assertTrue(lastFd.containsKey(pair + "/0"), "the failed pair's rx was bound, then unbound: " + lastFd);
            }
            RuntimeRig.awaitThreadsEnd(THREAD_MARKER + rig.tap.name());

            // What a destination does next: a classic start from the same state.
            kernel.setIoctlObserver(null);
            rig.device.startDatapath(stopped);
            assertEquals(200, DeviceTraffic.transmitAndCheck(rig, 100, 200));
            assertFalse(rig.guest.needsReset());
        }
    }

    /**
     * One ioctl: {@code value} is the argument's second word (the base of SET_VRING_BASE, the
     * descriptor of NET_SET_BACKEND, -1 unbinding); {@code injected} when the recorder failed it.
     */
    record Call(int pair, IoctlRequest request, int queue, int value, String thread, boolean injected) {
        String step() {
            String name = request.name().replace("VHOST_", "");
            return request == IoctlRequest.VHOST_NET_SET_BACKEND ? name + " " + queue + (value >= 0 ? " bound" : " unbound")
                    : name + " " + queue;
        }
    }

    /** Every vhost ioctl of a backend's pairs with its thread; fails one chosen ioctl once with EIO. */
    static final class Recorder {
        private final List<Call> calls = new ArrayList<>();
        private int failPair = -1;
        private IoctlRequest failRequest;
        private int failQueue;

        void attach(VhostNetBackend backend) {
            for (int p = 0; p < backend.maxQueuePairs(); p++) {
                VhostNet v = backend.vhost(p);
                int pair = p;
                v.setObserver(new IoctlObserver() {
                    @Override
                    public void beforeIoctl(IoctlRequest request, MemorySegment argument) throws NativeCallException {
                        record(pair, v, request, argument);
                    }
                });
            }
        }

        private synchronized void record(int pair, VhostNet v, IoctlRequest request, MemorySegment argument)
                throws NativeCallException {
            boolean vring = request == IoctlRequest.VHOST_SET_VRING_BASE || request == IoctlRequest.VHOST_NET_SET_BACKEND;
            int queue = vring ? argument.get(ValueLayout.JAVA_INT_UNALIGNED, 0) : -1;
            int value = vring ? argument.get(ValueLayout.JAVA_INT_UNALIGNED, 4) : 0;
            boolean fail = pair == failPair && request == failRequest && queue == failQueue;
            calls.add(new Call(pair, request, queue, value, Thread.currentThread().getName(), fail));
            if (fail) {
                failPair = -1;
                throw IoctlObserver.injectedFailure(request, v.fd(), Errno.number("EIO").orElseThrow());
            }
        }

        synchronized void failOnce(int pair, IoctlRequest request, int queue) {
            failPair = pair;
            failRequest = request;
            failQueue = queue;
        }

        synchronized void clear() {
            calls.clear();
        }

        synchronized List<Call> all() {
            return List.copyOf(calls);
        }

        synchronized List<Call> ofPair(int pair) {
            return calls.stream().filter(c -> c.pair() == pair).toList();
        }
    }
}

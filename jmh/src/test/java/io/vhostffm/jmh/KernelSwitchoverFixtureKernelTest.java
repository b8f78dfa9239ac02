package io.vhostffm.jmh;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.testkit.IoctlRecorder;
import io.vhostffm.testkit.OpenDescriptors;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.device.kernel.VhostNet;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vhost.device.kernel.VhostNetBackend;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Runs {@link KernelSwitchoverBenchmark}'s fixtures and operations directly, without JMH, on the
 * real kernel vhost-net (bin/kernel-bench: in its VM, or where /dev/vhost-net opens; elsewhere it
 * FAILS): each variant issues exactly the vhost ioctls its Javadoc names, in that order (the
 * quickstart with each pair's steps on its own thread too: each pair's in that order); frames
 * flow after each switchover (a probe frame from the guest on every pair's transmit queue reaches
 * the TAP); no descriptor leaks from one operation to the next or out of the trial. What each
 * variant costs is KernelSwitchoverBenchmark's to measure, not this test's.
 */
@Tag("kernel")
class KernelSwitchoverFixtureKernelTest {
    private static final int ROUNDS = 2;

    @ParameterizedTest
    @ValueSource(ints = {1, 4, 16})
    void everyVariantIssuesItsIoctlsAndFramesFlowAfterwards(int pairs) throws Exception {
        assertTrue(Files.exists(Path.of(VhostNet.DEVICE)), VhostNet.DEVICE + " is missing: this test needs the kernel's vhost-net");
        long fdsBefore = OpenDescriptors.snapshot().size();
        SwitchoverGuest guest = new SwitchoverGuest();
        guest.pairs = pairs;
        guest.setUp();
        String tapName = guest.guest.tap.name();
        KernelSwitchoverBenchmark bench = new KernelSwitchoverBenchmark();
        IoctlRecorder recorder = new IoctlRecorder();
        try {
            // quickstart: serial, then (several pairs) each pair's steps on its own thread
            long fdsOpen = 0;
            for (int threads : pairs == 1 ? new int[] {1} : new int[] {1, pairs}) {
                var pre = new KernelSwitchoverBenchmark.Prestarted();
                pre.quickstartThreads = threads;
                pre.open(guest);
                recorder.attach(pre.backend, pairs);
                fdsOpen = OpenDescriptors.snapshot().size();
                for (int round = 0; round < ROUNDS; round++) {
                    pre.prestart(guest);
                    assertEquals(prestartSequence(pairs), names(recorder.take()), "prestart");
                    bench.quickstart(guest, pre);
                    List<IoctlRecorder.Call> calls = recorder.take();
                    if (threads == 1) {
                        assertEquals(quickstartSequence(pairs), names(calls), "quickstart");
                    } else { // the pairs interleave; each pair's own order is the serial one
                        assertEquals(byPair(quickstartSequence(pairs)), byPair(names(calls)), "parallel quickstart");
                    }
                    probeEveryPair(guest);
                    pre.stop(guest);
                    assertEquals(stopSequence(pairs), names(recorder.take()), "stop");
                    assertEquals(fdsOpen, OpenDescriptors.snapshot().size(), "descriptors after quickstart round " + round);
                }
                pre.close();
            }

            // bare ioctls
            var bare = new KernelSwitchoverBenchmark.BarePrestarted();
            bare.open(guest);
            recorder.attach(bare.backend, pairs);
            fdsOpen = OpenDescriptors.snapshot().size();
            for (int round = 0; round < ROUNDS; round++) {
                bare.prestart(guest);
                assertEquals(prestartSequence(pairs), names(recorder.take()), "prestart (bare)");
                bench.bareIoctls(guest, bare);
                List<IoctlRecorder.Call> calls = recorder.take();
                assertEquals(quickstartSequence(pairs), names(calls), "bare ioctls: the same as quickstart's");
                probeEveryPair(guest);
                bare.unbindAndStop(guest);
                List<String> expectedStop = new ArrayList<>();
                for (int p = 0; p < pairs; p++) {
                    expectedStop.add(p + ":NET_SET_BACKEND");
                    expectedStop.add(p + ":NET_SET_BACKEND");
                }
                for (int i = 0; i < 2 * pairs; i++) {
                    expectedStop.add(i / 2 + ":GET_VRING_BASE");
                }
                assertEquals(expectedStop, names(recorder.take()), "unbind directly, then stop");
                assertFalse(bare.backend.isPrestarted());
                assertEquals(fdsOpen, OpenDescriptors.snapshot().size(), "descriptors after bare round " + round);
            }
            bare.close();

            // classic
            var unopened = new KernelSwitchoverBenchmark.Unopened();
            long fdsNone = OpenDescriptors.snapshot().size();
            for (int round = 0; round < ROUNDS; round++) {
                List<IoctlRecorder.Call> start = new ArrayList<>();
                // The benchmark's operation, with observers set between open and start (open's own
                // SET_OWNER and GET_FEATURES happen before any observer can be set: checked below).
                IoctlRecorder classicRecorder = new IoctlRecorder();
                unopened.observers = pair -> classicRecorder.forPair(pair, null);
                VhostNetBackend b = bench.classic(guest, unopened);
                start.addAll(classicRecorder.take());
                assertEquals(classicStartSequence(pairs), names(start), "classic start");
                assertEquals(fdsNone + pairs + 2L * pairs + 1, OpenDescriptors.snapshot().size(),
                        "a vhost-net per pair, an error eventfd per virtqueue and the watcher's wake-up eventfd");
                for (int p = 0; p < pairs; p++) {
                    // open made this process the owner: a second SET_OWNER is refused with EBUSY.
                    int pair = p;
                    NativeCallException e = assertThrows(NativeCallException.class, () -> b.vhost(pair).setOwner());
                    assertEquals("EBUSY", e.errnoSymbol(), "SET_OWNER was issued on pair " + p);
                }
                assertTrue(VirtioFeature.VERSION_1.in(b.vhostFeatures()), "GET_FEATURES answered: " + Long.toHexString(b.vhostFeatures()));
                probeEveryPair(guest);
                classicRecorder.take(); // the EBUSY probes
                unopened.stopAndClose(guest);
                assertEquals(stopSequence(pairs), names(classicRecorder.take()), "stop before close");
                assertEquals(fdsNone, OpenDescriptors.snapshot().size(), "descriptors after classic round " + round);
            }
            unopened.close();
        } finally {
            guest.tearDown();
        }
        assertFalse(Files.exists(Path.of("/sys/class/net", tapName)), "the TAP is gone after the trial");
        assertEquals(fdsBefore, OpenDescriptors.snapshot().size(), "descriptors after the trial");
    }

    private static void probeEveryPair(SwitchoverGuest guest) throws NativeCallException {
        for (int p = 0; p < guest.pairs; p++) {
            guest.transmitProbe(p);
        }
    }

    /** The calls grouped by pair, pair 0's first, each pair's in the order issued. */
    private static List<String> byPair(List<String> names) {
        List<String> out = new ArrayList<>();
        for (int p = 0; p < 64; p++) {
            String prefix = p + ":";
            names.stream().filter(n -> n.startsWith(prefix)).forEach(out::add);
        }
        return out;
    }

    private static List<String> names(List<IoctlRecorder.Call> calls) {
        return calls.stream().map(IoctlRecorder.Call::toString).toList();
    }

    /** Per pair SET_FEATURES, SET_MEM_TABLE, then per queue NUM, BASE, ADDR, KICK, CALL, ERR. */
    static List<String> prestartSequence(int pairs) {
        List<String> out = new ArrayList<>();
        for (int p = 0; p < pairs; p++) {
            out.add(p + ":SET_FEATURES");
            out.add(p + ":SET_MEM_TABLE");
            for (int q = 0; q < 2; q++) {
                for (String r : List.of("SET_VRING_NUM", "SET_VRING_BASE", "SET_VRING_ADDR", "SET_VRING_KICK",
                        "SET_VRING_CALL", "SET_VRING_ERR")) {
                    out.add(p + ":" + r);
                }
            }
        }
        return out;
    }

    /** SET_VRING_BASE per virtqueue, then NET_SET_BACKEND on both queues of every pair. */
    static List<String> quickstartSequence(int pairs) {
        List<String> out = new ArrayList<>();
        for (int i = 0; i < 2 * pairs; i++) {
            out.add(i / 2 + ":SET_VRING_BASE");
        }
        for (int p = 0; p < pairs; p++) {
            out.add(p + ":NET_SET_BACKEND");
            out.add(p + ":NET_SET_BACKEND");
        }
        return out;
    }

    /** The prestart sequence, then NET_SET_BACKEND on both queues of every pair. */
    static List<String> classicStartSequence(int pairs) {
        List<String> out = new ArrayList<>(prestartSequence(pairs));
        for (int p = 0; p < pairs; p++) {
            out.add(p + ":NET_SET_BACKEND");
            out.add(p + ":NET_SET_BACKEND");
        }
        return out;
    }

    /** NET_SET_BACKEND(-1) on both queues of every pair, then GET_VRING_BASE per virtqueue. */
    static List<String> stopSequence(int pairs) {
        List<String> out = new ArrayList<>();
        for (int p = 0; p < pairs; p++) {
            out.add(p + ":NET_SET_BACKEND");
            out.add(p + ":NET_SET_BACKEND");
        }
        for (int i = 0; i < 2 * pairs; i++) {
            out.add(i / 2 + ":GET_VRING_BASE");
        }
        return out;
    }
}

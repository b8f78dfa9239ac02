package io.vhostffm.jmh;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;


import io.vhostffm.testkit.OpenDescriptors;
import io.vhostffm.vhost.device.userspace.UserspaceNetBackend;
import io.vhostffm.vring.QueuePosition;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Runs {@link UserspaceSwitchoverBenchmark}'s fixtures and operations directly, without JMH (on
 * the host: needs /dev/net/tun and root): after each quickstart and each classic start the
 * datapath runs and moves frames (a probe frame from the guest on every pair's transmit queue
 * reaches the TAP), the next round resumes where the last stopped, and no descriptor leaks from
 * one operation to the next or out of the trial.
 */
class UserspaceSwitchoverFixtureTest {
    private static final int ROUNDS = 3;

    @ParameterizedTest
    @ValueSource(ints = {1, 4, 16})
    void quickstartAndClassicStartMoveFramesAndLeakNothing(int pairs) throws Exception {
        long fdsBefore = OpenDescriptors.snapshot().size();
        SwitchoverGuest guest = new SwitchoverGuest();
        guest.pairs = pairs;
        guest.setUp();
        String tapName = guest.guest.tap.name();
        UserspaceSwitchoverBenchmark bench = new UserspaceSwitchoverBenchmark();
        try {
            var pre = new UserspaceSwitchoverBenchmark.Prestarted();
            pre.open(guest);
            long fdsOpen = OpenDescriptors.snapshot().size();
            for (int round = 0; round < ROUNDS; round++) {
                pre.prestart(guest);
                assertFalse(pre.backend.isRunning(), "prestarted, not running");
                UserspaceNetBackend b = bench.quickstart(guest, pre);
                assertTrue(b.isRunning());
                probeEveryPair(guest);
                pre.stop(guest);
                checkResumedAfter(guest, round + 1, "quickstart");
                assertEquals(fdsOpen, OpenDescriptors.snapshot().size(), "descriptors after quickstart round " + round);
            }
            pre.close();

            var unopened = new UserspaceSwitchoverBenchmark.Unopened();
            long fdsNone = OpenDescriptors.snapshot().size();
            for (int round = 0; round < ROUNDS; round++) {
                UserspaceNetBackend b = bench.classic(guest, unopened);
                assertTrue(b.isRunning());
                probeEveryPair(guest);
                unopened.stopAndClose(guest);
                checkResumedAfter(guest, ROUNDS + round + 1, "classic");
                assertEquals(fdsNone, OpenDescriptors.snapshot().size(), "descriptors after classic round " + round);
            }
            unopened.close();
        } finally {
            guest.tearDown();
        }
        assertFalse(Files.exists(Path.of("/sys/class/net", tapName)), "the TAP is gone after the trial");
        assertEquals(fdsBefore, OpenDescriptors.snapshot().size(), "descriptors after the trial");
    }

    /** Each pair's transmit queue went on from where the last stop left it: {@code frames} taken so far. */
    private static void checkResumedAfter(SwitchoverGuest guest, int frames, String variant) {
        List<QueuePosition> states = guest.finalPositions();
        for (int p = 0; p < guest.pairs; p++) {
            assertEquals(frames, states.get(2 * p + 1).lastAvailIdx(), variant + ": pair " + p + "'s tx last_avail_idx");
            assertEquals(0, states.get(2 * p).lastAvailIdx(), variant + ": pair " + p + "'s rx queue had nothing to take");
        }
    }

    private static void probeEveryPair(SwitchoverGuest guest) throws Exception {
        for (int p = 0; p < guest.pairs; p++) {
            guest.transmitProbe(p);
        }
    }
}

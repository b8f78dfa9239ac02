package io.vhostffm.testkit.device;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.testkit.ResourceLedger;
import io.vhostffm.vhost.device.DatapathState;
import io.vhostffm.vhost.device.DirtyLog;
import io.vhostffm.vhost.device.NetBackend;
import io.vhostffm.vhost.device.NetDeviceRuntime;
import org.junit.jupiter.api.Test;

/**
 * Every life-cycle transition of a device run many times, with a few frames each way through the
 * real TAP between any two (each checked exactly once, byte for byte, in order), and the process's
 * {@link ResourceLedger} flat from the end of the warm-up to the last cycle: descriptors by kind,
 * the library's threads, mapped guest memory. A transition that leaks fails naming
 * the resource and both counts. Subclasses give the backends and how many cycles each transition
 * runs where they run (see theirs for why those counts).
 */
abstract class LifeCycleSoak {
    /**
     * Cycles before the first ledger: the first ones load classes, start the JDK's own threads and
     * let the datapath's buffers settle; a leak shows as growth over the many that follow.
     */
    static final int WARM_UP = 5;
    /** Frames each way between two transitions. */
    static final int FRAMES = 4;

    private int txNext;
    private int rxNext;

    /** The backend the device starts with, on {@code tap}'s TAP. */
    abstract RuntimeRig.BackendOpener primary();

    /** The backend a live switch goes to and comes back from. */
    abstract RuntimeRig.BackendOpener other();

    /** Cycles of {@code transition} (one of the test methods' names). */
    abstract int cycles(String transition);

    /** One cycle of a transition. */
    @FunctionalInterface
    interface Cycle {
        void run(RuntimeRig rig) throws Exception;
    }

    /**
     * Runs {@code cycles(transition)} cycles on {@code rig}; fails if the ledger grew between the
     * end of the warm-up and the end.
     */
    void soak(String transition, RuntimeRig rig, Cycle cycle) throws Exception {
        int cycles = cycles(transition);
        for (int i = 0; i < WARM_UP; i++) {
            cycle.run(rig);
        }
        ResourceLedger.Snapshot warm = ResourceLedger.take();
        for (int i = WARM_UP; i < cycles; i++) {
            cycle.run(rig);
        }
        ResourceLedger.Snapshot end = ResourceLedger.take();
        // The ledger (counts, not times): what the soak's record of each transition shows.
        System.out.println("soak " + transition + ": after " + WARM_UP + " cycles [" + warm + "]; after " + cycles
                + " [" + end + "]");
        ResourceLedger.requireFlat(transition + " (" + (cycles - WARM_UP) + " cycles after " + WARM_UP + " to warm up)",
                warm, end);
        assertFalse(rig.guest.needsReset(), () -> "NEEDS_RESET: " + rig.device.model().lastError());
    }

    /** {@value #FRAMES} frames each way on every pair, checked. */
    void traffic(RuntimeRig rig) throws Exception {
        transmit(rig);
        receive(rig);
    }

    void transmit(RuntimeRig rig) throws Exception {
        assertEquals(FRAMES, DeviceTraffic.transmitAndCheck(rig, txNext, FRAMES));
        txNext += FRAMES;
    }

    void receive(RuntimeRig rig) throws Exception {
        DeviceTraffic.receiveAndCheck(rig, rxNext, FRAMES, null);
        rxNext += FRAMES;
    }

    RuntimeRig rig(int pairs) throws Exception {
        RuntimeRig rig = RuntimeRig.on(pairs, primary());
        rig.guest.postRxBuffers();
        if (pairs > 1) {
            rig.setQueuePairs(pairs);
        }
        return rig;
    }

    /** stopDatapath, then startDatapath with the state it gave (the classic restart). */
    @Test
    void stopAndStart() throws Exception {
        try (RuntimeRig rig = rig(1)) {
            soak("stopAndStart", rig, r -> {
                DatapathState state = r.device.stopDatapath();
                assertFalse(r.device.isDatapathRunning());
                r.device.startDatapath(state);
                traffic(r);
            });
        }
    }

    /** stopDatapath, then prestartDatapath and quickstartDatapath (a migration's two-step start). */
    @Test
    void stopAndPrestartQuickstart() throws Exception {
        try (RuntimeRig rig = rig(1)) {
            soak("stopAndPrestartQuickstart", rig, r -> {
                DatapathState state = r.device.stopDatapath();
                r.device.prestartDatapath(state.dataQueues());
                assertFalse(r.device.isDatapathRunning());
                r.device.quickstartDatapath(state);
                traffic(r);
            });
        }
    }

    /** switchBackend to the other backend and back, traffic on each. */
    @Test
    void switchBackendBothWays() throws Exception {
        try (RuntimeRig rig = rig(1); NetBackend other = other().open(rig.tap)) {
            soak("switchBackendBothWays", rig, r -> {
                assertEquals(r.backend, r.device.switchBackend(other));
                traffic(r);
                assertEquals(other, r.device.switchBackend(r.backend));
                traffic(r);
            });
        }
    }

    /**
     * A new backend of the primary kind opened on the same TAP, switched to, and the one it
     * replaces closed: the device never runs on one backend for two cycles.
     */
    @Test
    void backendCloseAndReopen() throws Exception {
        NetBackend last = null;
        try (RuntimeRig rig = rig(1)) {
            NetBackend[] current = {rig.backend};
            try {
                soak("backendCloseAndReopen", rig, r -> {
                    NetBackend fresh = primary().open(r.tap);
                    NetBackend old = r.device.switchBackend(fresh);
                    assertEquals(current[0], old);
                    current[0] = fresh;
                    old.close();
                    traffic(r);
                });
            } finally {
                last = current[0];
            }
        } finally {
            if (last != null) {
                last.close(); // after the device: the rig closes only the backend it opened
            }
        }
    }

    /** startDirtyLog with a new log, traffic logged, stopDirtyLog, the log closed. */
    @Test
    void dirtyLogStartAndStop() throws Exception {
        try (RuntimeRig rig = rig(1)) {
            soak("dirtyLogStartAndStop", rig, r -> {
                try (DirtyLog log = DirtyLog.covering(r.memory)) {
                    r.device.startDirtyLog(log);
                    receive(r);
                    r.device.stopDirtyLog();
                    assertTrue(log.fetchAndClear().length > 0, "frames received while logging dirty no page");
                }
                traffic(r);
            });
        }
    }

    /** VQ_PAIRS_SET 1 then 2 through the control queue, frames on the pairs enabled each time. */
    @Test
    void queuePairsDisableAndEnable() throws Exception {
        try (RuntimeRig rig = rig(2)) {
            soak("queuePairsDisableAndEnable", rig, r -> {
                r.setQueuePairs(1);
                receive(r); // the guest transmits on both pairs, so only the network sends now
                r.setQueuePairs(2);
                traffic(r);
            });
        }
    }

    /**
     * A transmit buffer in the hole of guest memory puts the device into NEEDS_RESET (its datapath
     * stopped); the driver resets it and boots again.
     */
    @Test
    void needsResetAndDriverReset() throws Exception {
        try (RuntimeRig rig = rig(1)) {
            soak("needsResetAndDriverReset", rig, r -> {
                String error = VhostNetBackendKernelTest.sendIntoTheHole(r);
                assertTrue(error.contains("virtqueue 1"), error);
                r.awaitDatapathThreadsEnd();
                RuntimeRig.awaitThreadsEnd("virtio-net-bad-input");
                assertFalse(r.device.isDatapathRunning());
                r.device.configInterrupt().consume();
                r.resetAndBoot();
                traffic(r);
            });
        }
    }

    /** The driver resets a running device and boots it again (no error first). */
    @Test
    void driverResetWhileRunning() throws Exception {
        try (RuntimeRig rig = rig(1)) {
            soak("driverResetWhileRunning", rig, r -> {
                NetDeviceRuntime device = r.device;
                assertTrue(device.isDatapathRunning());
                r.resetAndBoot();
                assertTrue(device.isDatapathRunning());
                traffic(r);
            });
        }
    }
}

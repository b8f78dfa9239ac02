package io.vhostffm.testkit.device;

import io.vhostffm.vhost.device.userspace.UserspaceNetBackend;
import java.util.Map;

/**
 * The life-cycle soak ({@link LifeCycleSoak}) on the host: the userspace datapath, switching
 * between two userspace backends on the same TAP (the kernel backend only in the VM bench,
 * {@link LifeCycleSoakKernelTest}).
 *
 * <p>Cycles per transition: as many as keep the whole soak (this class and the migration soak of
 * the programs module) within about three minutes on a two-core build machine, and never fewer
 * than 200, which is 40 times the warm-up: a transition that leaks one descriptor or thread per
 * cycle shows it 195 times over. The cheap transitions (a stop and start costs a thread start or
 * two and a few ioctls) run 1,000; the ones whose every cycle boots a guest or makes a control
 * command round trip per step run fewer.
 */
class LifeCycleSoakTest extends LifeCycleSoak {
    private static final Map<String, Integer> CYCLES = Map.of(
            "stopAndStart", 1000,
            "stopAndPrestartQuickstart", 1000,
            "switchBackendBothWays", 1000,
            "backendCloseAndReopen", 1000,
            "dirtyLogStartAndStop", 1000,
            "queuePairsDisableAndEnable", 1000,
            "needsResetAndDriverReset", 1000,
            "driverResetWhileRunning", 1000);

    @Override
    RuntimeRig.BackendOpener primary() {
        return UserspaceNetBackend::open;
    }

    @Override
    RuntimeRig.BackendOpener other() {
        return UserspaceNetBackend::open;
    }

    @Override
    int cycles(String transition) {
        return CYCLES.get(transition);
    }
}

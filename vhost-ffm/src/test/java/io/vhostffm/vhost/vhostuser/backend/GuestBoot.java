package io.vhostffm.vhost.vhostuser.backend;

import java.time.Duration;

/**
 * The first stage of a peer test's guest: from QEMU's start to the guest's /init speaking (its
 * first "peer-guest:" line). An emulated (TCG) boot on these 2-core machines takes 5-8 s, and
 * once in a while hangs before /init with nothing on the console; the kernel bench reboots once
 * for the same reason. Such a hang is told apart from a fault of ours by the backend's own
 * record: QEMU negotiates vhost-user with the backend before the guest runs, so a hang after a
 * completed negotiation is the emulated guest's, and only that one is worth a second boot.
 */
final class GuestBoot {
    /** From QEMU's start to /init's first line: far above a loaded machine's 30 s. */
    static final Duration LIMIT = Duration.ofSeconds(120);

    /** The emulated guest never reached /init although the backend served QEMU's negotiation. */
    static final class Hang extends AssertionError {
        Hang(String message) {
            super(message);
        }
    }

    private GuestBoot() {
    }

    /**
     * Waits for the guest's /init on {@code vm}; throws {@link Hang} when it did not speak within
     * {@link #LIMIT} while {@code backend} reports a negotiated session, else the plain failure.
     */
    static void awaitInit(PeerProcess vm, StatusLog backend) throws InterruptedException {
        try {
            vm.await("the guest's /init", l -> l.startsWith("peer-guest:"), LIMIT);
        } catch (AssertionError e) {
            boolean negotiated = backend.lines().stream().anyMatch(l -> l.startsWith("protocol features negotiated"));
            String record = "; the backend's status lines:\n  " + String.join("\n  ", backend.lines());
            if (negotiated && vm.process().isAlive()) {
                throw new Hang("the emulated guest did not reach /init within " + LIMIT.toSeconds()
                        + " s after QEMU negotiated with the backend: " + e.getMessage() + record);
            }
            throw new AssertionError(e.getMessage() + record, e);
        }
    }
}

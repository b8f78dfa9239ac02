package io.vhostffm.jmh;

import io.vhostffm.vhost.device.kernel.VhostNetBackend;
import java.util.ArrayList;
import java.util.List;

/**
 * Closes a stopped {@link VhostNetBackend}'s vhost-net descriptors all at once. The kernel's
 * release of a vhost-net descriptor waits for an RCU grace period (vhost_net_release:
 * synchronize_rcu), tens of milliseconds under the VM bench's emulation; the backend's own
 * {@code close()} closes them one after another, so 16 pairs would wait 16 grace periods in every
 * classic tear-down. Closing them on one thread each lets the grace periods overlap. The backend's
 * {@code close()} afterwards finds them closed ({@code VhostNet.close} is idempotent) and releases
 * the rest (eventfds, its watcher thread).
 */
final class VhostClosing {
    private VhostClosing() {}

    /** Closes {@code backend.vhost(0 .. pairs-1)} in parallel; returns when all are closed. */
    static void closeAll(VhostNetBackend backend, int pairs) {
        if (pairs == 1) {
            backend.vhost(0).close();
            return;
        }
        List<Thread> closers = new ArrayList<>(pairs);
        for (int p = 0; p < pairs; p++) {
            closers.add(Thread.ofPlatform().name("vhost-close " + p).start(backend.vhost(p)::close));
        }
        boolean interrupted = false;
        for (Thread t : closers) {
            while (true) {
                try {
                    t.join();
                    break;
                } catch (InterruptedException e) {
                    interrupted = true; // the descriptors must be closed before the next operation
                }
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }
}

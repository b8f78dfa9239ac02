package io.vhostffm.vhost.device.userspace;

import java.util.concurrent.atomic.AtomicLong;

/**
 * The live counters of one queue pair: written by its datapath thread only (a release store of
 * the incremented value: no lock, no fence on x86, no allocation), read by anyone.
 */
final class Counters {
    final AtomicLong txFrames = new AtomicLong();
    final AtomicLong txBytes = new AtomicLong();
    final AtomicLong txErrors = new AtomicLong();
    final AtomicLong rxFrames = new AtomicLong();
    final AtomicLong rxBytes = new AtomicLong();
    final AtomicLong rxFiltered = new AtomicLong();
    final AtomicLong rxDropped = new AtomicLong();

    /** Single-writer increment. */
    static void add(AtomicLong counter, long delta) {
        counter.lazySet(counter.getPlain() + delta);
    }

    QueuePairStats snapshot() {
        return new QueuePairStats(txFrames.get(), txBytes.get(), txErrors.get(), rxFrames.get(), rxBytes.get(),
                rxFiltered.get(), rxDropped.get());
    }
}

package io.vhostffm.vhost.device;

import io.vhostffm.vring.GuestMemory;
import io.vhostffm.vring.QueuePosition;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * Everything a backend needs to start a device's datapath: the guest memory, the negotiated
 * features, and per data virtqueue its state and notification eventfds.
 *
 * @param memory guest memory; its regions must be native segments (the kernel backend hands their
 *     addresses to vhost as {@code userspace_addr})
 * @param ackedFeatures the features the driver acknowledged (FEATURES_OK); a backend adds its own
 *     bits where needed (the kernel backend adds VHOST_F_LOG_ALL while logging)
 * @param queues the data queues, in virtqueue order: {@code 2i} rx, {@code 2i+1} tx of pair
 *     {@code i}, for pairs {@code 0 .. queues.size()/2 - 1}
 * @param activePairs pairs that carry traffic from the start (VQ_PAIRS_SET; 1 without MQ); the
 *     others are set up but disabled
 * @param tunOffloadFlags the TUNSETOFFLOAD argument for the guest's current receive offloads
 * @param dirtyLog the log to mark written pages in, or null when not logging
 * @param listener where the datapath reports bad guest input
 */
public record BackendStart(GuestMemory memory, long ackedFeatures, List<QueueBinding> queues, int activePairs,
        int tunOffloadFlags, DirtyLog dirtyLog, BackendListener listener) {

    /** Checks the shape: an even, non-empty queue list in virtqueue order, 1 &lt;= activePairs &lt;= pairs. */
    public BackendStart {
        Objects.requireNonNull(memory, "memory");
        Objects.requireNonNull(listener, "listener");
        queues = List.copyOf(queues);
        if (queues.isEmpty() || queues.size() % 2 != 0) {
            throw new IllegalArgumentException("a backend starts whole queue pairs: " + queues.size() + " queues");
        }
        for (int i = 0; i < queues.size(); i++) {
            if (queues.get(i).index() != i) {
                throw new IllegalArgumentException("queue " + i + " of the start is virtqueue " + queues.get(i).index()
                        + "; data queues must come in virtqueue order from 0");
            }
        }
        if (activePairs < 1 || activePairs > queues.size() / 2) {
            throw new IllegalArgumentException("activePairs " + activePairs + " outside 1.." + queues.size() / 2);
        }
    }

    /** Queue pairs in this start. */
    public int pairs() {
        return queues.size() / 2;
    }

    /** Every queue's position, in the order of {@link #queues()}. */
    public List<QueuePosition> positions() {
        List<QueuePosition> positions = new ArrayList<>(queues.size());
        for (QueueBinding q : queues) {
            positions.add(q.state().position());
        }
        return List.copyOf(positions);
    }

    /**
     * This start with the queues at other positions (same rings, same eventfds), e.g. where a
     * backend stopped or the final ones of a migration.
     */
    public BackendStart withPositions(List<QueuePosition> positions) {
        requireOnePositionPerQueue(positions);
        List<QueueBinding> rebound = new ArrayList<>(queues.size());
        for (int i = 0; i < queues.size(); i++) {
            rebound.add(queues.get(i).withPosition(positions.get(i)));
        }
        return new BackendStart(memory, ackedFeatures, rebound, activePairs, tunOffloadFlags, dirtyLog, listener);
    }

    /**
     * Checks that {@code positions} has one position per queue of this start, in order (a
     * quickstart's final positions, a resumed stop's): the same check for every backend.
     *
     * @throws IllegalArgumentException when the counts differ
     */
    public void requireOnePositionPerQueue(List<QueuePosition> positions) {
        if (positions.size() != queues.size()) {
            throw new IllegalArgumentException(positions.size() + " positions for " + queues.size() + " queues");
        }
    }

    /** This start with another dirty log (null: none). */
    public BackendStart withDirtyLog(DirtyLog log) {
        return new BackendStart(memory, ackedFeatures, queues, activePairs, tunOffloadFlags, log, listener);
    }

    /** This start with another number of active pairs. */
    public BackendStart withActivePairs(int pairs) {
        return new BackendStart(memory, ackedFeatures, queues, pairs, tunOffloadFlags, dirtyLog, listener);
    }

    /** This start with other offload flags. */
    public BackendStart withTunOffloadFlags(int flags) {
        return new BackendStart(memory, ackedFeatures, queues, activePairs, flags, dirtyLog, listener);
    }
}

package io.vhostffm.vhost.device.kernel;

import io.vhostffm.vhost.os.FileDescriptor;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.os.TapDevice;
import io.vhostffm.vring.QueuePosition;
import io.vhostffm.vring.VhostVringBase;
import java.util.List;

/**
 * The floor of a kernel quickstart, what any switchover onto prestarted vhost-net devices must
 * ask the kernel and nothing else: on a prestarted {@link VhostNetBackend}'s descriptors, SET_VRING_BASE
 * per virtqueue, TUNSETQUEUE attaching each pair's TAP queue on a multi-queue TAP (the source may
 * have left it detached; answered EINVAL when it is attached already), then NET_SET_BACKEND on
 * both queues of every pair, straight through {@link VhostNet} and {@link TapDevice}: no resync,
 * no checks, no state kept. The one sequence that the switchover benchmark's bare variant and the
 * downtime benchmark's same-run baseline both time.
 *
 * <p>The backend does not know its queues are bound by this: {@link #unbind} unbinds them
 * before the backend's {@code stop()}.
 */
public final class QuickstartFloor {
    private final VhostNet[] vhosts;
    private final TapDevice tap;
    private final FileDescriptor[] tapQueues;

    /** The floor on the first {@code pairs} pairs of {@code backend} (prestarted before each {@link #issue}). */
    public QuickstartFloor(VhostNetBackend backend, int pairs) {
        if (pairs < 1 || pairs > backend.maxQueuePairs()) {
            throw new IllegalArgumentException(pairs + " pairs of " + backend);
        }
        this.tap = backend.tap();
        this.vhosts = new VhostNet[pairs];
        this.tapQueues = new FileDescriptor[pairs];
        for (int p = 0; p < pairs; p++) {
            vhosts[p] = backend.vhost(p);
            tapQueues[p] = tap.queue(p);
        }
    }

    /** The pairs this floor binds. */
    public int pairs() {
        return vhosts.length;
    }

    /**
     * The ioctls: SET_VRING_BASE per virtqueue from {@code finalPositions} (virtqueue order, split
     * rings), TUNSETQUEUE per pair on a multi-queue TAP, NET_SET_BACKEND per virtqueue.
     */
    public void issue(List<QueuePosition> finalPositions) throws NativeCallException {
        if (finalPositions.size() != 2 * vhosts.length) {
            throw new IllegalArgumentException(finalPositions.size() + " positions for " + vhosts.length + " pairs");
        }
        for (int i = 0; i < finalPositions.size(); i++) {
            vhosts[i / 2].setVringBase(i % 2, VhostVringBase.encodeSplit(finalPositions.get(i).lastAvailIdx()));
        }
        if (tap.queues().size() > 1) {
            for (int p = 0; p < vhosts.length; p++) {
                tap.setQueueAttached(p, true);
            }
        }
        for (int p = 0; p < vhosts.length; p++) {
            vhosts[p].setBackend(VhostNet.RX_QUEUE, tapQueues[p]);
            vhosts[p].setBackend(VhostNet.TX_QUEUE, tapQueues[p]);
        }
    }

    /** NET_SET_BACKEND(-1) on both queues of every pair: what {@link #issue} bound, unbound. */
    public void unbind() throws NativeCallException {
        for (VhostNet v : vhosts) {
            v.clearBackend(VhostNet.RX_QUEUE);
            v.clearBackend(VhostNet.TX_QUEUE);
        }
    }
}

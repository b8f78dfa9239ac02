package io.vhostffm.vhost.vhostuser.backend;

import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vring.QueueGeometry;
import io.vhostffm.vring.QueuePosition;
import io.vhostffm.vring.QueueState;
import io.vhostffm.vring.VhostVringBase;

/**
 * What the frontend has told the backend about one virtqueue, and whether it is being served.
 * Owned by the backend's message thread; the descriptors it holds are closed here exactly once.
 */
final class Ring {
    final int index;
    /** SET_VRING_NUM; 0 until set. */
    int size;
    /** SET_VRING_ADDR translated to guest-physical; valid when {@link #addressed}. */
    long desc;
    long driverArea;
    long deviceArea;
    boolean addressed;
    boolean logged;
    /**
     * SET_VRING_BASE / where the ring stopped, as the wire carries it. Split: last_avail_idx.
     * Packed: bits 0-14 the available index, 15 its wrap counter, 16-30 the used index, 31 its
     * wrap counter (QEMU sends and expects both halves; a frontend that sends only the low half
     * means used = available, no chain in flight).
     */
    long base;
    EventFd kick;
    EventFd call;
    EventFd err;
    /** SET_VRING_ENABLE (true from the start when PROTOCOL_FEATURES was not negotiated). */
    boolean enabled;
    /** Whether its queue pair's datapath runs now. */
    boolean running;

    Ring(int index) {
        this.index = index;
    }

    /** The queue state to start from, in the negotiated format. */
    QueueState startState(boolean packed, boolean eventIdx) {
        if (packed) {
            return QueueState.of(QueueGeometry.packed(size, desc, driverArea, deviceArea, eventIdx),
                    packedPosition((int) base, size));
        }
        // Split: the used index and inuse are re-derived from guest memory on open.
        int last = (int) base;
        return QueueState.of(QueueGeometry.split(size, desc, driverArea, deviceArea, eventIdx),
                QueuePosition.split(last, last, 0));
    }

    /**
     * A packed base as the frontend sent it: the vhost-user short form (high half 0: used =
     * available, no chain in flight) or both halves as QEMU sends them. Chains between the used
     * and available positions are in flight; a negative or oversized count from a bad frontend
     * fails the position's check at start.
     */
    private static QueuePosition packedPosition(int num, int size) {
        if (num >>> 16 == 0) {
            return VhostVringBase.decodeVhostUserPacked(num);
        }
        int avail = num & 0xffff;
        int used = num >>> 16;
        int inuse = (avail & 0x7fff) - (used & 0x7fff) + (((avail ^ used) & 0x8000) != 0 ? size : 0);
        return VhostVringBase.decodeKernelPacked(num, inuse);
    }

    /** Remembers where a stopped queue stands, as GET_VRING_BASE reports it (both halves when packed). */
    void stoppedAt(QueuePosition position) {
        base = Integer.toUnsignedLong(VhostVringBase.encodeKernel(position));
    }

    void replaceKick(EventFd fd) {
        if (kick != null) {
            kick.close();
        }
        kick = fd;
    }

    void replaceCall(EventFd fd) {
        if (call != null) {
            call.close();
        }
        call = fd;
    }

    void replaceErr(EventFd fd) {
        if (err != null) {
            err.close();
        }
        err = fd;
    }

    /** Closes every descriptor held (the datapath must not be running). */
    void closeDescriptors() {
        replaceKick(null);
        replaceCall(null);
        replaceErr(null);
    }

    /** Back to the state of a new connection. */
    void reset(boolean enabledWithoutProtocolFeatures) {
        closeDescriptors();
        size = 0;
        addressed = false;
        logged = false;
        base = 0;
        enabled = enabledWithoutProtocolFeatures;
        running = false;
    }
}

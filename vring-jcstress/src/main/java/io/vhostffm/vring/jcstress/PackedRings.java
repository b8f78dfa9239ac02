package io.vhostffm.vring.jcstress;

import io.vhostffm.vring.QueueGeometry;
import io.vhostffm.vring.QueuePosition;
import io.vhostffm.vring.QueueState;

/** The packed ring geometry shared by the packed tests. */
final class PackedRings {
    private PackedRings() {
    }

    /**
     * A packed ring of {@link RingMemory#QUEUE_SIZE} entries whose driver and device both start
     * at the last slot on the lap with wrap counter 0: the first chain added goes into slot 3
     * (AVAIL/USED bits for wrap 0), the next one into slot 0 after the wrap counters flip to 1.
     */
    static QueueState startingAtLastSlotOfSecondLap(boolean eventIdx) {
        int last = RingMemory.QUEUE_SIZE - 1;
        return QueueState.of(QueueGeometry.packed(RingMemory.QUEUE_SIZE, RingMemory.PACKED_DESC,
                RingMemory.PACKED_DRIVER_EVENT, RingMemory.PACKED_DEVICE_EVENT, eventIdx),
                QueuePosition.packed(last, false, last, false, 0));
    }
}

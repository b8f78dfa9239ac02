package io.vhostffm.jmh;

import io.vhostffm.vring.DeviceQueue;
import io.vhostffm.vring.DriverQueue;
import io.vhostffm.vring.PackedDeviceQueue;
import io.vhostffm.vring.PackedDriverQueue;
import io.vhostffm.vring.QueueGeometry;
import io.vhostffm.vring.QueuePosition;
import io.vhostffm.vring.QueueState;
import io.vhostffm.vring.RestoreMode;
import io.vhostffm.vring.SplitDeviceQueue;
import io.vhostffm.vring.SplitDriverQueue;

/**
 * The two virtqueue formats as the benchmarks use them: placing a queue's ring areas in guest
 * memory, making its device and driver sides, and the final position of a queue after a given
 * amount of traffic. The {@code @Param} value is the lower-case name ("split", "packed").
 */
enum RingFormat {
    /** Split virtqueue (virtio 1.x section 2.7). */
    SPLIT,
    /** Packed virtqueue (virtio 1.x section 2.8). */
    PACKED;

    /** The format named by a {@code @Param} value. */
    static RingFormat of(String param) {
        return switch (param) {
            case "split" -> SPLIT;
            case "packed" -> PACKED;
            default -> throw new IllegalArgumentException("unknown ring format " + param + " (split or packed)");
        };
    }

    /** Guest addresses of one queue's three areas. */
    record Areas(long descriptors, long driverArea, long deviceArea) {
    }

    /** Reserves the three areas of a queue of {@code size} entries, aligned as the spec requires. */
    Areas place(BenchGuestMemory guest, int size) {
        // Each area on its own cache line, so the device's and driver's writes do not share one.
        return switch (this) {
            // desc: 16 bytes per entry; avail: flags, idx, ring[size], used_event; used: flags,
            // idx, ring[size] of 8 bytes, avail_event.
            case SPLIT -> new Areas(guest.allocate(16L * size, 64), guest.allocate(6 + 2L * size, 64),
                    guest.allocate(6 + 8L * size, 64));
            // ring: 16 bytes per descriptor; each event suppression structure 4 bytes.
            case PACKED -> new Areas(guest.allocate(16L * size, 64), guest.allocate(4, 64), guest.allocate(4, 64));
        };
    }

    /** The state of a fresh queue over the given areas: positions at their start. */
    QueueState freshState(int size, Areas areas, boolean eventIdx) {
        return QueueState.fresh(new QueueGeometry(size, areas.descriptors(), areas.driverArea(), areas.deviceArea(),
                eventIdx, this == PACKED));
    }

    /**
     * The driver side of a fresh queue over the given areas. Make it before the device side: it
     * writes the rings' initial contents, which the device then reads.
     */
    DriverQueue driver(int queueIndex, BenchGuestMemory guest, int size, Areas areas, boolean eventIdx) {
        return switch (this) {
            case SPLIT -> new SplitDriverQueue(queueIndex, guest.memory(), size, areas.descriptors(),
                    areas.driverArea(), areas.deviceArea(), eventIdx, 0);
            case PACKED -> new PackedDriverQueue(queueIndex, guest.memory(), freshState(size, areas, eventIdx));
        };
    }

    /** The device side of a fresh queue (all positions at their start) over the given areas. */
    DeviceQueue device(int queueIndex, BenchGuestMemory guest, int size, Areas areas, boolean eventIdx) {
        QueueState state = freshState(size, areas, eventIdx);
        return switch (this) {
            case SPLIT -> new SplitDeviceQueue(queueIndex, guest.memory(), state, RestoreMode.CLASSIC);
            case PACKED -> new PackedDeviceQueue(queueIndex, guest.memory(), state, RestoreMode.CLASSIC);
        };
    }

    /**
     * The final position of a queue whose device has taken {@code availCount} chains of one descriptor
     * each and published {@code availCount - inuse} of them, counting from the start: split
     * indices are the free-running 16-bit counters; packed ones are ring positions plus the wrap
     * counter, which starts at 1 and flips every lap.
     */
    QueuePosition finalPosition(int size, int availCount, int inuse) {
        int usedCount = availCount - inuse;
        return switch (this) {
            case SPLIT -> QueuePosition.split(availCount & 0xffff, usedCount & 0xffff, inuse);
            case PACKED -> QueuePosition.packed(availCount % size, (availCount / size) % 2 == 0,
                    usedCount % size, (usedCount / size) % 2 == 0, inuse);
        };
    }
}

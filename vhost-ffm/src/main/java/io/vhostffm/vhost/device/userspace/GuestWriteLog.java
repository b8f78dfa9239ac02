package io.vhostffm.vhost.device.userspace;

import io.vhostffm.vhost.device.DirtyLog;
import io.vhostffm.vring.QueueState;
import java.util.function.Supplier;

/**
 * Marks in the dirty log what one device queue writes into guest memory, as the kernel's vhost
 * logs it: each used element and the used index it publishes, the notification area it updates
 * ({@code avail_event} under event idx, else {@code used.flags}; a packed ring's device event
 * suppression structure), and the receive buffers it fills. The log in force is read at each
 * call, after the write it records, so a log started meanwhile misses no write that completed
 * after it started. Without a log every call does nothing. Allocation-free.
 *
 * <p>It follows the queue's used position itself (split: {@code used_idx}; packed: the ring
 * position and wrap, advanced by each chain's descriptor count), starting from the state the
 * queue was opened with, so no call to the queue is needed to know where it wrote.
 */
final class GuestWriteLog {
    private static final long SPLIT_USED_RING = 4;   // offsetof(struct virtq_used, ring)
    private static final long SPLIT_USED_ELEM = 8;   // sizeof(struct virtq_used_elem)
    private static final long SPLIT_USED_IDX = 2;    // offsetof(struct virtq_used, idx)
    private static final long PACKED_DESC = 16;      // sizeof(struct pvirtq_desc)

    private final Supplier<DirtyLog> logs;
    private final boolean packed;
    private final int size;
    private final long descAddress;
    private final long deviceArea;
    private final boolean eventIdx;
    private int usedPosition;

    GuestWriteLog(Supplier<DirtyLog> logs, QueueState opened) {
        this.logs = logs;
        this.packed = opened.geometry().packed();
        this.size = opened.geometry().size();
        this.descAddress = opened.geometry().descTableAddress();
        this.deviceArea = opened.geometry().deviceAreaAddress();
        this.eventIdx = opened.geometry().eventIdx();
        this.usedPosition = opened.position().usedIdx();
    }

    /**
     * Follows the used position from {@code usedIdx} (the queue's final position, set after this
     * log was built on a prestarted queue whose indices were not known yet).
     */
    void startAt(int usedIdx) {
        usedPosition = usedIdx;
    }

    /** One used element was published for {@code descriptorCount} ring slots (packed) / one head (split). */
    void usedElement(int descriptorCount) {
        DirtyLog log = logs.get();
        if (packed) {
            if (log != null) {
                log.mark(descAddress + PACKED_DESC * usedPosition, PACKED_DESC);
            }
            usedPosition = (usedPosition + descriptorCount) % size;
        } else {
            if (log != null) {
                log.mark(deviceArea + SPLIT_USED_RING + SPLIT_USED_ELEM * (usedPosition & (size - 1)), SPLIT_USED_ELEM);
            }
            usedPosition = (usedPosition + 1) & 0xffff;
        }
    }

    /** The used index was stored (split: {@code used.idx}; packed: nothing beyond the descriptors). */
    void usedIndex() {
        DirtyLog log = logs.get();
        if (log != null && !packed) {
            log.mark(deviceArea + SPLIT_USED_IDX, 2);
        }
    }

    /**
     * The queue enabled ({@code enabling}) or disabled notifications, updating its suppression
     * area, except a split ring under event idx, whose {@code avail_event} just stops moving
     * while notifications are off.
     */
    void notificationArea(boolean enabling) {
        DirtyLog log = logs.get();
        if (log == null || (!enabling && eventIdx && !packed)) {
            return;
        }
        if (packed) {
            log.mark(deviceArea, 4);
        } else if (eventIdx) {
            log.mark(deviceArea + SPLIT_USED_RING + SPLIT_USED_ELEM * size, 2); // avail_event
        } else {
            log.mark(deviceArea, 2); // used.flags
        }
    }

    /** {@code length} bytes were written at guest address {@code address}. */
    void buffer(long address, long length) {
        DirtyLog log = logs.get();
        if (log != null) {
            log.mark(address, length);
        }
    }

    /** Whether writes are logged at all. */
    boolean enabled() {
        return logs.get() != null;
    }
}

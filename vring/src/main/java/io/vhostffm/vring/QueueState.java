package io.vhostffm.vring;

import java.util.Objects;

/**
 * A device-side virtqueue as plain data, for saving and restoring it (live migration, device
 * reset, handing a queue to the kernel and back): where its rings lie ({@link QueueGeometry}) and
 * where the device stands in them ({@link QueuePosition}), plus two device-private fields a saved
 * queue reports and a restore re-derives.
 *
 * <p>Untrusted when restored: building the record checks nothing; {@link #validate} checks
 * everything a queue relies on and every restore calls it.
 *
 * <p>Which position fields are authoritative on restore depends on the format: a split ring's
 * used index and inuse live in guest memory too and are re-derived from it under
 * {@link RestoreMode#CLASSIC}, as QEMU's {@code virtio_load} does; a packed ring's cannot be, so
 * they are taken from here.
 *
 * @param geometry           where the rings lie and their format
 * @param position           where the device stands in them
 * @param shadowAvailIdx     the driver's available index as the device last read it (split: a
 *                           16-bit counter; packed: the last avail position). Reported only: a
 *                           restore re-reads it (split) or sets it to the last avail index (packed)
 * @param signalledUsedValid whether the next notification decision has a previous one to compare
 *                           with ({@code signalled_used_valid}). Reported only: a restore clears
 *                           it (one spare notification is harmless, a missed one hangs the guest)
 */
public record QueueState(QueueGeometry geometry, QueuePosition position, int shadowAvailIdx,
        boolean signalledUsedValid) {

    /** Both parts are required. */
    public QueueState {
        Objects.requireNonNull(geometry, "geometry");
        Objects.requireNonNull(position, "position");
    }

    /** A queue at {@code position} in the rings of {@code geometry}: shadow avail := last avail, no decision yet. */
    public static QueueState of(QueueGeometry geometry, QueuePosition position) {
        return new QueueState(geometry, position, position.lastAvailIdx(), false);
    }

    /** A fresh queue over {@code geometry}: {@link QueuePosition#initial} of its format. */
    public static QueueState fresh(QueueGeometry geometry) {
        return of(geometry, QueuePosition.initial(geometry.packed()));
    }

    /** This queue at another position (shadow avail := last avail, no decision yet). */
    public QueueState withPosition(QueuePosition newPosition) {
        return of(geometry, newPosition);
    }

    /**
     * Checks everything a queue relies on: the geometry against guest memory
     * ({@link QueueGeometry#validate}), that the position is of the geometry's format, and the
     * position against the queue size ({@link QueuePosition#check(int, int)}).
     *
     * @param queueIndex for the error message
     * @throws VirtqueueException ({@link VirtqueueException.Rule#INVALID_STATE}) naming the field
     */
    public void validate(int queueIndex, GuestMemory memory) {
        geometry.validate(queueIndex, memory);
        if (position.packed() != geometry.packed()) {
            throw VirtqueueException.state(queueIndex, "position.packed", position.packed() ? 1 : 0,
                    "the position is of a " + (position.packed() ? "packed" : "split") + " ring, the geometry of a "
                            + (geometry.packed() ? "packed" : "split") + " one");
        }
        position.check(queueIndex, geometry.size());
    }
}

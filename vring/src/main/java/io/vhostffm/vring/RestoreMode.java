package io.vhostffm.vring;

/**
 * How strictly {@link DeviceQueue#restoreState} treats the ring indices it finds in guest memory.
 */
public enum RestoreMode {
    /**
     * Classic load, guest paused: the driver's avail.idx must be at most the queue size ahead of
     * last_avail_idx, as QEMU's {@code virtio_load} checks; more is an error.
     */
    CLASSIC,
    /**
     * Early load during pre-copy, guest still running on the source: guest memory is still being
     * copied, so avail.idx may be anywhere. The check is skipped and the derived fields (used idx,
     * shadow avail idx, inuse) are reset to what last_avail_idx alone implies (used idx := last
     * avail idx, shadow := last avail idx and its wrap counter, inuse := 0); the final indices fix
     * them with {@link DeviceQueue#resync} at stop-and-copy.
     */
    EARLY
}

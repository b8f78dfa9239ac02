package io.vhostffm.vhost.vhostuser;

/**
 * {@code struct vhost_vring_addr} of SET_VRING_ADDR. The three ring addresses are the
 * frontend's own virtual addresses (translated through the memory table's
 * {@code userspace_addr}); the log address is guest-physical.
 *
 * @param index        the virtqueue
 * @param flags        {@link #LOG} or 0
 * @param descUser     descriptor table (split) or descriptor ring (packed)
 * @param usedUser     used ring (split) or device event suppression area (packed)
 * @param availUser    available ring (split) or driver event suppression area (packed)
 * @param logGuestAddr where the used ring is logged, guest-physical (meaningful with {@link #LOG})
 */
public record VringAddress(int index, int flags, long descUser, long usedUser, long availUser, long logGuestAddr) {
    /** VHOST_VRING_F_LOG: log writes to the used ring. */
    public static final int LOG = 0x1;

    /** Whether the used ring is to be logged. */
    public boolean logged() {
        return (flags & LOG) != 0;
    }
}

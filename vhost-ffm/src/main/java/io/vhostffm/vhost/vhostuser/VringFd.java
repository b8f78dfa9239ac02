package io.vhostffm.vhost.vhostuser;

/**
 * The u64 payload of SET_VRING_KICK, SET_VRING_CALL and SET_VRING_ERR: bits 0-7 the ring, bit 8
 * set when no descriptor comes with the message (the ring is then polled, or not notified).
 *
 * @param index the virtqueue
 * @param noFd  VHOST_USER_VRING_NOFD_MASK was set
 */
public record VringFd(int index, boolean noFd) {
    /** Bits 0-7: the ring index. */
    public static final long INDEX_MASK = 0xff;
    /** Bit 8: no descriptor in this message. */
    public static final long NOFD_MASK = 0x100;
}

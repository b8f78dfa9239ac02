package io.vhostffm.vhost.vhostuser;

/**
 * {@code struct vhost_vring_state}: a ring index and a number (size for SET_VRING_NUM, base for
 * SET/GET_VRING_BASE, enable for SET_VRING_ENABLE).
 *
 * @param index the virtqueue
 * @param num   the value (u32)
 */
public record VringState(int index, long num) {}

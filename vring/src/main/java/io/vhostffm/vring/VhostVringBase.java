package io.vhostffm.vring;

/**
 * The vhost vring base: a queue's position as the 32-bit {@code num} of
 * {@code struct vhost_vring_state} in {@code GET_VRING_BASE} / {@code SET_VRING_BASE}. The one
 * encoder and decoder of its three forms, each named after where it is used:
 *
 * <ul>
 *   <li><b>Split</b>, kernel ioctl and vhost-user alike: {@code num} is the 16-bit
 *       {@code last_avail_idx}; the used index is read from the used ring in guest memory.</li>
 *   <li><b>Kernel packed</b>, the {@code VHOST_GET/SET_VRING_BASE} ioctls of the kernel's vhost
 *       (vhost-vdpa), encoded as QEMU encodes it: bits 0-14 last avail idx, bit 15 avail wrap
 *       counter, bits 16-30 used idx, bit 31 used wrap counter.</li>
 *   <li><b>vhost-user packed</b>, the {@code VHOST_USER_GET/SET_VRING_BASE} messages: 16 bits,
 *       {@code (avail wrap counter << 15) | last_avail_idx}; no used position travels, so the
 *       decoded used position is the last avail one, with no chain in use.</li>
 * </ul>
 * An encoded value is an {@code int} holding the unsigned 32 bits as they go into the ioctl
 * argument or message; bit 31 makes it negative. Encoding checks ranges (a value that does not fit
 * is an {@link IllegalArgumentException} naming the field); decoding refuses bits a form does not
 * use, as the kernel does.
 */
public final class VhostVringBase {
    private static final int INDEX_15 = 0x7fff;
    private static final int WRAP_15 = 1 << 15;

    private VhostVringBase() {}

    // ---------------------------------------------------------------- split (kernel and vhost-user)

    /** Split form: the 16-bit last avail idx. */
    public static int encodeSplit(int lastAvailIdx) {
        // One test for the range [0, 65535]: a negative value has bits above 15 set too.
        if ((lastAvailIdx & ~0xffff) != 0) {
            throw new IllegalArgumentException("split last_avail_idx must be in [0, 65535]: " + lastAvailIdx);
        }
        return lastAvailIdx;
    }

    /**
     * Split form: the last avail idx.
     *
     * @throws IllegalArgumentException when bits above 15 are set (the kernel refuses those too)
     */
    public static int decodeSplit(int num) {
        if ((num & 0xffff_0000) != 0) {
            throw new IllegalArgumentException(String.format("split vring base 0x%x has bits above 15 set", num));
        }
        return num;
    }

    // ---------------------------------------------------------------- kernel ioctl, packed

    /** Kernel packed form: bits 0-14 last avail idx, 15 avail wrap, 16-30 used idx, 31 used wrap. */
    public static int encodeKernelPacked(int lastAvailIdx, boolean availWrapCounter, int usedIdx,
            boolean usedWrapCounter) {
        // One branch for both ranges [0, 32767] (a negative value has bits above 14 set too); the
        // cold path names the field.
        if (((lastAvailIdx | usedIdx) & ~INDEX_15) != 0) {
            throw packedRangeError(lastAvailIdx, usedIdx);
        }
        return lastAvailIdx | (availWrapCounter ? WRAP_15 : 0) | usedIdx << 16 | (usedWrapCounter ? 1 << 31 : 0);
    }

    /**
     * Kernel packed form: both positions and wrap counters; every 32-bit value is a valid
     * encoding. The form does not carry inuse: the caller gives it.
     */
    public static QueuePosition decodeKernelPacked(int num, int inuse) {
        return QueuePosition.packed(num & INDEX_15, (num & WRAP_15) != 0, (num >>> 16) & INDEX_15, num < 0, inuse);
    }

    /**
     * The kernel ioctl form of {@code position}: split or kernel packed as its format says.
     *
     * @throws IllegalArgumentException when an index does not fit the form
     */
    public static int encodeKernel(QueuePosition position) {
        return position.packed()
                ? encodeKernelPacked(position.lastAvailIdx(), position.lastAvailWrapCounter(), position.usedIdx(),
                        position.usedWrapCounter())
                : encodeSplit(position.lastAvailIdx());
    }

    // ---------------------------------------------------------------- vhost-user, packed

    /** vhost-user packed form: {@code (avail wrap counter << 15) | last_avail_idx}. */
    public static int encodeVhostUserPacked(int lastAvailIdx, boolean availWrapCounter) {
        if ((lastAvailIdx & ~INDEX_15) != 0) {
            throw new IllegalArgumentException("packed last_avail_idx must be in [0, 32767]: " + lastAvailIdx);
        }
        return lastAvailIdx | (availWrapCounter ? WRAP_15 : 0);
    }

    /**
     * vhost-user packed form: the last avail position and its wrap counter; the used position is
     * the same (the form carries none), with no chain in use.
     *
     * @throws IllegalArgumentException when bits above 15 are set
     */
    public static QueuePosition decodeVhostUserPacked(int num) {
        if ((num & 0xffff_0000) != 0) {
            throw new IllegalArgumentException(String.format(
                    "vhost-user packed vring base 0x%x has bits above 15 set", num));
        }
        int last = num & INDEX_15;
        boolean wrap = (num & WRAP_15) != 0;
        return QueuePosition.packed(last, wrap, last, wrap, 0);
    }

    /**
     * The vhost-user form of {@code position}: split, or vhost-user packed (its used position
     * is not carried).
     *
     * @throws IllegalArgumentException when an index does not fit the form
     */
    public static int encodeVhostUser(QueuePosition position) {
        return position.packed()
                ? encodeVhostUserPacked(position.lastAvailIdx(), position.lastAvailWrapCounter())
                : encodeSplit(position.lastAvailIdx());
    }

    private static IllegalArgumentException packedRangeError(int lastAvailIdx, int usedIdx) {
        if ((lastAvailIdx & ~INDEX_15) != 0) {
            return new IllegalArgumentException("packed last_avail_idx must be in [0, 32767]: " + lastAvailIdx);
        }
        return new IllegalArgumentException("packed used_idx must be in [0, 32767]: " + usedIdx);
    }
}

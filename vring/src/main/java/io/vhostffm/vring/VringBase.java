package io.vhostffm.vring;

/**
 * A queue's positions as the vhost {@code VHOST_GET_VRING_BASE} / {@code VHOST_SET_VRING_BASE}
 * ioctls carry them in the 32-bit {@code num} of {@code struct vhost_vring_state}.
 *
 * <ul>
 *   <li>Split: {@code num} is the 16-bit {@code last_avail_idx}; the used index is read from the
 *       used ring in guest memory instead.</li>
 *   <li>Packed (as QEMU and vhost-vdpa encode it): bits 0-14 last avail idx, bit 15 avail wrap
 *       counter, bits 16-30 used idx, bit 31 used wrap counter.</li>
 * </ul>
 * The encoded value is an {@code int} holding the unsigned 32 bits as they go into the ioctl
 * argument; bit 31 makes it negative.
 *
 * @param lastAvailIdx     last avail idx (split: 0-65535; packed: 0-32767)
 * @param availWrapCounter packed: the avail wrap counter; split: false
 * @param usedIdx          packed: the used idx (0-32767); split: not carried, 0 after decoding
 * @param usedWrapCounter  packed: the used wrap counter; split: false
 */
public record VringBase(int lastAvailIdx, boolean availWrapCounter, int usedIdx, boolean usedWrapCounter) {

    /** Split encoding: the 16-bit last avail idx. */
    public static int encodeSplit(int lastAvailIdx) {
        // One test for the range [0, 65535]: a negative value has bits above 15 set too.
        if ((lastAvailIdx & ~0xffff) != 0) {
            throw new IllegalArgumentException("split last_avail_idx must be in [0, 65535]: " + lastAvailIdx);
        }
        return lastAvailIdx;
    }

    /** Packed encoding: bits 0-14 last avail idx, 15 avail wrap, 16-30 used idx, 31 used wrap. */
    public static int encodePacked(int lastAvailIdx, boolean availWrapCounter, int usedIdx, boolean usedWrapCounter) {
        // One branch for both ranges [0, 32767] (a negative value has bits above 14 set too); the
        // cold path names the field.
        if (((lastAvailIdx | usedIdx) & ~0x7fff) != 0) {
            throw packedRangeError(lastAvailIdx, usedIdx);
        }
        return lastAvailIdx | (availWrapCounter ? 1 << 15 : 0) | usedIdx << 16 | (usedWrapCounter ? 1 << 31 : 0);
    }

    private static IllegalArgumentException packedRangeError(int lastAvailIdx, int usedIdx) {
        if ((lastAvailIdx & ~0x7fff) != 0) {
            return new IllegalArgumentException("packed last_avail_idx must be in [0, 32767]: " + lastAvailIdx);
        }
        return new IllegalArgumentException("packed used_idx must be in [0, 32767]: " + usedIdx);
    }

    /**
     * Split decoding.
     *
     * @throws IllegalArgumentException when bits above 15 are set (the kernel refuses those too)
     */
    public static VringBase decodeSplit(int num) {
        if ((num & 0xffff_0000) != 0) {
            throw new IllegalArgumentException(String.format("split vring base 0x%x has bits above 15 set", num));
        }
        return new VringBase(num, false, 0, false);
    }

    /** Packed decoding; every 32-bit value is a valid encoding. */
    public static VringBase decodePacked(int num) {
        return new VringBase(num & 0x7fff, (num & 1 << 15) != 0, (num >>> 16) & 0x7fff, (num & 1 << 31) != 0);
    }

    /** Decodes for the given format. */
    public static VringBase decode(int num, boolean packed) {
        return packed ? decodePacked(num) : decodeSplit(num);
    }

    /** Encodes for the given format. */
    public int encode(boolean packed) {
        return packed ? encodePacked(lastAvailIdx, availWrapCounter, usedIdx, usedWrapCounter)
                : encodeSplit(lastAvailIdx);
    }
}

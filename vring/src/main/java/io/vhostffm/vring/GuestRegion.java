package io.vhostffm.vring;

import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * One contiguous range of guest-physical memory and the host segment that backs it.
 *
 * @param guestAddress guest-physical address of the first byte
 * @param segment      host memory holding the region's bytes; its size is the region's size
 */
public record GuestRegion(long guestAddress, MemorySegment segment) {
    public GuestRegion {
        Objects.requireNonNull(segment, "segment");
        if (guestAddress < 0) {
            throw new IllegalArgumentException("guest address must be non-negative: 0x" + Long.toHexString(guestAddress));
        }
        if (segment.byteSize() == 0) {
            throw new IllegalArgumentException("empty region at 0x" + Long.toHexString(guestAddress));
        }
        if (guestAddress + segment.byteSize() < guestAddress) {
            throw new IllegalArgumentException("region at 0x" + Long.toHexString(guestAddress) + " wraps the address space");
        }
    }

    /** Size of the region in bytes. */
    public long size() {
        return segment.byteSize();
    }

    /** Guest-physical address one past the last byte. */
    public long guestEnd() {
        return guestAddress + segment.byteSize();
    }
}

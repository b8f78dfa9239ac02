package io.vhostffm.vring;

import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * The guest's physical memory as the device sees it: a few regions at guest-physical addresses,
 * with holes between them. Rings and payloads are read and written in place through the
 * segments this view hands out; nothing is copied.
 *
 * <p>Hot paths use {@link #findRegion} and {@link #region}, which allocate nothing; {@link #slice}
 * is for set-up and tests.
 */
public interface GuestMemory {

    /** The regions, sorted by guest address, non-overlapping. */
    List<GuestRegion> regions();

    /**
     * Index into {@link #regions()} of the region holding all of {@code [guestAddress,
     * guestAddress + length)}, or -1 when the range falls in a hole, crosses a region end, or
     * overflows. A zero length is held by the region that holds its address.
     */
    int findRegion(long guestAddress, long length);

    /** The region at an index returned by {@link #findRegion}. */
    default GuestRegion region(int index) {
        return regions().get(index);
    }

    /** Whether the whole range lies in one region. */
    default boolean contains(long guestAddress, long length) {
        return findRegion(guestAddress, length) >= 0;
    }

    /**
     * The host segment for a guest range, in place.
     *
     * @throws GuestMemoryException naming the address when the range is not held whole by one region
     */
    default MemorySegment slice(long guestAddress, long length) {
        int index = findRegion(guestAddress, length);
        if (index < 0) {
            throw new GuestMemoryException(guestAddress, length, describeMiss(guestAddress, length));
        }
        GuestRegion region = region(index);
        return region.segment().asSlice(guestAddress - region.guestAddress(), length);
    }

    /** Says why a range is not held: a hole, a region end crossed, or overflow. */
    default String describeMiss(long guestAddress, long length) {
        if (length < 0 || guestAddress < 0 || guestAddress + length < guestAddress) {
            return "overflows the guest address space";
        }
        for (GuestRegion r : regions()) {
            if (guestAddress >= r.guestAddress() && guestAddress < r.guestEnd()) {
                return String.format("crosses the end of region [0x%x, 0x%x)", r.guestAddress(), r.guestEnd());
            }
        }
        return "falls in a hole of guest memory";
    }

    /** A view over the given regions; see {@link RegionGuestMemory}. */
    static GuestMemory of(List<GuestRegion> regions) {
        return new RegionGuestMemory(regions);
    }
}

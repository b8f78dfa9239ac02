package io.vhostffm.vring;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.Objects;

/**
 * The guest's physical memory as the device sees it: a few regions at guest-physical addresses,
 * with holes between them. Rings and payloads are read and written in place through the
 * segments this view hands out; nothing is copied.
 *
 * <p>Hot paths use {@link #findRegion} and {@link #region}, which allocate nothing; {@link #slice}
 * (a segment over a guest range, in place) and the byte and little-endian value helpers
 * ({@link #read(long, byte[])}, {@link #write(long, byte[])}, {@link #readLe16} ... {@link
 * #writeLe64}) are for set-up, drivers and tests. Every access is bounds-checked: a range not
 * held whole by one region throws {@link GuestMemoryException} naming the address.
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

    /**
     * Copies {@code length} bytes at guest address {@code guestAddress} into {@code dst} from
     * {@code offset}.
     *
     * @throws GuestMemoryException naming the address when the range is not held whole by one region
     */
    default void read(long guestAddress, byte[] dst, int offset, int length) {
        Objects.checkFromIndexSize(offset, length, dst.length);
        MemorySegment.copy(slice(guestAddress, length), ValueLayout.JAVA_BYTE, 0, dst, offset, length);
    }

    /** Fills {@code dst} from guest address {@code guestAddress}; see {@link #read(long, byte[], int, int)}. */
    default void read(long guestAddress, byte[] dst) {
        read(guestAddress, dst, 0, dst.length);
    }

    /**
     * Copies {@code length} bytes of {@code src} from {@code offset} to guest address {@code
     * guestAddress}.
     *
     * @throws GuestMemoryException naming the address when the range is not held whole by one region
     */
    default void write(long guestAddress, byte[] src, int offset, int length) {
        Objects.checkFromIndexSize(offset, length, src.length);
        MemorySegment.copy(src, offset, slice(guestAddress, length), ValueLayout.JAVA_BYTE, 0, length);
    }

    /** Writes all of {@code src} at guest address {@code guestAddress}; see {@link #write(long, byte[], int, int)}. */
    default void write(long guestAddress, byte[] src) {
        write(guestAddress, src, 0, src.length);
    }

    /** The little-endian 16-bit value at {@code guestAddress} (any alignment). */
    default short readLe16(long guestAddress) {
        return slice(guestAddress, 2).get(GuestValues.LE16, 0);
    }

    /** The little-endian 32-bit value at {@code guestAddress} (any alignment). */
    default int readLe32(long guestAddress) {
        return slice(guestAddress, 4).get(GuestValues.LE32, 0);
    }

    /** The little-endian 64-bit value at {@code guestAddress} (any alignment). */
    default long readLe64(long guestAddress) {
        return slice(guestAddress, 8).get(GuestValues.LE64, 0);
    }

    /** Writes {@code value} little-endian at {@code guestAddress} (any alignment). */
    default void writeLe16(long guestAddress, short value) {
        slice(guestAddress, 2).set(GuestValues.LE16, 0, value);
    }

    /** Writes {@code value} little-endian at {@code guestAddress} (any alignment). */
    default void writeLe32(long guestAddress, int value) {
        slice(guestAddress, 4).set(GuestValues.LE32, 0, value);
    }

    /** Writes {@code value} little-endian at {@code guestAddress} (any alignment). */
    default void writeLe64(long guestAddress, long value) {
        slice(guestAddress, 8).set(GuestValues.LE64, 0, value);
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

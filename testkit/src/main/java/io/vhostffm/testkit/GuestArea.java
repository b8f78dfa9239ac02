package io.vhostffm.testkit;

/**
 * One named range of guest-physical memory in a {@link GuestLayout}: a ring part, a buffer area,
 * a memory region or the hole between regions.
 *
 * @param name what lives there, e.g. {@code "virtqueue 3 used ring"}
 * @param address guest-physical address of the first byte
 * @param size bytes, at least 1
 */
public record GuestArea(String name, long address, long size) {
    /** Checks the range. */
    public GuestArea {
        if (size <= 0 || address < 0 || address + size < address) {
            throw new IllegalArgumentException(name + ": range [0x" + Long.toHexString(address) + ", +" + size
                    + ") is empty or wraps");
        }
    }

    /** The first address after the area. */
    public long end() {
        return address + size;
    }

    /** Whether the two areas share a byte. */
    public boolean overlaps(GuestArea other) {
        return address < other.end() && other.address < end();
    }

    /** Whether {@code other} lies wholly inside this area. */
    public boolean contains(GuestArea other) {
        return other.address >= address && other.end() <= end();
    }

    /** Whether {@code guestAddress} lies inside this area. */
    public boolean contains(long guestAddress) {
        return guestAddress >= address && guestAddress < end();
    }

    @Override
    public String toString() {
        return name + " [0x" + Long.toHexString(address) + ", 0x" + Long.toHexString(end()) + ")";
    }
}

package io.vhostffm.vring;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * Guest memory made of a fixed list of regions. Lookup is a linear scan over a primitive array:
 * a VM has a handful of regions, and a scan beats a tree at that size without allocating.
 */
public final class RegionGuestMemory implements GuestMemory {
    private final List<GuestRegion> regions;
    private final long[] starts;
    private final long[] ends;

    /**
     * @throws IllegalArgumentException when regions overlap or the list is empty
     */
    public RegionGuestMemory(List<GuestRegion> regions) {
        if (regions.isEmpty()) {
            throw new IllegalArgumentException("guest memory needs at least one region");
        }
        List<GuestRegion> sorted = new ArrayList<>(regions);
        sorted.sort(Comparator.comparingLong(GuestRegion::guestAddress));
        for (int i = 1; i < sorted.size(); i++) {
            GuestRegion prev = sorted.get(i - 1);
            GuestRegion next = sorted.get(i);
            if (next.guestAddress() < prev.guestEnd()) {
                throw new IllegalArgumentException(String.format(
                        "regions overlap: [0x%x, 0x%x) and [0x%x, 0x%x)",
                        prev.guestAddress(), prev.guestEnd(), next.guestAddress(), next.guestEnd()));
            }
        }
        this.regions = List.copyOf(sorted);
        this.starts = new long[sorted.size()];
        this.ends = new long[sorted.size()];
        for (int i = 0; i < sorted.size(); i++) {
            starts[i] = sorted.get(i).guestAddress();
            ends[i] = sorted.get(i).guestEnd();
        }
    }

    @Override
    public List<GuestRegion> regions() {
        return regions;
    }

    @Override
    public GuestRegion region(int index) {
        return regions.get(index);
    }

    @Override
    public int findRegion(long guestAddress, long length) {
        long end = guestAddress + length;
        if (guestAddress < 0 || length < 0 || end < guestAddress) {
            return -1;
        }
        for (int i = 0; i < starts.length; i++) {
            if (guestAddress >= starts[i] && guestAddress < ends[i]) {
                return end <= ends[i] ? i : -1;
            }
        }
        return -1;
    }
}

package io.vhostffm.vhost.os;

import io.vhostffm.vring.GuestRegion;
import java.lang.foreign.MemorySegment;

/**
 * One guest-memory region backed by a memfd mapped MAP_SHARED: what vhost's
 * {@code struct vhost_memory_region} needs ({@link #guestAddress}, {@link #size},
 * {@link #userspaceAddress}) and what another process needs to map the same memory
 * ({@link #fd}, passed over SCM_RIGHTS).
 */
public final class MemfdRegion {
    private final FileDescriptor fd;
    private final GuestRegion region;

    MemfdRegion(FileDescriptor fd, GuestRegion region) {
        this.fd = fd;
        this.region = region;
    }

    /** The memfd; owned by the {@link MemfdGuestMemory}, closed with it. */
    public FileDescriptor fd() {
        return fd;
    }

    /** Guest-physical address of the first byte. */
    public long guestAddress() {
        return region.guestAddress();
    }

    /** Size in bytes. */
    public long size() {
        return region.size();
    }

    /** Address of the mapping in this process: {@code vhost_memory_region.userspace_addr}. */
    public long userspaceAddress() {
        return region.segment().address();
    }

    /** The mapped bytes; unusable (IllegalStateException) once the guest memory is closed. */
    public MemorySegment segment() {
        return region.segment();
    }

    /** As vring's region view. */
    public GuestRegion guestRegion() {
        return region;
    }

    @Override
    public String toString() {
        return String.format("[0x%x, 0x%x) at 0x%x, %s", guestAddress(), guestAddress() + size(), userspaceAddress(), fd);
    }
}

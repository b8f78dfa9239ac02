package io.vhostffm.vhost.vhostuser.backend;

import io.vhostffm.vhost.internal.CallState;
import io.vhostffm.vhost.internal.Libc;
import io.vhostffm.vhost.internal.LinuxConstants;
import io.vhostffm.vhost.internal.NativeErrors;
import io.vhostffm.vhost.device.DirtyLog;
import io.vhostffm.vhost.os.FileDescriptor;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.vhostuser.LogArea;
import io.vhostffm.vhost.vhostuser.MemoryRegion;
import io.vhostffm.vhost.vhostuser.VhostUserProtocolException;
import io.vhostffm.vhost.vhostuser.VhostUserRequest;
import io.vhostffm.vring.GuestMemory;
import io.vhostffm.vring.GuestRegion;
import io.vhostffm.vring.RegionGuestMemory;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * The frontend's guest memory as SET_MEM_TABLE describes it: each region's descriptor mapped
 * shared in this process, from its {@code mmap_offset}, and the translation of the frontend's
 * virtual addresses (SET_VRING_ADDR) to guest-physical ones.
 *
 * <p>A region is mapped only when its file is at least {@code mmap_offset + memory_size} bytes,
 * so no access inside a region runs past the file. The descriptors are closed once mapped (the
 * mappings keep the files). {@link #close()} unmaps everything: segments handed out then refuse
 * access instead of touching unmapped memory.
 */
final class FrontendMemory implements GuestMemory, AutoCloseable {
    private static final String SET_MEM_TABLE = VhostUserRequest.SET_MEM_TABLE.toString();

    private final Arena arena;
    private final List<MemoryRegion> table;
    private final RegionGuestMemory view;

    private FrontendMemory(Arena arena, List<MemoryRegion> table, List<GuestRegion> regions) {
        this.arena = arena;
        this.table = table;
        this.view = new RegionGuestMemory(regions);
    }

    /**
     * Maps {@code table}'s regions from {@code fds} (one per region, in order). Takes ownership of
     * the descriptors: they are closed whether mapping succeeds or not.
     *
     * @throws VhostUserProtocolException when a file is smaller than its region
     */
    static FrontendMemory map(List<MemoryRegion> table, List<FileDescriptor> fds) throws NativeCallException {
        Arena arena = Arena.ofShared();
        try {
            List<GuestRegion> regions = new ArrayList<>();
            for (int i = 0; i < table.size(); i++) {
                regions.add(new GuestRegion(table.get(i).guestAddress(), mapRegion(arena, i, table.get(i), fds.get(i))));
            }
            return new FrontendMemory(arena, List.copyOf(table), regions);
        } catch (NativeCallException | RuntimeException e) {
            arena.close();
            throw e;
        } finally {
            fds.forEach(FileDescriptor::close);
        }
    }

    /**
     * Maps the dirty log bitmap of SET_LOG_BASE from {@code fd} (taken: closed once mapped or on
     * failure). Unmapped when the log is closed.
     *
     * @throws VhostUserProtocolException when the file is too small or the offset not 8-aligned
     */
    static DirtyLog mapLog(LogArea area, FileDescriptor fd) throws NativeCallException {
        String request = VhostUserRequest.SET_LOG_BASE.toString();
        if (area.mmapOffset() % 8 != 0) {
            throw new VhostUserProtocolException(request, "mmap_offset", String.format(
                    "0x%x is not 8-byte aligned (the bitmap is accessed in 64-bit words)", area.mmapOffset()));
        }
        if (area.mmapSize() < 8) {
            throw new VhostUserProtocolException(request, "mmap_size", area.mmapSize() + " bytes, less than one 64-bit word");
        }
        Arena arena = Arena.ofShared();
        try (fd) {
            MemorySegment bitmap = mapShared(arena, fd, area.mmapOffset(), area.mmapSize(), request, "mmap_size");
            return DirtyLog.over(bitmap, () -> {
                if (arena.scope().isAlive()) {
                    arena.close();
                }
            });
        } catch (NativeCallException | RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    private static MemorySegment mapRegion(Arena arena, int i, MemoryRegion r, FileDescriptor fd) throws NativeCallException {
        return mapShared(arena, fd, r.mmapOffset(), r.size(), SET_MEM_TABLE, "regions[" + i + "].memory_size");
    }

    /** Maps {@code size} bytes of {@code fd} from {@code offset}, shared, read-write, when the file holds them. */
    @SuppressWarnings("restricted") // the size is the mapping's own, just made by mmap
    private static MemorySegment mapShared(Arena arena, FileDescriptor fd, long offset, long size, String request,
            String field) throws NativeCallException {
        int n = fd.acquire();
        try {
            CallState s = CallState.current();
            long fileSize = Libc.lseek(s, n, 0, LinuxConstants.SEEK_END);
            if (fileSize < 0) {
                throw NativeErrors.failure("lseek", fd, s.errno());
            }
            if (Long.compareUnsigned(fileSize, offset + size) < 0) {
                throw new VhostUserProtocolException(request, field, String.format(
                        "mmap_offset 0x%x + size 0x%x runs past the end of its file (%d bytes)", offset, size, fileSize));
            }
            // mmap wants a page-aligned file offset: map from the page the area starts in.
            long pageOffset = offset & ~(LinuxConstants.VHOST_PAGE_SIZE - 1L);
            long lead = offset - pageOffset;
            long length = lead + size;
            long address = Libc.mmap(s, 0, length, LinuxConstants.PROT_READ | LinuxConstants.PROT_WRITE,
                    LinuxConstants.MAP_SHARED, n, pageOffset);
            if (address == Libc.MAP_FAILED) {
                throw NativeErrors.failure("mmap", fd, s.errno());
            }
            MemorySegment mapping = MemorySegment.ofAddress(address).reinterpret(length, arena,
                    segment -> Libc.munmap(CallState.current(), segment.address(), length));
            return mapping.asSlice(lead, size);
        } finally {
            fd.release();
        }
    }

    /** The table this memory was mapped from. */
    List<MemoryRegion> table() {
        return table;
    }

    /**
     * The guest-physical address of the frontend's virtual address {@code userAddress}.
     *
     * @throws VhostUserProtocolException naming {@code request} and {@code field} when no region holds it
     */
    long toGuestPhysical(long userAddress, String request, String field) {
        for (MemoryRegion r : table) {
            long offset = userAddress - r.userspaceAddress();
            if (Long.compareUnsigned(userAddress, r.userspaceAddress()) >= 0 && Long.compareUnsigned(offset, r.size()) < 0) {
                return r.guestAddress() + offset;
            }
        }
        throw new VhostUserProtocolException(request, field, String.format(
                "frontend address 0x%x is in no region of the memory table", userAddress));
    }

    /** One past the highest guest-physical address. */
    long guestEnd() {
        long end = 0;
        for (MemoryRegion r : table) {
            end = Math.max(end, r.guestAddress() + r.size());
        }
        return end;
    }

    @Override
    public List<GuestRegion> regions() {
        return view.regions();
    }

    @Override
    public GuestRegion region(int index) {
        return view.region(index);
    }

    @Override
    public int findRegion(long guestAddress, long length) {
        return view.findRegion(guestAddress, length);
    }

    /** Unmaps every region. Idempotent. */
    @Override
    public void close() {
        if (arena.scope().isAlive()) {
            arena.close();
        }
    }
}

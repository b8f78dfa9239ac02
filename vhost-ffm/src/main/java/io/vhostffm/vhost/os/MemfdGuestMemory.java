package io.vhostffm.vhost.os;

import io.vhostffm.vhost.internal.CallState;
import io.vhostffm.vhost.internal.Libc;
import io.vhostffm.vhost.internal.LinuxConstants;
import io.vhostffm.vhost.internal.NativeErrors;
import io.vhostffm.vring.GuestMemory;
import io.vhostffm.vring.GuestRegion;
import io.vhostffm.vring.RegionGuestMemory;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * Guest memory made of memfds mapped MAP_SHARED, one per region, at arbitrary guest-physical
 * addresses with holes between them. Implements vring's {@link GuestMemory} (lookup is
 * {@link RegionGuestMemory}'s), and gives vhost what SET_MEM_TABLE needs.
 *
 * <p>Each region's memfd can be passed to another process (SCM_RIGHTS) and mapped there with
 * {@link #map}: both see the same pages. Regions made here are sealed against shrinking and
 * growing (F_SEAL_SHRINK, F_SEAL_GROW), and {@link #map} insists on that seal and on the file
 * being as large as the region: a file truncated under a mapping would turn a guest access into
 * SIGBUS, i.e. a JVM crash.
 *
 * <p>All mappings belong to one shared arena: {@link #close} unmaps them (every segment handed
 * out then throws IllegalStateException instead of touching unmapped memory) and closes the fds.
 */
public final class MemfdGuestMemory implements GuestMemory, AutoCloseable {
    /** vhost wants region addresses and sizes 4 KiB aligned (VHOST_PAGE_SIZE). */
    public static final long PAGE_SIZE = LinuxConstants.VHOST_PAGE_SIZE;

    /** Where a region goes and how big it is. */
    public record RegionSpec(long guestAddress, long size) {
        public RegionSpec {
            checkAligned("guest address", guestAddress);
            checkAligned("size", size);
            if (size <= 0) {
                throw new IllegalArgumentException("region size must be positive: " + size);
            }
        }
    }

    /** A region to map from a received memfd (the destination side of migration). */
    public record ReceivedRegion(long guestAddress, long size, FileDescriptor fd) {
        public ReceivedRegion {
            new RegionSpec(guestAddress, size);
            Objects.requireNonNull(fd, "fd");
        }
    }

    private final Arena arena;
    private final List<MemfdRegion> memfdRegions;
    private final RegionGuestMemory view;

    private MemfdGuestMemory(Arena arena, List<MemfdRegion> memfdRegions) {
        this.arena = arena;
        List<MemfdRegion> sorted = new ArrayList<>(memfdRegions);
        sorted.sort((a, b) -> Long.compare(a.guestAddress(), b.guestAddress()));
        this.memfdRegions = List.copyOf(sorted);
        this.view = new RegionGuestMemory(sorted.stream().map(MemfdRegion::guestRegion).toList());
    }

    /**
     * Creates one memfd per region (named {@code name-<index>}), sized, sealed and mapped.
     *
     * @throws IllegalArgumentException when regions overlap or are not page aligned
     */
    public static MemfdGuestMemory create(String name, List<RegionSpec> regions) throws NativeCallException {
        if (regions.isEmpty()) {
            throw new IllegalArgumentException("guest memory needs at least one region");
        }
        Arena arena = Arena.ofShared();
        List<FileDescriptor> fds = new ArrayList<>();
        try {
            List<MemfdRegion> made = new ArrayList<>();
            for (int i = 0; i < regions.size(); i++) {
                RegionSpec spec = regions.get(i);
                FileDescriptor fd = createMemfd(name + "-" + i, spec.size());
                fds.add(fd);
                made.add(new MemfdRegion(fd, new GuestRegion(spec.guestAddress(), mapShared(arena, fd, spec.size()))));
            }
            return new MemfdGuestMemory(arena, made);
        } catch (RuntimeException | NativeCallException e) {
            arena.close();
            fds.forEach(FileDescriptor::close);
            throw e;
        }
    }

    /**
     * Maps regions from memfds another process made (e.g. received over SCM_RIGHTS). Takes
     * ownership of the fds: they are closed with this memory, or at once if mapping fails.
     *
     * @throws IllegalArgumentException when a file is not sealed against shrinking or is smaller
     *         than its region
     */
    public static MemfdGuestMemory map(List<ReceivedRegion> regions) throws NativeCallException {
        if (regions.isEmpty()) {
            throw new IllegalArgumentException("guest memory needs at least one region");
        }
        Arena arena = Arena.ofShared();
        try {
            List<MemfdRegion> mapped = new ArrayList<>();
            for (ReceivedRegion r : regions) {
                checkSafeToMap(r);
                mapped.add(new MemfdRegion(r.fd(), new GuestRegion(r.guestAddress(), mapShared(arena, r.fd(), r.size()))));
            }
            return new MemfdGuestMemory(arena, mapped);
        } catch (RuntimeException | NativeCallException e) {
            arena.close();
            regions.forEach(r -> r.fd().close());
            throw e;
        }
    }

    private static FileDescriptor createMemfd(String name, long size) throws NativeCallException {
        CallState s = CallState.current();
        int n;
        try (Arena names = Arena.ofConfined()) {
            n = Libc.memfdCreate(s, names.allocateFrom(name), LinuxConstants.MFD_CLOEXEC | LinuxConstants.MFD_ALLOW_SEALING);
        }
        if (n < 0) {
            throw NativeErrors.failure("memfd_create", name, s.errno());
        }
        FileDescriptor fd = FileDescriptor.adopt(n, "memfd " + name);
        try {
            NativeErrors.check(Libc.ftruncate(s, n, size), "ftruncate", fd, s);
            NativeErrors.check(Libc.fcntl(s, n, LinuxConstants.F_ADD_SEALS,
                    LinuxConstants.F_SEAL_SHRINK | LinuxConstants.F_SEAL_GROW | LinuxConstants.F_SEAL_SEAL),
                    "fcntl(F_ADD_SEALS)", fd, s);
            return fd;
        } catch (NativeCallException e) {
            fd.close();
            throw e;
        }
    }

    private static void checkSafeToMap(ReceivedRegion r) throws NativeCallException {
        int n = r.fd().acquire();
        try {
            CallState s = CallState.current();
            int seals = NativeErrors.check(Libc.fcntl(s, n, LinuxConstants.F_GET_SEALS, 0), "fcntl(F_GET_SEALS)", r.fd(), s);
            if ((seals & LinuxConstants.F_SEAL_SHRINK) == 0) {
                throw new IllegalArgumentException(r.fd() + " for region at 0x" + Long.toHexString(r.guestAddress())
                        + " is not sealed against shrinking (F_SEAL_SHRINK): the sender could truncate it under our mapping");
            }
            long fileSize = NativeErrors.check(Libc.lseek(s, n, 0, LinuxConstants.SEEK_END), "lseek", r.fd(), s);
            if (fileSize < r.size()) {
                throw new IllegalArgumentException(String.format("%s for region at 0x%x holds %d bytes, the region needs %d",
                        r.fd(), r.guestAddress(), fileSize, r.size()));
            }
        } finally {
            r.fd().release();
        }
    }

    @SuppressWarnings("restricted") // the size is the mapping's own, just made by mmap
    private static MemorySegment mapShared(Arena arena, FileDescriptor fd, long size) throws NativeCallException {
        int n = fd.acquire();
        try {
            CallState s = CallState.current();
            long address = Libc.mmap(s, 0, size, LinuxConstants.PROT_READ | LinuxConstants.PROT_WRITE,
                    LinuxConstants.MAP_SHARED, n, 0);
            if (address == Libc.MAP_FAILED) {
                throw NativeErrors.failure("mmap", fd, s.errno());
            }
            // The arena's close runs munmap, after which the segment refuses access.
            return MemorySegment.ofAddress(address).reinterpret(size, arena,
                    segment -> Libc.munmap(CallState.current(), segment.address(), size));
        } finally {
            fd.release();
        }
    }

    private static void checkAligned(String what, long value) {
        if (value < 0 || (value & (PAGE_SIZE - 1)) != 0) {
            throw new IllegalArgumentException(what + " must be a non-negative multiple of 4096: 0x" + Long.toHexString(value));
        }
    }

    /** The regions with their fds and userspace addresses, sorted by guest address. */
    public List<MemfdRegion> memfdRegions() {
        return memfdRegions;
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

    /** Unmaps every region and closes every memfd; later calls do nothing. */
    @Override
    public void close() {
        if (arena.scope().isAlive()) {
            try {
                arena.close();
            } catch (IllegalStateException e) {
                if (arena.scope().isAlive()) {
                    throw e; // a segment is in use (e.g. passed to a downcall in flight): still mapped
                }
                // else: closed concurrently by another thread; nothing left to unmap
            }
        }
        memfdRegions.forEach(r -> r.fd().close());
    }

    @Override
    public String toString() {
        return "MemfdGuestMemory" + memfdRegions;
    }
}

package io.vhostffm.vhost.os;

import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.vhost.os.MemfdGuestMemory.ReceivedRegion;
import io.vhostffm.vhost.os.MemfdGuestMemory.RegionSpec;
import io.vhostffm.vhost.internal.CallState;
import io.vhostffm.vhost.internal.Libc;
import io.vhostffm.vhost.internal.LinuxConstants;
import io.vhostffm.vring.GuestMemoryException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

class MemfdGuestMemoryTest {
    private static final List<RegionSpec> THREE_REGIONS_WITH_HOLES = List.of(
            new RegionSpec(0x100000, 0x20000),
            new RegionSpec(0, 0x10000),
            new RegionSpec(0x40000000L, 0x1000));

    @Test
    void regionsSitAtTheirGuestAddressesWithHolesBetween() throws Exception {
        try (MemfdGuestMemory memory = MemfdGuestMemory.create("guest-ram", THREE_REGIONS_WITH_HOLES)) {
            assertEquals(3, memory.memfdRegions().size());
            assertEquals(0, memory.memfdRegions().get(0).guestAddress(), "sorted by guest address");
            for (MemfdRegion r : memory.memfdRegions()) {
                assertEquals(r.segment().address(), r.userspaceAddress());
                assertTrue(r.userspaceAddress() != 0 && (r.userspaceAddress() & 0xfff) == 0, "page-aligned mapping");
                assertTrue(Files.readSymbolicLink(Path.of("/proc/self/fd/" + r.fd().number())).toString().startsWith("/memfd:guest-ram-"));
            }
            memory.slice(0x100000 + 0x1000, 8).set(JAVA_LONG, 0, 0x1122334455667788L);
            assertEquals(0x1122334455667788L, memory.memfdRegions().get(1).segment().get(JAVA_LONG, 0x1000));
            memory.slice(0x40000000L + 0xff8, 8).set(JAVA_LONG, 0, 7);

            GuestMemoryException hole = assertThrows(GuestMemoryException.class, () -> memory.slice(0x20000, 8));
            assertEquals("guest range [0x20000, +8) falls in a hole of guest memory", hole.getMessage());
            GuestMemoryException crossing = assertThrows(GuestMemoryException.class, () -> memory.slice(0xfffc, 8));
            assertEquals("guest range [0xfffc, +8) crosses the end of region [0x0, 0x10000)", crossing.getMessage());
            assertEquals(-1, memory.findRegion(0x40001000L, 1));
        }
    }

    @Test
    void theSameMemfdMappedTwiceSharesPages() throws Exception {
        try (MemfdGuestMemory source = MemfdGuestMemory.create("guest-ram", THREE_REGIONS_WITH_HOLES)) {
            List<ReceivedRegion> handedOver = source.memfdRegions().stream().map(r -> {
                try {
                    return new ReceivedRegion(r.guestAddress(), r.size(), r.fd().duplicate("memfd received " + r.guestAddress()));
                } catch (NativeCallException e) {
                    throw new AssertionError(e);
                }
            }).toList();
            try (MemfdGuestMemory destination = MemfdGuestMemory.map(handedOver)) {
                MemorySegment there = destination.slice(0x100008, 8);
                MemorySegment here = source.slice(0x100008, 8);
                assertTrue(there.address() != here.address(), "two distinct mappings");
                here.set(JAVA_LONG, 0, 42);
                assertEquals(42, there.get(JAVA_LONG, 0));
                there.set(JAVA_LONG, 0, 43);
                assertEquals(43, here.get(JAVA_LONG, 0));
            }
            assertEquals(43, source.slice(0x100008, 8).get(JAVA_LONG, 0), "closing one mapping leaves the other");
        }
    }

    @Test
    void closeUnmapsSoSegmentsRefuseAccessInsteadOfCrashing() throws Exception {
        MemfdGuestMemory memory = MemfdGuestMemory.create("guest-ram", THREE_REGIONS_WITH_HOLES);
        MemorySegment kept = memory.slice(0, 8);
        FileDescriptor fd = memory.memfdRegions().get(0).fd();
        memory.close();
        memory.close();
        assertThrows(IllegalStateException.class, () -> kept.get(JAVA_LONG, 0));
        assertFalse(fd.isOpen());
    }

    @Test
    void refusesToMapAFileThatCouldShrinkUnderTheMapping() throws Exception {
        FileDescriptor unsealed = rawMemfd("unsealed", 0x2000, 0);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> MemfdGuestMemory.map(List.of(new ReceivedRegion(0, 0x2000, unsealed))));
        assertTrue(e.getMessage().contains("not sealed against shrinking"), e.getMessage());
        assertFalse(unsealed.isOpen(), "ownership was taken: closed on failure");
    }

    @Test
    void refusesToMapAFileSmallerThanTheRegion() throws Exception {
        FileDescriptor small = rawMemfd("small", 0x1000, LinuxConstants.F_SEAL_SHRINK);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> MemfdGuestMemory.map(List.of(new ReceivedRegion(0, 0x2000, small))));
        assertTrue(e.getMessage().endsWith("holds 4096 bytes, the region needs 8192"), e.getMessage());
    }

    @Test
    void rejectsUnalignedAndOverlappingRegions() {
        assertThrows(IllegalArgumentException.class, () -> new RegionSpec(0x800, 0x1000));
        assertThrows(IllegalArgumentException.class, () -> new RegionSpec(0, 0x1800));
        var before = FdLinks.snapshot();
        assertThrows(IllegalArgumentException.class, () -> MemfdGuestMemory.create("overlap",
                List.of(new RegionSpec(0, 0x2000), new RegionSpec(0x1000, 0x1000))));
        assertEquals(before, FdLinks.snapshot(), "the memfds made before the failure are closed");
    }

    @Test
    void tenThousandMemfdsCreateMapAndCloseWithoutLeak() throws Exception {
        var before = FdLinks.snapshot();
        List<RegionSpec> one = List.of(new RegionSpec(0, 0x1000));
        for (int i = 0; i < 10_000; i++) {
            try (MemfdGuestMemory memory = MemfdGuestMemory.create("leak-check", one)) {
                memory.slice(0, 8).set(JAVA_LONG, 0, i);
            }
        }
        assertEquals(before, FdLinks.snapshot());
    }

    /** A memfd made without the library's seals, as a careless sender would. */
    static FileDescriptor rawMemfd(String name, long size, int seals) throws NativeCallException {
        CallState s = CallState.current();
        try (Arena arena = Arena.ofConfined()) {
            int n = Libc.memfdCreate(s, arena.allocateFrom(name), LinuxConstants.MFD_CLOEXEC | LinuxConstants.MFD_ALLOW_SEALING);
            assertTrue(n >= 0);
            assertEquals(0, Libc.ftruncate(s, n, size));
            if (seals != 0) {
                assertEquals(0, Libc.fcntl(s, n, LinuxConstants.F_ADD_SEALS, seals));
            }
            return FileDescriptor.adopt(n, "memfd " + name);
        }
    }
}

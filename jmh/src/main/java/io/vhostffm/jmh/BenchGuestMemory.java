package io.vhostffm.jmh;

import io.vhostffm.vring.GuestMemory;
import io.vhostffm.vring.GuestRegion;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * Guest memory for ring benchmarks: one arena-backed region at a guest address above 0, and a
 * bump allocator that hands out guest addresses in it for ring areas, indirect tables and
 * payload buffers. The benchmark plays the guest, so it places everything itself.
 */
final class BenchGuestMemory implements AutoCloseable {
    /** Guest-physical address of the region: not 0, so an address mix-up cannot go unnoticed. */
    static final long BASE = 0x4000_0000L;

    private final Arena arena = Arena.ofShared();
    private final MemorySegment segment;
    private final GuestMemory memory;
    private long next = BASE;

    BenchGuestMemory(long bytes) {
        segment = arena.allocate(bytes, 4096);
        memory = GuestMemory.of(List.of(new GuestRegion(BASE, segment)));
    }

    /** The guest memory view the queues work on. */
    GuestMemory memory() {
        return memory;
    }

    /**
     * Reserves {@code bytes} at the next multiple of {@code alignment} (a power of two).
     *
     * @return the guest address of the reserved range
     * @throws IllegalStateException when the region is full (the benchmark sized it wrong)
     */
    long allocate(long bytes, long alignment) {
        long address = (next + alignment - 1) & -alignment;
        if (address + bytes > BASE + segment.byteSize()) {
            throw new IllegalStateException("bench guest memory of " + segment.byteSize() + " bytes is full");
        }
        next = address + bytes;
        return address;
    }

    @Override
    public void close() {
        arena.close();
    }
}

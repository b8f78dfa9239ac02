package io.vhostffm.vring;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;

/**
 * Test guest memory for fuzzing: two small regions with a hole between them in guest-physical
 * space, both carved out of one host segment with canary bytes before, between and after them.
 * A device that wrote outside the guest's regions would overwrite a canary; {@link #checkGuards}
 * fails when one changed. {@link #checkInside} checks that a host segment handed out for a guest
 * buffer lies inside the region that holds it.
 *
 * <p>Made once and {@link #reset} for each fuzz execution (the regions loaded afresh, the canaries
 * painted again): the memory, its mapping and the guard layout are the same for every input, so
 * nothing per execution depends on a new allocation. {@link #save} and {@link #unchangedSinceSave}
 * compare guest memory with a copy taken before a step, without allocating.
 *
 * <pre>
 * host:  [guard][region 0][guard][region 1][guard]
 * guest: region 0 at LOW, region 1 at HIGH, a hole between LOW_END and HIGH
 * </pre>
 */
final class GuardedGuestMemory implements AutoCloseable {
    static final long LOW = 0x0;
    static final long LOW_SIZE = 0x400;
    static final long HIGH = 0x1000;
    static final long HIGH_SIZE = 0x400;
    static final long GUARD = 0x100;
    private static final byte CANARY = (byte) 0xA5;

    private final Arena arena = Arena.ofShared();
    private final MemorySegment host;
    private final MemorySegment[] guards;
    /** GUARD canary bytes: what every guard must equal. */
    private final MemorySegment canaries;
    /** The regions' bytes at the last {@link #save}, region after region. */
    private final MemorySegment saved;
    final GuestMemory memory;

    GuardedGuestMemory() {
        host = arena.allocate(3 * GUARD + LOW_SIZE + HIGH_SIZE, 16);
        canaries = arena.allocate(GUARD, 16).fill(CANARY);
        saved = arena.allocate(LOW_SIZE + HIGH_SIZE, 16);
        MemorySegment low = host.asSlice(GUARD, LOW_SIZE);
        MemorySegment high = host.asSlice(2 * GUARD + LOW_SIZE, HIGH_SIZE);
        guards = new MemorySegment[] {
            host.asSlice(0, GUARD),
            host.asSlice(GUARD + LOW_SIZE, GUARD),
            host.asSlice(2 * GUARD + LOW_SIZE + HIGH_SIZE, GUARD)};
        for (MemorySegment guard : guards) {
            guard.fill(CANARY);
        }
        memory = GuestMemory.of(List.of(new GuestRegion(LOW, low), new GuestRegion(HIGH, high)));
    }

    /** Loads both regions from the images (zero past their ends) and paints every canary again. */
    void reset(byte[] low, byte[] high) {
        for (MemorySegment guard : guards) {
            guard.fill(CANARY);
        }
        load(0, low);
        load(1, high);
    }

    /** Fills region {@code index} from {@code image} (zero past its end). */
    void load(int index, byte[] image) {
        MemorySegment segment = memory.region(index).segment();
        segment.fill((byte) 0);
        MemorySegment.copy(image, 0, segment, ValueLayout.JAVA_BYTE, 0, (int) Math.min(image.length, segment.byteSize()));
    }

    /** Copies every byte of guest memory aside, for {@link #unchangedSinceSave}. */
    void save() {
        MemorySegment.copy(memory.region(0).segment(), 0, saved, 0, LOW_SIZE);
        MemorySegment.copy(memory.region(1).segment(), 0, saved, LOW_SIZE, HIGH_SIZE);
    }

    /**
     * The first guest address whose byte differs from the last {@link #save}, or -1 when none
     * does: byte for byte the same comparison as of two snapshots.
     */
    long changedSinceSave() {
        long low = MemorySegment.mismatch(memory.region(0).segment(), 0, LOW_SIZE, saved, 0, LOW_SIZE);
        if (low >= 0) {
            return LOW + low;
        }
        long high = MemorySegment.mismatch(memory.region(1).segment(), 0, HIGH_SIZE, saved, LOW_SIZE,
                LOW_SIZE + HIGH_SIZE);
        return high >= 0 ? HIGH + high : -1;
    }

    /** Fails when a canary byte around or between the regions changed. */
    void checkGuards() {
        for (MemorySegment guard : guards) {
            long at = MemorySegment.mismatch(guard, 0, GUARD, canaries, 0, GUARD);
            if (at >= 0) {
                throw new AssertionError("guard byte at host offset " + (guard.address() - host.address() + at)
                        + " overwritten: the device wrote outside guest memory");
            }
        }
    }

    /** Fails unless {@code segment} is exactly guest {@code [address, address + length)} inside its region. */
    void checkInside(MemorySegment segment, long address, long length) {
        int index = memory.findRegion(address, length);
        if (index < 0) {
            throw new AssertionError("buffer [0x" + Long.toHexString(address) + ", +" + length + ") not in guest memory");
        }
        GuestRegion region = memory.region(index);
        long expected = region.segment().address() + (address - region.guestAddress());
        if (segment.address() != expected || segment.byteSize() != length) {
            throw new AssertionError("buffer at 0x" + Long.toHexString(address) + " maps to host 0x"
                    + Long.toHexString(segment.address()) + "+" + segment.byteSize() + ", expected 0x"
                    + Long.toHexString(expected) + "+" + length);
        }
    }

    @Override
    public void close() {
        arena.close();
    }
}

package io.vhostffm.vring;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.List;

/**
 * Test guest memory for fuzzing: two small regions with a hole between them in guest-physical
 * space, both carved out of one host segment with canary bytes before, between and after them.
 * A device that wrote outside the guest's regions would overwrite a canary; {@link #checkGuards}
 * fails when one changed. {@link #checkInside} checks that a host segment handed out for a guest
 * buffer lies inside the region that holds it.
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

    private final Arena arena = Arena.ofConfined();
    private final MemorySegment host;
    private final MemorySegment[] guards;
    final GuestMemory memory;

    GuardedGuestMemory() {
        host = arena.allocate(3 * GUARD + LOW_SIZE + HIGH_SIZE, 16);
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

    /** Fills region {@code index} from {@code image} (zero past its end). */
    void load(int index, byte[] image) {
        MemorySegment segment = memory.region(index).segment();
        segment.fill((byte) 0);
        MemorySegment.copy(image, 0, segment, ValueLayout.JAVA_BYTE, 0, (int) Math.min(image.length, segment.byteSize()));
    }

    /** Every byte of guest memory, region after region. */
    byte[] snapshot() {
        byte[] low = memory.region(0).segment().toArray(ValueLayout.JAVA_BYTE);
        byte[] high = memory.region(1).segment().toArray(ValueLayout.JAVA_BYTE);
        byte[] all = Arrays.copyOf(low, low.length + high.length);
        System.arraycopy(high, 0, all, low.length, high.length);
        return all;
    }

    /** Fails when a canary byte around or between the regions changed. */
    void checkGuards() {
        for (MemorySegment guard : guards) {
            for (long i = 0; i < guard.byteSize(); i++) {
                if (guard.get(ValueLayout.JAVA_BYTE, i) != CANARY) {
                    throw new AssertionError("guard byte at host offset " + (guard.address() - host.address() + i)
                            + " overwritten: the device wrote outside guest memory");
                }
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

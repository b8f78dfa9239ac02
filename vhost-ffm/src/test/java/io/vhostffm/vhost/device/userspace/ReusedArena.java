package io.vhostffm.vhost.device.userspace;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * An arena over one segment allocated once, handed out again from its start after each {@link
 * #close}: a fuzz target builds a datapath per input (iovec arrays, overflow buffers, pollfds,
 * about 200 KiB), and a fresh arena's malloc, free and page faults per input cost more than the
 * input itself. Each allocation is zeroed, as a JDK arena's is. Its segments stay valid after a
 * close (they are the next input's memory): the datapath they were given to must be gone by
 * then. Not thread-safe.
 */
final class ReusedArena implements Arena {
    private final MemorySegment memory;
    private long used;

    ReusedArena(long bytes) {
        memory = Arena.ofAuto().allocate(bytes, 4096);
    }

    @Override
    public MemorySegment allocate(long byteSize, long byteAlignment) {
        long start = (used + byteAlignment - 1) & -byteAlignment;
        if (start + byteSize > memory.byteSize()) {
            throw new IllegalStateException("reused arena of " + memory.byteSize() + " bytes: no room for "
                    + byteSize + " more after " + used);
        }
        used = start + byteSize;
        return memory.asSlice(start, byteSize).fill((byte) 0);
    }

    @Override
    public MemorySegment.Scope scope() {
        return memory.scope();
    }

    /** Hands the memory out again from its start. */
    @Override
    public void close() {
        used = 0;
    }
}

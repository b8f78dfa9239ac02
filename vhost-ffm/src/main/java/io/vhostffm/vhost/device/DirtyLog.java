package io.vhostffm.vhost.device;

import io.vhostffm.vhost.os.FileDescriptor;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vring.GuestMemory;
import io.vhostffm.vring.GuestRegion;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.util.List;
import java.util.function.LongConsumer;
import java.util.stream.LongStream;

/**
 * The dirty page log of live migration: one bit per 4 KiB guest page ({@code VHOST_PAGE_SIZE}),
 * page {@code p} at bit {@code p % 8} of byte {@code p / 8}, in a memfd mapped shared. It is the
 * layout the kernel's vhost writes: {@code VHOST_SET_LOG_BASE} takes {@link #userspaceAddress()},
 * and vhost sets bits with atomic bit operations on that userspace memory. The Java side (the
 * userspace datapath, the control queue) marks the same bitmap with {@link #mark}, also
 * atomically. On little-endian x86-64 the byte/bit layout is the same as 64-bit words with page
 * {@code p} at bit {@code p % 64} of word {@code p / 64}, which is how this class accesses it.
 *
 * <p>Migration fetches and clears the log with {@link #fetchAndClear}: each word is swapped with
 * 0 atomically ({@code getAndSet}), so a bit set concurrently by the kernel is either in this
 * round or the next, never lost.
 *
 * <p>Sized for the highest guest address at creation: marking beyond it is refused
 * ({@link IndexOutOfBoundsException}), so neither side can write outside the bitmap.
 */
public final class DirtyLog implements AutoCloseable {
    /** Bytes of guest memory one bit stands for (VHOST_PAGE_SIZE). */
    public static final long PAGE_SIZE = 4096;
    private static final int PAGE_SHIFT = 12;
    private static final VarHandle WORD = ValueLayout.JAVA_LONG.varHandle();

    /** The memfd holding the bitmap; null for a log over a mapping made elsewhere ({@link #over}). */
    private final MemfdGuestMemory backing;
    private final Runnable release;
    private final MemorySegment bitmap;
    private final long words;
    private final long coveredBytes;

    private DirtyLog(MemfdGuestMemory backing, long coveredBytes) {
        this.backing = backing;
        this.release = backing::close;
        this.bitmap = backing.memfdRegions().get(0).segment();
        this.coveredBytes = coveredBytes;
        this.words = (coveredBytes / PAGE_SIZE + 63) / 64;
    }

    private DirtyLog(MemorySegment bitmap, Runnable release) {
        this.backing = null;
        this.release = release;
        this.bitmap = bitmap;
        this.words = bitmap.byteSize() / 8;
        this.coveredBytes = words * 64 * PAGE_SIZE;
    }

    /**
     * A log over a bitmap mapped elsewhere, e.g. the shared memory a vhost-user frontend hands
     * over with SET_LOG_BASE: same layout, covering {@code [0, 64 pages per whole 8-byte word)}.
     * {@link #close()} runs {@code release} (which unmaps it); {@link #fd()} is not available.
     *
     * @throws IllegalArgumentException when the bitmap is not 8-byte aligned or holds no whole word
     */
    public static DirtyLog over(MemorySegment bitmap, Runnable release) {
        if (bitmap.address() % 8 != 0 || bitmap.byteSize() < 8) {
            throw new IllegalArgumentException(String.format("a dirty log bitmap needs whole 8-byte words, 8-aligned: "
                    + "%d bytes at 0x%x", bitmap.byteSize(), bitmap.address()));
        }
        return new DirtyLog(bitmap, java.util.Objects.requireNonNull(release, "release"));
    }

    /** A log covering guest addresses {@code [0, guestEnd)}, all clear. */
    public static DirtyLog create(long guestEnd) throws NativeCallException {
        if (guestEnd <= 0) {
            throw new IllegalArgumentException("guest end must be positive: " + guestEnd);
        }
        long pages = (guestEnd + PAGE_SIZE - 1) / PAGE_SIZE;
        long bytes = (pages + 63) / 64 * 8;
        long mapped = (bytes + PAGE_SIZE - 1) / PAGE_SIZE * PAGE_SIZE;
        // A one-region memfd mapping is exactly what the bitmap needs: shared, sealed against
        // resizing (no SIGBUS), passable to another process, unmapped on close.
        MemfdGuestMemory backing = MemfdGuestMemory.create("vhost-dirty-log",
                List.of(new MemfdGuestMemory.RegionSpec(0, mapped)));
        return new DirtyLog(backing, pages * PAGE_SIZE);
    }

    /** A log covering all of {@code memory}: up to the end of its highest region. */
    public static DirtyLog covering(GuestMemory memory) throws NativeCallException {
        long end = 0;
        for (GuestRegion r : memory.regions()) {
            end = Math.max(end, r.guestEnd());
        }
        return create(end);
    }

    /** Where the bitmap is mapped in this process: the argument of VHOST_SET_LOG_BASE. */
    public long userspaceAddress() {
        return bitmap.address();
    }

    /**
     * The memfd holding the bitmap (owned by this log).
     *
     * @throws IllegalStateException for a log made with {@link #over}, which has no memfd of its own
     */
    public FileDescriptor fd() {
        if (backing == null) {
            throw new IllegalStateException("this dirty log is over a mapping made elsewhere; it has no memfd of its own");
        }
        return backing.memfdRegions().get(0).fd();
    }

    /** Guest bytes covered: {@code [0, coveredBytes())}, a whole number of pages. */
    public long coveredBytes() {
        return coveredBytes;
    }

    /**
     * Marks every page touched by {@code [guestAddress, guestAddress + length)} dirty. Atomic per
     * word (getAndBitwiseOr), safe against the kernel and other threads marking and fetching.
     * No allocation.
     *
     * @throws IndexOutOfBoundsException when the range is not inside the covered bytes
     */
    public void mark(long guestAddress, long length) {
        if (length <= 0) {
            return;
        }
        if (guestAddress < 0 || guestAddress > coveredBytes - length) {
            throw new IndexOutOfBoundsException(String.format(
                    "dirty log: [0x%x, +0x%x) is outside the logged guest range [0, 0x%x)", guestAddress, length, coveredBytes));
        }
        long first = guestAddress >>> PAGE_SHIFT;
        long last = (guestAddress + length - 1) >>> PAGE_SHIFT;
        for (long page = first; page <= last; ) {
            long word = page >>> 6;
            long wordEndPage = (word << 6) + 63;
            long upTo = Math.min(last, wordEndPage);
            int from = (int) (page & 63);
            int to = (int) (upTo & 63);
            long bits = (to == 63 ? -1L : (1L << (to + 1)) - 1) & (-1L << from);
            WORD.getAndBitwiseOr(bitmap, word * 8, bits);
            page = upTo + 1;
        }
    }

    /** Whether a page is marked (does not clear it). */
    public boolean isDirty(long guestAddress) {
        long page = guestAddress >>> PAGE_SHIFT;
        if (guestAddress < 0 || guestAddress >= coveredBytes) {
            return false;
        }
        return ((long) WORD.getVolatile(bitmap, (page >>> 6) * 8) & (1L << (page & 63))) != 0;
    }

    /**
     * Hands every dirty page's guest address to {@code pageAddress}, in ascending order, clearing
     * the log as it goes (each word swapped with 0 atomically). No allocation.
     *
     * @return the number of dirty pages
     */
    public long fetchAndClear(LongConsumer pageAddress) {
        long count = 0;
        for (long w = 0; w < words; w++) {
            // Plain read first: most words are 0, and an atomic swap of a 0 word costs a locked op.
            if ((long) WORD.get(bitmap, w * 8) == 0) {
                continue;
            }
            long bits = (long) WORD.getAndSet(bitmap, w * 8, 0L);
            while (bits != 0) {
                int bit = Long.numberOfTrailingZeros(bits);
                bits &= bits - 1;
                pageAddress.accept(((w << 6) + bit) << PAGE_SHIFT);
                count++;
            }
        }
        return count;
    }

    /** The dirty pages' guest addresses, ascending, clearing the log. */
    public long[] fetchAndClear() {
        LongStream.Builder pages = LongStream.builder();
        fetchAndClear(pages::add);
        return pages.build().toArray();
    }

    /** Clears the log, dropping what it held. */
    public void clear() {
        fetchAndClear(page -> {});
    }

    /** Unmaps the bitmap and closes its memfd. Stop every writer (SET_LOG_BASE elsewhere) first. */
    @Override
    public void close() {
        release.run();
    }

    @Override
    public String toString() {
        return String.format("DirtyLog[0, 0x%x) at 0x%x", coveredBytes, bitmap.address());
    }
}

package io.vhostffm.vhost;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.util.Arrays;

/**
 * The dirty page log of live migration, in vhost's format: one bit per 4 KiB guest-physical page
 * ({@code VHOST_PAGE_SIZE}), bit {@code n} is bit {@code n % 8} of byte {@code n / 8}, which on a
 * little-endian machine is bit {@code n % 64} of 64-bit word {@code n / 64}. The kernel's vhost
 * sets bits in the same memory (VHOST_SET_LOG_BASE takes {@link #bitmap()}'s address), the
 * userspace datapath sets them with {@link #mark}, migration {@link #fetchAndClear fetches and
 * clears} them.
 *
 * <p>Thread-safe and lock-free: marking is an atomic OR of one 64-bit word per 64 pages, fetching
 * an atomic exchange with zero, so a bit set concurrently is seen now or by the next fetch, never
 * lost. {@link #mark} allocates nothing.
 */
public final class DirtyLog {
    /** Bytes per logged page (VHOST_PAGE_SIZE). */
    public static final long PAGE_SIZE = 4096;
    private static final int PAGE_SHIFT = 12;
    private static final VarHandle WORD = ValueLayout.JAVA_LONG.varHandle();

    private final MemorySegment bitmap;
    private final long pages;

    private DirtyLog(MemorySegment bitmap) {
        if (bitmap.isNative() && (bitmap.address() & 7) != 0) {
            throw new IllegalArgumentException("the log bitmap must be 8-byte aligned: 0x" + Long.toHexString(bitmap.address()));
        }
        if (!bitmap.isNative()) {
            throw new IllegalArgumentException("the log bitmap must be native memory (the kernel writes it too)");
        }
        if (bitmap.byteSize() % 8 != 0 || bitmap.byteSize() == 0) {
            throw new IllegalArgumentException("the log bitmap must be a non-empty whole number of 64-bit words: "
                    + bitmap.byteSize() + " bytes");
        }
        this.bitmap = bitmap;
        this.pages = bitmap.byteSize() * 8;
    }

    /** Bytes of bitmap needed to cover guest-physical addresses {@code [0, guestSpan)}, in whole words. */
    public static long bitmapBytes(long guestSpan) {
        if (guestSpan <= 0) {
            throw new IllegalArgumentException("guest span must be positive: " + guestSpan);
        }
        long pages = (guestSpan + PAGE_SIZE - 1) >>> PAGE_SHIFT;
        return ((pages + 63) >>> 6) * 8;
    }

    /** A zeroed log covering guest-physical {@code [0, guestSpan)}, allocated in {@code arena}. */
    public static DirtyLog allocate(Arena arena, long guestSpan) {
        return new DirtyLog(arena.allocate(bitmapBytes(guestSpan), 8));
    }

    /** A log over existing memory (e.g. a shared memfd mapping), which is used as it is (not cleared). */
    public static DirtyLog over(MemorySegment bitmap) {
        return new DirtyLog(bitmap);
    }

    /** The bitmap itself: VHOST_SET_LOG_BASE gets its address. */
    public MemorySegment bitmap() {
        return bitmap;
    }

    /** Pages the log covers. */
    public long pages() {
        return pages;
    }

    /**
     * Marks every page that {@code [guestAddress, guestAddress + length)} touches; a zero length
     * marks nothing.
     *
     * @throws IndexOutOfBoundsException when the range reaches beyond the pages the log covers
     */
    public void mark(long guestAddress, long length) {
        if (length == 0) {
            return;
        }
        long first = guestAddress >>> PAGE_SHIFT;
        long last = (guestAddress + length - 1) >>> PAGE_SHIFT;
        if (guestAddress < 0 || length < 0 || last >= pages || last < first) {
            throw new IndexOutOfBoundsException("dirty log of " + pages + " pages: cannot mark 0x"
                    + Long.toHexString(guestAddress) + " + " + length);
        }
        for (long page = first; page <= last; ) {
            long word = page >>> 6;
            long upTo = Math.min(last, (word << 6) + 63);
            long bits = rangeBits((int) (page & 63), (int) (upTo & 63));
            // Atomic OR: the kernel and other datapath threads set bits in the same word.
            WORD.getAndBitwiseOr(bitmap, word * 8, bits);
            page = upTo + 1;
        }
    }

    private static long rangeBits(int from, int to) {
        long upper = to == 63 ? -1L : (1L << (to + 1)) - 1;
        return upper & (-1L << from);
    }

    /** Whether {@code page} (a guest-physical address divided by {@link #PAGE_SIZE}) is marked. */
    public boolean isDirty(long page) {
        if (page < 0 || page >= pages) {
            throw new IndexOutOfBoundsException("page " + page + " of " + pages);
        }
        long word = (long) WORD.getVolatile(bitmap, (page >>> 6) * 8);
        return (word & (1L << (page & 63))) != 0;
    }

    /**
     * Returns the marked pages in ascending order and clears them, word by word with an atomic
     * exchange (a page marked meanwhile appears now or in the next fetch).
     */
    public long[] fetchAndClear() {
        long[] found = new long[64];
        int count = 0;
        long words = pages >>> 6;
        for (long w = 0; w < words; w++) {
            if ((long) WORD.getVolatile(bitmap, w * 8) == 0) {
                continue;
            }
            long bits = (long) WORD.getAndSet(bitmap, w * 8, 0L);
            while (bits != 0) {
                int bit = Long.numberOfTrailingZeros(bits);
                bits &= bits - 1;
                if (count == found.length) {
                    found = Arrays.copyOf(found, count * 2);
                }
                found[count++] = (w << 6) + bit;
            }
        }
        return Arrays.copyOf(found, count);
    }

    /** Clears every bit (e.g. when logging starts). */
    public void clear() {
        long words = pages >>> 6;
        for (long w = 0; w < words; w++) {
            WORD.setVolatile(bitmap, w * 8, 0L);
        }
    }

    @Override
    public String toString() {
        return "DirtyLog[" + pages + " pages at 0x" + Long.toHexString(bitmap.address()) + "]";
    }
}

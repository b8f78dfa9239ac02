package io.vhostffm.vhost.device.userspace;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

import io.vhostffm.vhost.os.Errno;
import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.FileDescriptor;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.internal.CallState;
import io.vhostffm.vhost.internal.Libc;
import io.vhostffm.vhost.internal.NativeErrors;
import io.vhostffm.vhost.virtio.net.RxFilter;
import io.vhostffm.vring.DescriptorChain;
import io.vhostffm.vring.DeviceQueue;
import io.vhostffm.vring.GuestMemory;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;
import io.vhostffm.vhost.virtio.net.VirtioNetHeader;

/**
 * TAP to guest for one receive queue, with mergeable receive buffers (VIRTIO_NET_F_MRG_RXBUF,
 * header {@code virtio_net_hdr_v1}, 12 bytes).
 *
 * <p>A TAP cannot be asked how long its next frame is (vhost-net peeks inside the kernel), so
 * this path reads only when the chains it holds cover the longest frame the TAP can hand over:
 * header + MTU + Ethernet header + VLAN tag, or 64 KiB when the guest accepts TSO, UFO or USO.
 * It takes chains until they do, and when the queue runs dry first it asks the guest for a kick
 * and does not read the TAP meanwhile, so no frame is read that the guest cannot hold: nothing
 * is dropped for lack of buffers and nothing is ever half delivered. Then one readv goes straight
 * into all the held chains' writable buffers. The chains the frame filled are published
 * together, each with the bytes written in it, after {@code num_buffers} in the first header is
 * set to their number (the TAP leaves those two bytes alone); chains the frame did not reach are
 * kept for the next frame.
 *
 * <p>A safety net for a frame longer than expected (the TAP's MTU raised under a running
 * datapath): a last iovec points at a private 64 KiB overflow buffer, and the tail found there is
 * copied into further chains as the guest posts them (the only copy, and only then). Such a frame
 * is lost only if the datapath stops before the guest gives buffers for its tail
 * ({@code rxDropped}).
 *
 * <p>The receive filter (rx mode, MAC and VLAN tables) is applied before anything is published:
 * a rejected frame leaves the chains for the next one (QEMU's {@code receive_filter}).
 *
 * <p>Held chains are taken but not used, so on stop the queue state is reported with them given
 * back ({@link #heldChains()}, {@link #heldSlots()}). Not thread-safe: its queue pair's thread only.
 */
final class RxPath {
    static final int HEADER = VirtioNetHeader.SIZE;
    private static final int NUM_BUFFERS_OFFSET = 10;

    /** {@link #service} result: the budget ran out with frames perhaps left. */
    static final int MORE = 0;
    /** {@link #service} result: the TAP is empty; wait until it is readable. */
    static final int WAIT_TAP = 1;
    /** {@link #service} result: no guest buffers, notifications on; wait for a kick. */
    static final int WAIT_BUFFERS = 2;

    /** The longest frame a TAP hands over with receive offloads: a 64 KiB GSO frame and a VLAN tag. */
    static final int LARGE_FRAME = HEADER + 65536 + 4;
    /** The overflow buffer: the longest frame with some slack. */
    static final int MAX_READ = LARGE_FRAME + 512;
    /** Ethernet header and an 802.1Q tag around an MTU-sized payload. */
    private static final int ETHERNET_OVERHEAD = 14 + 4;
    /** One iovec stays free for the overflow buffer. */
    private static final int MAX_IOV_BUFFERS = Iovecs.IOV_MAX - 1;
    /** Buffers of held chains: gathering stops below IOV_MAX, plus one chain of up to IOV_MAX. */
    private static final int STORE = 2 * Iovecs.IOV_MAX;
    private static final int FILTER_PEEK = HEADER + 18;

    private static final int EAGAIN = Errno.number("EAGAIN").orElseThrow();
    private static final int EINTR = Errno.number("EINTR").orElseThrow();

    private final DeviceQueue queue;
    private final DescriptorChain chain;
    private final GuestMemory memory;
    private final Iovecs iovecs;
    private final MemorySegment overflow;
    private final MemorySegment peek = MemorySegment.ofArray(new byte[FILTER_PEEK]);
    private final GuestWriteLog log;
    private final EventFd call;
    private final FileDescriptor tap;
    private final Counters counters;
    private final Supplier<RxFilter> filter;
    private final BooleanSupplier largeFrames;
    private final int plainFrame;
    /** VIRTIO_NET_F_MRG_RXBUF: a frame may span chains; without it, one chain per frame. */
    private final boolean mergeable;

    // Held chains, oldest first, and their writable buffers in order.
    private int chainCount;
    private final int[] chainHead = new int[STORE];
    private final int[] chainSlots = new int[STORE];
    private final int[] chainFirst = new int[STORE];
    private final int[] chainBuffers = new int[STORE];
    private final long[] chainBytes = new long[STORE];
    private int bufferCount;
    private final long[] bufGuest = new long[STORE];
    private final int[] bufRegion = new int[STORE];
    private final long[] bufOffset = new long[STORE];
    private final long[] bufLength = new long[STORE];

    // The chains of the last readv.
    private int includedChains;
    private int includedBuffers;
    private long includedBytes;

    private final int[] usedIds = new int[STORE];
    private final int[] usedLens = new int[STORE];

    // A frame whose tail is still in the overflow buffer, waiting for guest buffers.
    private boolean pending;
    private int moved;
    private int pendingChains;
    private long frameLength;
    private long overflowPos;
    private long overflowEnd;

    private boolean notificationsEnabled = true;
    private int publishedChains;

    RxPath(DeviceQueue queue, GuestMemory memory, Arena arena, GuestWriteLog log, EventFd call, FileDescriptor tap,
            Counters counters, Supplier<RxFilter> filter, BooleanSupplier largeFrames, int mtu, boolean mergeable) {
        this.queue = queue;
        this.chain = queue.newChain();
        this.memory = memory;
        this.iovecs = new Iovecs(arena);
        this.overflow = arena.allocate(MAX_READ, 16);
        this.log = log;
        this.call = call;
        this.tap = tap;
        this.counters = counters;
        this.filter = filter;
        this.largeFrames = largeFrames;
        this.plainFrame = HEADER + mtu + ETHERNET_OVERHEAD;
        this.mergeable = mergeable;
    }

    DeviceQueue queue() {
        return queue;
    }

    /** What marks this path's writes in the dirty log. */
    GuestWriteLog log() {
        return log;
    }

    /** Chains taken from the queue and not published: to be given back when the path stops. */
    int heldChains() {
        return chainCount;
    }

    /** Ring slots of the held chains (a packed ring's position moves back by these). */
    int heldSlots() {
        int slots = 0;
        for (int c = 0; c < chainCount; c++) {
            slots += chainSlots[c];
        }
        return slots;
    }

    /** Whether a frame is half placed, waiting for guest buffers for its tail. */
    boolean hasPendingFrame() {
        return pending;
    }

    /** The path stops with a half-placed frame: it is lost (counted), its chains given back. */
    void abandonPendingFrame() {
        if (pending) {
            pending = false;
            Counters.add(counters.rxDropped, 1);
        }
    }

    /**
     * Moves up to {@code budget} frames from the TAP into the guest; the guest hears of them from
     * {@link #signalIfAsked}, which the worker calls after the round.
     *
     * @param tapNumber the TAP queue's descriptor number, held open by the caller
     * @param quiet when the guest's buffers run short, return {@link #WAIT_BUFFERS} with
     *     notifications left off (the worker is busy-polling and looks again soon); otherwise
     *     they are turned on first
     */
    int service(int budget, int tapNumber, CallState s, boolean quiet) throws NativeCallException {
        int result = MORE;
        moved = 0;
        for (int frames = 0; frames < budget; frames++) {
            if (pending) {
                if (!completePending()) {
                    result = WAIT_BUFFERS;
                    break;
                }
                moved++;
                continue;
            }
            if (!gather()) {
                if (quiet) {
                    result = WAIT_BUFFERS;
                    break;
                }
                // Not enough buffers for the longest frame: ask for a kick, then re-check (a
                // full fence and a re-read of avail.idx inside), so buffers posted meanwhile
                // are not slept on. The TAP is not read until then.
                if (enableNotificationsRaced()) {
                    frames--;
                    continue;
                }
                result = WAIT_BUFFERS;
                break;
            }
            int count = fillIovecs();
            long n = Libc.readv(s, tapNumber, iovecs.segment(), count);
            if (n < 0) {
                int errno = s.errno();
                if (errno == EINTR) {
                    frames--;
                    continue;
                }
                if (errno == EAGAIN) {
                    result = WAIT_TAP;
                    break;
                }
                throw NativeErrors.failure("readv", tap, errno);
            }
            place(n);
            moved++;
        }
        return result;
    }

    /**
     * Signals the guest's call eventfd if chains were published since the last check and the ring
     * asks for it (event idx or flags; {@code needsNotification} fences before it reads). The
     * worker calls this once per round, after every pair's paths: a guest waiting on several
     * receive queues then finds all of a round's frames when it wakes, instead of waking for one
     * queue's and sleeping again for the next's.
     */
    void signalIfAsked() throws NativeCallException {
        if (publishedChains > 0) {
            publishedChains = 0;
            if (queue.needsNotification()) {
                call.signal();
            }
        }
    }

    /** Frames read from the TAP (or completed) in the last {@link #service} call. */
    int moved() {
        return moved;
    }

    private boolean enableNotificationsRaced() {
        boolean raced = queue.enableNotifications();
        log.notificationArea(true);
        notificationsEnabled = true;
        return raced;
    }

    /**
     * Takes chains until they cover the longest frame expected, the queue is empty, or one readv
     * cannot take more buffers.
     *
     * @return whether a frame may be read now: the held chains cover the longest frame, or hold
     *         as many buffers as one readv takes (the overflow buffer covers the rest)
     */
    private boolean gather() {
        if (!mergeable) {
            // One chain per frame, whatever its size (the guest sizes its buffers for the frames
            // it accepts; a frame that does not fit is dropped, as vhost-net does).
            return chainCount > 0 || takeOne();
        }
        long target = largeFrames.getAsBoolean() ? LARGE_FRAME : plainFrame;
        long held = 0;
        for (int c = 0; c < chainCount; c++) {
            held += chainBytes[c];
        }
        while (held < target && bufferCount < MAX_IOV_BUFFERS && takeOne()) {
            held += chainBytes[chainCount - 1];
        }
        return held >= target || (chainCount > 0 && bufferCount >= MAX_IOV_BUFFERS);
    }

    /** Takes one chain into the store; false when the queue is empty. */
    private boolean takeOne() {
        if (notificationsEnabled) {
            queue.disableNotifications();
            log.notificationArea(false);
            notificationsEnabled = false;
        }
        if (!queue.take(chain)) {
            return false;
        }
        if (chain.readableCount() != 0) {
            throw new BadGuestInputException(queue.queueIndex(), "virtqueue " + queue.queueIndex() + " (receive): chain at head "
                    + chain.headId() + " has " + chain.readableCount() + " device-readable buffer(s)");
        }
        if (chain.writableLength() < HEADER) {
            throw new BadGuestInputException(queue.queueIndex(), "virtqueue " + queue.queueIndex() + " (receive): chain at head "
                    + chain.headId() + " has " + chain.writableLength() + " writable bytes, less than the "
                    + HEADER + "-byte virtio_net_hdr");
        }
        int buffers = chain.writableCount();
        if (buffers > MAX_IOV_BUFFERS) {
            throw new BadGuestInputException(queue.queueIndex(), "virtqueue " + queue.queueIndex() + " (receive): chain at head "
                    + chain.headId() + " has " + buffers + " buffers; one readv takes at most " + MAX_IOV_BUFFERS);
        }
        int c = chainCount++;
        chainHead[c] = chain.headId();
        chainSlots[c] = chain.descriptorCount();
        chainFirst[c] = bufferCount;
        chainBuffers[c] = buffers;
        chainBytes[c] = chain.writableLength();
        for (int i = 0; i < buffers; i++) {
            int b = bufferCount++;
            bufGuest[b] = chain.address(i);
            bufRegion[b] = chain.regionIndex(i);
            bufOffset[b] = chain.regionOffset(i);
            bufLength[b] = chain.length(i);
        }
        return true;
    }

    /** Points the iovecs at the held chains' buffers (whole chains, up to IOV_MAX - 1) and the overflow. */
    private int fillIovecs() {
        includedChains = 0;
        includedBuffers = 0;
        includedBytes = 0;
        int chainsForOneFrame = mergeable ? chainCount : Math.min(1, chainCount);
        while (includedChains < chainsForOneFrame
                && includedBuffers + chainBuffers[includedChains] <= MAX_IOV_BUFFERS) {
            int c = includedChains++;
            for (int b = chainFirst[c]; b < chainFirst[c] + chainBuffers[c]; b++) {
                iovecs.set(includedBuffers++, hostAddress(b), bufLength[b]);
            }
            includedBytes += chainBytes[c];
        }
        if (includedBytes >= MAX_READ) {
            return includedBuffers;
        }
        iovecs.set(includedBuffers, overflow.address(), MAX_READ);
        return includedBuffers + 1;
    }

    private long hostAddress(int b) {
        return memory.region(bufRegion[b]).segment().address() + bufOffset[b];
    }

    /** A frame of {@code n} bytes (header included) was read. */
    private void place(long n) throws NativeCallException {
        long inChains = Math.min(n, includedBytes);
        if (n < HEADER) {
            markWritten(inChains);
            Counters.add(counters.rxDropped, 1);
            return;
        }
        int peekLength = (int) Math.min(n, FILTER_PEEK);
        copyFrameStart(peekLength);
        RxFilter rxFilter = filter.get();
        if (rxFilter != null && !rxFilter.accepts(peek, HEADER, n - HEADER)) {
            markWritten(inChains);
            Counters.add(counters.rxFiltered, 1);
            return;
        }
        long left = n;
        int used = 0;
        while (left > 0 && used < includedChains) {
            long w = Math.min(left, chainBytes[used]);
            usedIds[used] = chainHead[used];
            usedLens[used] = (int) w;
            markChain(used, w);
            left -= w;
            used++;
        }
        if (left == 0) {
            publishFrame(used, n);
            return;
        }
        if (!mergeable) {
            // Longer than the chain: without mergeable buffers it cannot be delivered.
            Counters.add(counters.rxDropped, 1);
            return;
        }
        pending = true;
        pendingChains = used;
        frameLength = n;
        overflowPos = 0;
        overflowEnd = left;
        completePending();
    }

    /** Copies the overflowed tail into further chains; false while the guest has none to give. */
    private boolean completePending() {
        while (overflowPos < overflowEnd) {
            if (pendingChains == chainCount) {
                if (chainCount == STORE || bufferCount > STORE - Iovecs.IOV_MAX) {
                    // Cannot hold more chains: the guest posts buffers too small for this frame.
                    pending = false;
                    Counters.add(counters.rxDropped, 1);
                    return true;
                }
                if (!takeOne()) {
                    if (enableNotificationsRaced()) {
                        continue;
                    }
                    return false;
                }
            }
            int c = pendingChains++;
            long w = Math.min(overflowEnd - overflowPos, chainBytes[c]);
            copyFromOverflow(c, overflowPos, w);
            usedIds[c] = chainHead[c];
            usedLens[c] = (int) w;
            overflowPos += w;
        }
        pending = false;
        publishFrame(pendingChains, frameLength);
        return true;
    }

    private void publishFrame(int chains, long n) {
        writeNumBuffers(chains);
        queue.publishUsedBatch(usedIds, usedLens, chains);
        for (int c = 0; c < chains; c++) {
            log.usedElement(chainSlots[c]);
        }
        log.usedIndex();
        publishedChains += chains;
        removeFront(chains);
        Counters.add(counters.rxFrames, 1);
        Counters.add(counters.rxBytes, n - HEADER);
    }

    /** {@code virtio_net_hdr_v1.num_buffers}, le16 at offset 10 of the first chain (checked >= 12 bytes). */
    private void writeNumBuffers(int chains) {
        writeFirstChainByte(NUM_BUFFERS_OFFSET, (byte) chains);
        writeFirstChainByte(NUM_BUFFERS_OFFSET + 1, (byte) (chains >>> 8));
    }

    private void writeFirstChainByte(long at, byte value) {
        int b = chainFirst[0];
        long offset = at;
        while (offset >= bufLength[b]) {
            offset -= bufLength[b];
            b++;
        }
        memory.region(bufRegion[b]).segment().set(JAVA_BYTE, bufOffset[b] + offset, value);
    }

    /** The first {@code length} bytes of the frame, from the chains' buffers then the overflow. */
    private void copyFrameStart(int length) {
        int copied = 0;
        for (int b = 0; b < includedBuffers && copied < length; b++) {
            int w = (int) Math.min(bufLength[b], length - copied);
            MemorySegment.copy(memory.region(bufRegion[b]).segment(), bufOffset[b], peek, copied, w);
            copied += w;
        }
        if (copied < length) {
            MemorySegment.copy(overflow, 0, peek, copied, length - copied);
        }
    }

    private void copyFromOverflow(int c, long from, long bytes) {
        long left = bytes;
        long at = from;
        for (int b = chainFirst[c]; left > 0; b++) {
            long w = Math.min(left, bufLength[b]);
            MemorySegment.copy(overflow, at, memory.region(bufRegion[b]).segment(), bufOffset[b], w);
            log.buffer(bufGuest[b], w);
            at += w;
            left -= w;
        }
    }

    private void markChain(int c, long bytes) {
        if (!log.enabled()) {
            return;
        }
        long left = bytes;
        for (int b = chainFirst[c]; left > 0; b++) {
            long w = Math.min(left, bufLength[b]);
            log.buffer(bufGuest[b], w);
            left -= w;
        }
    }

    /** Marks what a readv wrote into the included chains for a frame that is not delivered. */
    private void markWritten(long bytes) {
        if (!log.enabled()) {
            return;
        }
        long left = bytes;
        for (int b = 0; b < includedBuffers && left > 0; b++) {
            long w = Math.min(left, bufLength[b]);
            log.buffer(bufGuest[b], w);
            left -= w;
        }
    }

    /** Forgets the first {@code chains} held chains (published). */
    private void removeFront(int chains) {
        if (chains == 0) {
            return;
        }
        int buffers = chains == chainCount ? bufferCount : chainFirst[chains];
        int keptChains = chainCount - chains;
        int keptBuffers = bufferCount - buffers;
        System.arraycopy(chainHead, chains, chainHead, 0, keptChains);
        System.arraycopy(chainSlots, chains, chainSlots, 0, keptChains);
        System.arraycopy(chainBuffers, chains, chainBuffers, 0, keptChains);
        System.arraycopy(chainBytes, chains, chainBytes, 0, keptChains);
        for (int c = 0; c < keptChains; c++) {
            chainFirst[c] = chainFirst[c + chains] - buffers;
        }
        System.arraycopy(bufGuest, buffers, bufGuest, 0, keptBuffers);
        System.arraycopy(bufRegion, buffers, bufRegion, 0, keptBuffers);
        System.arraycopy(bufOffset, buffers, bufOffset, 0, keptBuffers);
        System.arraycopy(bufLength, buffers, bufLength, 0, keptBuffers);
        chainCount = keptChains;
        bufferCount = keptBuffers;
    }
}

package io.vhostffm.vhost.device.userspace;

import io.vhostffm.vhost.os.Errno;
import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.FileDescriptor;
import io.vhostffm.vhost.os.IoUring;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.internal.CallState;
import io.vhostffm.vhost.internal.Libc;
import io.vhostffm.vhost.internal.NativeErrors;
import io.vhostffm.vring.DescriptorChain;
import io.vhostffm.vring.DeviceQueue;
import java.lang.foreign.Arena;
import io.vhostffm.vhost.virtio.net.VirtioNetHeader;

/**
 * Guest to TAP for one transmit queue. Each chain's device-readable buffers hold a
 * {@code virtio_net_hdr_v1} (12 bytes) and the frame, split anywhere across descriptors; they go
 * to the TAP (IFF_VNET_HDR, header size 12) in one writev whose iovecs point at the guest's
 * buffers: no copy, no allocation. The chain is then completed with used length 0.
 *
 * <p>Two ways to hand the writevs to the kernel ({@link UserspaceDatapath.TransmitIo}): one
 * writev system call per chain, or, with an {@link TxBatch io_uring}, the round's chains (up to
 * {@link TxBatch#CHAINS}) taken first, queued as linked writevs and handed over with one
 * io_uring_enter, their used elements then published in ring order with one used-index update.
 *
 * <p>A chain the TAP refuses (EINVAL: a malformed GSO header, a frame too long) is completed and
 * counted, as vhost-net does; when the TAP is full (EAGAIN, ENOBUFS, ENOMEM) the chain, and every
 * chain taken after it, is held and retried in order once the TAP is writable. Not thread-safe:
 * its queue pair's thread only.
 */
final class TxPath {
    /** virtio_net_hdr_v1: with VIRTIO_F_VERSION_1 (or MRG_RXBUF) the header is 12 bytes. */
    static final int HEADER = VirtioNetHeader.SIZE;

    /** {@link #service} result: the budget ran out with chains left. */
    static final int MORE = 0;
    /** {@link #service} result: the ring is empty and notifications are on; wait for a kick. */
    static final int IDLE = 1;
    /** {@link #service} result: the TAP is full; wait until it is writable. */
    static final int BLOCKED = 2;

    static final int EAGAIN = Errno.number("EAGAIN").orElseThrow();
    static final int ENOBUFS = Errno.number("ENOBUFS").orElseThrow();
    static final int ENOMEM = Errno.number("ENOMEM").orElseThrow();
    static final int EINTR = Errno.number("EINTR").orElseThrow();
    static final int EINVAL = Errno.number("EINVAL").orElseThrow();
    static final int EIO = Errno.number("EIO").orElseThrow();

    private final DeviceQueue queue;
    private final GuestWriteLog log;
    private final EventFd call;
    private final FileDescriptor tap;
    private final Counters counters;
    /** With io_uring: the chains of a round and their ring; null: one writev per chain. */
    private final TxBatch batch;
    /** One writev per chain: the chain in hand and its iovecs (null with io_uring). */
    private final DescriptorChain chain;
    private final Iovecs iovecs;

    private boolean notificationsEnabled = true;
    private boolean held;
    private int moved;
    private int heldBuffers;

    /**
     * @param ring the io_uring to hand the writevs over with (owned by the caller, who closes it
     *     once no worker runs), or null for one writev system call per chain
     */
    TxPath(DeviceQueue queue, Arena arena, GuestWriteLog log, EventFd call, FileDescriptor tap, Counters counters,
            IoUring ring) {
        this.queue = queue;
        this.log = log;
        this.call = call;
        this.tap = tap;
        this.counters = counters;
        if (ring != null) {
            this.batch = new TxBatch(queue, ring, arena);
            this.chain = null;
            this.iovecs = null;
        } else {
            this.batch = null;
            this.chain = queue.newChain();
            this.iovecs = new Iovecs(arena);
        }
    }

    DeviceQueue queue() {
        return queue;
    }

    /** What marks this path's writes in the dirty log. */
    GuestWriteLog log() {
        return log;
    }

    /** Chains taken but not yet written (the TAP was full): given back on stop. */
    int heldChains() {
        return batch != null ? batch.taken() : held ? 1 : 0;
    }

    /** Ring slots of the held chains. */
    int heldSlots() {
        return batch != null ? batch.takenSlots() : held ? chain.descriptorCount() : 0;
    }

    /**
     * Moves up to {@code budget} frames to the TAP and signals the guest when it asks for it.
     *
     * @param tapNumber the TAP queue's descriptor number, held open by the caller
     * @param quiet when the ring is empty, return {@link #IDLE} with notifications left off (the
     *     worker is busy-polling and looks again soon); otherwise they are turned on first
     */
    int service(int budget, int tapNumber, CallState s, boolean quiet) throws NativeCallException {
        if (notificationsEnabled) {
            queue.disableNotifications();
            log.notificationArea(false);
            notificationsEnabled = false;
        }
        moved = 0;
        return batch != null ? serviceBatched(budget, quiet) : serviceEach(budget, tapNumber, s, quiet);
    }

    /** One writev system call per chain. */
    private int serviceEach(int budget, int tapNumber, CallState s, boolean quiet) throws NativeCallException {
        int published = 0;
        int result = MORE;
        try {
            for (int frames = 0; frames < budget; frames++) {
                if (!held) {
                    if (!queue.take(chain)) {
                        if (ringEmpty(quiet)) {
                            result = IDLE;
                            break;
                        }
                        frames--;
                        continue;
                    }
                    heldBuffers = check(chain);
                    fill(chain, iovecs, 0);
                    held = true;
                }
                long written = Libc.writev(s, tapNumber, iovecs.segment(), heldBuffers);
                if (written < 0) {
                    int errno = s.errno();
                    if (errno == EINTR) {
                        frames--;
                        continue;
                    }
                    if (full(errno)) {
                        result = BLOCKED;
                        break;
                    }
                    if (!refused(errno)) {
                        throw NativeErrors.failure("writev", tap, errno);
                    }
                }
                count(written);
                held = false;
                queue.publishUsed(chain.headId(), 0);
                log.usedElement(chain.descriptorCount());
                log.usedIndex();
                published++;
                moved++;
            }
        } finally {
            if (published > 0 && queue.needsNotification()) {
                call.signal();
            }
        }
        return result;
    }

    /**
     * Through the io_uring: each pass takes chains behind those still held (up to the budget and
     * {@link TxBatch#CHAINS}), writes them all with one io_uring_enter, and publishes, in ring
     * order, the leading ones that were written or refused; the first the TAP had no room for,
     * and every chain after it, stays held for the next pass or round, in order.
     */
    private int serviceBatched(int budget, boolean quiet) throws NativeCallException {
        int published = 0;
        int result = MORE;
        boolean empty = false;
        try {
            while (moved < budget) {
                int want = Math.min(TxBatch.CHAINS, budget - moved);
                while (!empty && batch.taken() < want) {
                    DescriptorChain next = batch.next();
                    if (queue.take(next)) {
                        check(next);
                        batch.add();
                    } else if (ringEmpty(quiet)) {
                        empty = true;
                    }
                }
                if (batch.taken() == 0) {
                    result = IDLE;
                    break;
                }
                int written = batch.write(tap);
                int done = 0;
                int blockedAt = -1;
                for (; done < written; done++) {
                    int r = batch.result(done);
                    if (r < 0) {
                        int errno = -r;
                        if (full(errno)) {
                            blockedAt = done;
                            break;
                        }
                        if (errno == TxBatch.ECANCELED || errno == EINTR) {
                            break; // not started (an earlier link failed) or interrupted: again next pass
                        }
                        if (!refused(errno)) {
                            throw IoUring.failure("writev", tap, r);
                        }
                    }
                    count(r);
                }
                if (done > 0) {
                    // All the elements first, then the used index once, with a release store
                    // (in publishUsedBatch): the guest sees every element it counts.
                    int[] ids = batch.headIds(done);
                    queue.publishUsedBatch(ids, batch.zeroLengths(), done);
                    for (int c = 0; c < done; c++) {
                        log.usedElement(batch.chain(c).descriptorCount());
                    }
                    log.usedIndex();
                    batch.removeFront(done);
                    published += done;
                    moved += done;
                }
                if (blockedAt >= 0) {
                    result = BLOCKED;
                    break;
                }
                if (empty && batch.taken() == 0) {
                    result = IDLE;
                    break;
                }
            }
        } finally {
            // One decision for the round: needsNotification fences before it reads used_event.
            if (published > 0 && queue.needsNotification()) {
                call.signal();
            }
        }
        return result;
    }

    /**
     * The ring had nothing new. Busy-polling ({@code quiet}): true, notifications left off (the
     * worker looks again soon). Otherwise kicks are asked for, then the ring is looked at again
     * (enableNotifications fences and re-reads avail.idx): true when it is still empty (sleep on
     * a kick), false when a chain came meanwhile (take it, notifications off again).
     */
    private boolean ringEmpty(boolean quiet) {
        if (quiet) {
            return true;
        }
        boolean raced = queue.enableNotifications();
        log.notificationArea(true);
        if (raced) {
            queue.disableNotifications();
            log.notificationArea(false);
            return false;
        }
        notificationsEnabled = true;
        return true;
    }

    /** The TAP has no room now (retry once it is writable). */
    private static boolean full(int errno) {
        return errno == EAGAIN || errno == ENOBUFS || errno == ENOMEM;
    }

    /**
     * The TAP refused this frame (bad header, too long, link down): it is completed and counted,
     * as vhost-net does, so the guest's buffer is not stuck.
     */
    private static boolean refused(int errno) {
        return errno == EINVAL || errno == EIO;
    }

    /** Counts a written frame ({@code written} bytes with the header) or, when negative, a refused one. */
    private void count(long written) {
        if (written < 0) {
            Counters.add(counters.txErrors, 1);
        } else {
            Counters.add(counters.txFrames, 1);
            Counters.add(counters.txBytes, written - HEADER);
        }
    }

    /** Frames written to the TAP or refused by it in the last {@link #service} call. */
    int moved() {
        return moved;
    }

    /**
     * Checks {@code c} against virtio-net's transmit rules.
     *
     * @return its buffers: the iovecs its writev takes
     */
    int check(DescriptorChain c) {
        if (c.writableCount() != 0) {
            throw new BadGuestInputException(queue.queueIndex(), "virtqueue " + queue.queueIndex() + " (transmit): chain at head "
                    + c.headId() + " has " + c.writableCount() + " device-writable buffer(s)");
        }
        if (c.readableLength() < HEADER) {
            throw new BadGuestInputException(queue.queueIndex(), "virtqueue " + queue.queueIndex() + " (transmit): chain at head "
                    + c.headId() + " has " + c.readableLength() + " bytes, less than the "
                    + HEADER + "-byte virtio_net_hdr");
        }
        int count = c.readableCount();
        if (count > Iovecs.IOV_MAX) {
            throw new BadGuestInputException(queue.queueIndex(), "virtqueue " + queue.queueIndex() + " (transmit): chain at head "
                    + c.headId() + " has " + count + " buffers; one writev takes at most " + Iovecs.IOV_MAX);
        }
        return count;
    }

    /** Points {@code into}'s entries from {@code first} on at {@code c}'s buffers (checked). */
    static void fill(DescriptorChain c, Iovecs into, int first) {
        int count = c.readableCount();
        for (int i = 0; i < count; i++) {
            into.set(first + i, c.regionSegment(i).address() + c.regionOffset(i), c.length(i));
        }
    }
}

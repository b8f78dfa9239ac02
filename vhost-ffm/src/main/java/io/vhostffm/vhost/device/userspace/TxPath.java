package io.vhostffm.vhost.device.userspace;

import io.vhostffm.vhost.os.Errno;
import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.FileDescriptor;
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
 * <p>A chain the TAP refuses (EINVAL: a malformed GSO header, a frame too long) is completed and
 * counted, as vhost-net does; when the TAP is full (EAGAIN, ENOBUFS, ENOMEM) the chain is held
 * and retried once the TAP is writable. Not thread-safe: its queue pair's thread only.
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

    private static final int EAGAIN = Errno.number("EAGAIN").orElseThrow();
    private static final int ENOBUFS = Errno.number("ENOBUFS").orElseThrow();
    private static final int ENOMEM = Errno.number("ENOMEM").orElseThrow();
    private static final int EINTR = Errno.number("EINTR").orElseThrow();
    private static final int EINVAL = Errno.number("EINVAL").orElseThrow();
    private static final int EIO = Errno.number("EIO").orElseThrow();

    private final DeviceQueue queue;
    private final DescriptorChain chain;
    private final Iovecs iovecs;
    private final GuestWriteLog log;
    private final EventFd call;
    private final FileDescriptor tap;
    private final Counters counters;

    private boolean notificationsEnabled = true;
    private boolean held;
    private int moved;
    private int heldBuffers;

    TxPath(DeviceQueue queue, Arena arena, GuestWriteLog log, EventFd call, FileDescriptor tap, Counters counters) {
        this.queue = queue;
        this.chain = queue.newChain();
        this.iovecs = new Iovecs(arena);
        this.log = log;
        this.call = call;
        this.tap = tap;
        this.counters = counters;
    }

    DeviceQueue queue() {
        return queue;
    }

    /** What marks this path's writes in the dirty log. */
    GuestWriteLog log() {
        return log;
    }

    /** Whether a chain was taken but not yet written (the TAP was full): given back on stop. */
    boolean holdsChain() {
        return held;
    }

    /** Ring slots of the held chain. */
    int heldSlots() {
        return held ? chain.descriptorCount() : 0;
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
        int published = 0;
        int result = MORE;
        moved = 0;
        try {
            for (int frames = 0; frames < budget; frames++) {
                if (!held) {
                    if (!queue.take(chain)) {
                        if (quiet) {
                            // No kick wanted: the worker polls the ring again before it sleeps.
                            result = IDLE;
                            break;
                        }
                        // Empty: ask for kicks, then re-check (enableNotifications fences and
                        // re-reads avail.idx), so a chain added meanwhile is not slept on.
                        boolean raced = queue.enableNotifications();
                        log.notificationArea(true);
                        if (raced) {
                            queue.disableNotifications();
                            log.notificationArea(false);
                            frames--;
                            continue;
                        }
                        notificationsEnabled = true;
                        result = IDLE;
                        break;
                    }
                    heldBuffers = prepare();
                    held = true;
                }
                long written = Libc.writev(s, tapNumber, iovecs.segment(), heldBuffers);
                if (written < 0) {
                    int errno = s.errno();
                    if (errno == EINTR) {
                        frames--;
                        continue;
                    }
                    if (errno == EAGAIN || errno == ENOBUFS || errno == ENOMEM) {
                        result = BLOCKED;
                        break;
                    }
                    if (errno != EINVAL && errno != EIO) {
                        throw NativeErrors.failure("writev", tap, errno);
                    }
                    // The TAP refused this frame (bad header, too long, link down): complete it
                    // and count it, as vhost-net does; the guest's buffer is not stuck.
                    Counters.add(counters.txErrors, 1);
                } else {
                    Counters.add(counters.txFrames, 1);
                    Counters.add(counters.txBytes, written - HEADER);
                }
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

    /** Frames written to the TAP or refused by it in the last {@link #service} call. */
    int moved() {
        return moved;
    }

    /** Checks the chain against virtio-net's transmit rules and points the iovecs at its buffers. */
    private int prepare() {
        if (chain.writableCount() != 0) {
            throw new BadGuestInputException(queue.queueIndex(), "virtqueue " + queue.queueIndex() + " (transmit): chain at head "
                    + chain.headId() + " has " + chain.writableCount() + " device-writable buffer(s)");
        }
        if (chain.readableLength() < HEADER) {
            throw new BadGuestInputException(queue.queueIndex(), "virtqueue " + queue.queueIndex() + " (transmit): chain at head "
                    + chain.headId() + " has " + chain.readableLength() + " bytes, less than the "
                    + HEADER + "-byte virtio_net_hdr");
        }
        int count = chain.readableCount();
        if (count > Iovecs.IOV_MAX) {
            throw new BadGuestInputException(queue.queueIndex(), "virtqueue " + queue.queueIndex() + " (transmit): chain at head "
                    + chain.headId() + " has " + count + " buffers; one writev takes at most " + Iovecs.IOV_MAX);
        }
        for (int i = 0; i < count; i++) {
            iovecs.set(i, chain.regionSegment(i).address() + chain.regionOffset(i), chain.length(i));
        }
        return count;
    }
}

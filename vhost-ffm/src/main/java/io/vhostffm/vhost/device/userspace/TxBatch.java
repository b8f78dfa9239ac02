package io.vhostffm.vhost.device.userspace;

import io.vhostffm.vhost.internal.Structs;
import io.vhostffm.vhost.os.Errno;
import io.vhostffm.vhost.os.FileDescriptor;
import io.vhostffm.vhost.os.IoUring;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vring.DescriptorChain;
import io.vhostffm.vring.DeviceQueue;
import java.lang.foreign.Arena;

/**
 * The chains a transmit queue has taken and not yet completed, in ring order, and the io_uring
 * that writes them to the TAP: {@link #write} queues one writev per chain (its iovecs in one
 * shared array, pointing into guest memory), linked so that each starts only once the one before
 * it was written in full, and hands them over with one io_uring_enter.
 *
 * <p>Every writev is queued with {@link IoUring#NO_WAIT}: a TAP with no room completes it with
 * EAGAIN at once instead of keeping it in the kernel until it has room, and the link cancels the
 * ones after it (ECANCELED), none of them started. So when {@link #write} returns nothing is in
 * flight: the guest's buffers are no longer read by the kernel, a chain not written is still
 * here to be written again (or given back on stop), and the ring can be closed at any time no
 * worker runs. Frames leave in ring order, each once.
 *
 * <p>Allocated once per queue; nothing per chain or per round. Its queue's thread only.
 */
final class TxBatch {
    /** Chains taken and written per io_uring_enter at most: a round's budget. */
    static final int CHAINS = ServedPair.BUDGET;
    static final int ECANCELED = Errno.number("ECANCELED").orElseThrow();
    private static final long IOVEC_BYTES = Structs.IOVEC.byteSize();

    private final IoUring ring;
    private final Iovecs iovecs;
    /** The chains taken, oldest first: {@code chains[0 .. taken)}; holders beyond are free. */
    private final DescriptorChain[] chains = new DescriptorChain[CHAINS];
    /** Scratch for {@link #removeFront}: holders are moved, never made anew. */
    private final DescriptorChain[] spare = new DescriptorChain[CHAINS];
    private final int[] headIds = new int[CHAINS];
    private final int[] zeroLengths = new int[CHAINS];
    /** Per chain of the last {@link #write}: its completion's result. */
    private final int[] results = new int[CHAINS];
    private final long[] tags = new long[CHAINS];
    private final int[] reaped = new int[CHAINS];
    private int taken;

    TxBatch(DeviceQueue queue, IoUring ring, Arena arena) {
        if (ring.capacity() < CHAINS) {
            throw new IllegalArgumentException("an io_uring of " + ring.capacity() + " entries for batches of " + CHAINS);
        }
        this.ring = ring;
        this.iovecs = new Iovecs(arena);
        for (int i = 0; i < CHAINS; i++) {
            chains[i] = queue.newChain();
        }
    }

    /** Chains taken and not yet completed. */
    int taken() {
        return taken;
    }

    /** Their descriptors, summed: how far a packed ring's position steps back when they are given back. */
    int takenSlots() {
        int slots = 0;
        for (int i = 0; i < taken; i++) {
            slots += chains[i].descriptorCount();
        }
        return slots;
    }

    /** The holder the next chain is taken into; {@link #add} keeps it. */
    DescriptorChain next() {
        return chains[taken];
    }

    /** Keeps the chain just taken into {@link #next()} (checked against the transmit rules). */
    void add() {
        taken++;
    }

    /** The {@code i}-th chain taken. */
    DescriptorChain chain(int i) {
        return chains[i];
    }

    /**
     * Writes the chains taken, as many as fit in the iovec array and the ring, with one
     * io_uring_enter, and waits for their completions (prompt: no writev waits for room).
     *
     * @return how many were queued (the first ones); {@link #result} gives each one's completion
     * @throws NativeCallException when io_uring_enter fails
     */
    int write(FileDescriptor tap) throws NativeCallException {
        int queued = 0;
        int buffers = 0;
        while (queued < taken && buffers + chains[queued].readableCount() <= Iovecs.IOV_MAX) {
            buffers += chains[queued].readableCount();
            queued++; // the rest go in the next pass, whose array starts empty
        }
        int position = 0;
        for (int i = 0; i < queued; i++) {
            DescriptorChain c = chains[i];
            int count = c.readableCount();
            TxPath.fill(c, iovecs, position);
            // Linked: a writev starts only once the one before it was written in full, so a full
            // TAP stops the batch there and nothing after it overtakes it. The last one links to
            // nothing a later pass queues.
            int flags = IoUring.NO_WAIT | (i + 1 < queued ? IoUring.LINK_NEXT : 0);
            if (!ring.queueWritev(tap, iovecs.segment(), position * IOVEC_BYTES, count, i, flags)) {
                // Every pass reaps all it queued, and the ring has room for a whole batch.
                throw new IllegalStateException("transmit io_uring full: " + ring);
            }
            position += count;
        }
        if (queued == 0) {
            return 0;
        }
        ring.submit(queued);
        int got = 0;
        while (true) {
            int n = ring.completions(tags, reaped);
            for (int i = 0; i < n; i++) {
                results[(int) tags[i]] = reaped[i];
            }
            got += n;
            if (got >= queued) {
                return queued;
            }
            ring.submit(queued - got); // interrupted before all were ready: wait for the rest
        }
    }

    /** The completion of the {@code i}-th chain of the last {@link #write}: bytes written or minus the errno. */
    int result(int i) {
        return results[i];
    }

    /** The head ids of the first {@code count} chains, for one used-ring update. */
    int[] headIds(int count) {
        for (int i = 0; i < count; i++) {
            headIds[i] = chains[i].headId();
        }
        return headIds;
    }

    /** Used lengths of transmit chains: the device writes nothing into them. */
    int[] zeroLengths() {
        return zeroLengths;
    }

    /** Drops the first {@code count} chains (completed); the rest move to the front, in order. */
    void removeFront(int count) {
        // Rotate the holders left: the completed ones go behind those still taken, to be reused.
        System.arraycopy(chains, 0, spare, 0, count);
        System.arraycopy(chains, count, chains, 0, taken - count);
        System.arraycopy(spare, 0, chains, taken - count, count);
        taken -= count;
    }
}

package io.vhostffm.programs.demo;

import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.os.PacketSocket;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The network side of a {@link FakeGuest}'s TAP: an AF_PACKET socket on the interface. It sends
 * numbered frames towards the guest (stream {@code p} for pair {@code p}) and records the numbered
 * frames the guest transmits, per pair, in arrival order. It stays put while the guest migrates, so
 * it sees the whole traffic of both hosts.
 */
public final class Wire implements AutoCloseable {
    private final PacketSocket socket;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment sendBuffer = arena.allocate(FakeGuest.FRAME);
    private final MemorySegment receiveBuffer = arena.allocate(2048);
    private final List<List<Long>> fromGuest = new ArrayList<>();
    private final long[] nextToGuest;
    private long foreign;

    /** Frames the TAP may hold for the guest (its tx_queue_len; the kernel's default is 1000). */
    public static final int TAP_QUEUE = 8192;

    /**
     * Binds to {@code tapName}; quiets the host's IPv6 chatter on it (router solicitations, MLD),
     * and lets the TAP queue {@value #TAP_QUEUE} frames for the guest, so that a burst sent while
     * the guest is paused (or migrating) waits in the TAP instead of being dropped by the host.
     */
    public Wire(String tapName, int pairs) throws NativeCallException {
        write(Path.of("/proc/sys/net/ipv6/conf", tapName, "disable_ipv6"), "1");
        write(Path.of("/sys/class/net", tapName, "tx_queue_len"), Integer.toString(TAP_QUEUE));
        this.socket = PacketSocket.bind(tapName);
        socket.setReceiveBuffer(8 << 20);
        this.nextToGuest = new long[pairs];
        for (int p = 0; p < pairs; p++) {
            fromGuest.add(new ArrayList<>());
        }
    }

    /**
     * Sends {@code count} numbered frames of stream {@code pair} to the broadcast address (which
     * every receive filter state accepts, so a guest that changes its MAC or filter still gets them).
     */
    public void sendToGuest(int pair, int count) throws NativeCallException {
        for (int i = 0; i < count; i++) {
            FakeGuest.writeFrame(sendBuffer, new byte[] {-1, -1, -1, -1, -1, -1}, new byte[] {0x02, 0, 0, 0, 0, 0x01}, pair, nextToGuest[pair]++);
            socket.send(sendBuffer);
        }
    }

    private static void write(Path knob, String value) {
        try {
            if (Files.exists(knob)) {
                Files.writeString(knob, value);
            }
        } catch (java.io.IOException ignored) {
            // best effort: foreign frames are skipped anyway, and tests send within the default queue
        }
    }

    /** Forgets everything (a guest rebooted: its numbering starts again). */
    public void reset() {
        java.util.Arrays.fill(nextToGuest, 0);
        fromGuest.forEach(List::clear);
    }

    /** Frames sent to the guest on stream {@code pair}. */
    public long sentToGuest(int pair) {
        return nextToGuest[pair];
    }

    /**
     * Receives what the guest transmitted, waiting at most {@code timeoutMillis} for each frame,
     * until {@code total} of the guest's frames were seen in all.
     *
     * @return the count seen in all
     */
    public long receiveFromGuest(long total, int timeoutMillis) throws NativeCallException {
        while (seenFromGuest() < total) {
            long n = socket.receive(receiveBuffer, timeoutMillis);
            if (n < 0) {
                break;
            }
            ByteBuffer b = receiveBuffer.asByteBuffer().order(ByteOrder.BIG_ENDIAN);
            if (n < FakeGuest.FRAME || b.getShort(12) != FakeGuest.ETHERTYPE) {
                foreign++;
                continue;
            }
            int pair = b.getInt(14);
            if (pair < 0 || pair >= fromGuest.size()) {
                foreign++;
                continue;
            }
            fromGuest.get(pair).add(b.getLong(18));
        }
        return seenFromGuest();
    }

    /** The guest's frames seen so far, all pairs. */
    public long seenFromGuest() {
        long n = 0;
        for (List<Long> l : fromGuest) {
            n += l.size();
        }
        return n;
    }

    /** The sequence numbers the guest sent on pair {@code pair}, in arrival order. */
    public List<Long> fromGuest(int pair) {
        return List.copyOf(fromGuest.get(pair));
    }

    /** Frames that were not the guest's numbered ones. */
    public long foreignFrames() {
        return foreign;
    }

    /**
     * Checks a stream from the network to the guest: exactly {@code 0 .. count-1}, each once, in
     * order on each queue pair it arrived on ({@code arrivedOn}, one entry per frame). The TAP
     * keeps order per queue only: it picks a frame's queue by its flow hash and the queue the
     * guest last transmitted that hash on, so one stream may be spread over several queues.
     *
     * @return null when so, else what is wrong
     */
    public static String checkExactlyOnceInOrderPerQueue(String what, List<Long> seqs, List<Integer> arrivedOn,
            long count) {
        if (arrivedOn.size() != seqs.size()) {
            return what + ": " + seqs.size() + " frames but " + arrivedOn.size() + " arrival queues";
        }
        java.util.Map<Integer, List<Long>> perQueue = new java.util.TreeMap<>();
        for (int i = 0; i < seqs.size(); i++) {
            perQueue.computeIfAbsent(arrivedOn.get(i), q -> new ArrayList<>()).add(seqs.get(i));
        }
        for (var queue : perQueue.entrySet()) {
            List<Long> on = queue.getValue();
            for (int i = 1; i < on.size(); i++) {
                if (on.get(i) <= on.get(i - 1)) {
                    return what + ": on queue pair " + queue.getKey() + " frame " + on.get(i) + " arrived after "
                            + on.get(i - 1);
                }
            }
        }
        List<Long> sorted = new ArrayList<>(seqs);
        sorted.sort(null);
        return checkExactlyOnceInOrder(what, sorted, count);
    }

    /**
     * Checks a stream: exactly {@code 0 .. count-1}, each once, in order.
     *
     * @return null when so, else what is wrong
     */
    public static String checkExactlyOnceInOrder(String what, List<Long> seqs, long count) {
        if (seqs.size() != count) {
            long missing = 0;
            java.util.Set<Long> seen = new java.util.HashSet<>(seqs);
            for (long s = 0; s < count; s++) {
                if (!seen.contains(s)) {
                    missing++;
                }
            }
            return what + ": " + seqs.size() + " frames for " + count + " sent (" + missing + " missing, "
                    + (seqs.size() - seen.size()) + " duplicated)";
        }
        for (int i = 0; i < seqs.size(); i++) {
            if (seqs.get(i) != i) {
                return what + ": frame " + i + " is number " + seqs.get(i) + " (out of order, lost or duplicated)";
            }
        }
        return null;
    }

    @Override
    public void close() {
        socket.close();
        arena.close();
    }
}

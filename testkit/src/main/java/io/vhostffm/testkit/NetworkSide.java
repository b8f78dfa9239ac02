package io.vhostffm.testkit;

import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.os.PacketSocket;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The network side of a fake guest's TAP: an AF_PACKET socket on the interface. It sends numbered
 * frames towards the guest (stream {@code s} for pair {@code s}) and records the numbered frames
 * the guest transmits, per stream, in arrival order. It stays put while the guest migrates, so it
 * sees the traffic of both hosts.
 *
 * <h2>The window</h2>
 * A TAP holds at most {@code tx_queue_len} frames per queue for the guest and drops the rest (its
 * {@code tx_dropped}); a test that sent more than the guest takes would blame the device for the
 * host's drops. So this side never has more than {@code window} frames in flight towards the
 * guest: sent, and not yet handed to the guest's buffers, which the TAP counts in its
 * {@code tx_packets} (a frame leaves the TAP only into a guest receive buffer). With the window at
 * most the guest's receive buffers of one queue, and far below the TAP's queue, no frame it sends
 * is ever dropped, however many it sends in all. The count works across processes: the guest may
 * run in another one.
 *
 * <h2>The other way: the observer's own drops</h2>
 * The guest's frames wait in this side's socket queue ({@value #RECEIVE_BUFFER} bytes asked, some
 * thousands of small frames) until it reads them; a guest that transmits faster than this side reads
 * overflows it, and the kernel drops frames the device delivered. So a guest's transmit is kept
 * within a window of what this side has seen ({@link #fromGuestWindow}, which {@link Traffic#run}
 * uses; across processes the guest's process needs the count, e.g. as credits), and a check of the
 * guest's frames ({@link #checkFromGuest}) names the frames the observer dropped
 * ({@link #observerDrops}: PACKET_STATISTICS, and the host's per-CPU backlogs) apart from what
 * the device lost.
 */
public final class NetworkSide implements AutoCloseable {
    /** Frames the TAP may hold for the guest (its {@code tx_queue_len}; the kernel's default is 1000). */
    public static final int TAP_QUEUE = 8192;
    /** How long {@link #sendToGuest} waits for the window to open. */
    public static final int WINDOW_TIMEOUT_MILLIS = 30_000;
    /** The socket's receive buffer (SO_RCVBUFFORCE; the kernel doubles it for its bookkeeping). */
    public static final int RECEIVE_BUFFER = 8 << 20;
    /**
     * The guest's frames at most in flight beyond what this side has seen, for
     * {@link #fromGuestWindow}: well under what the socket queue holds of
     * {@value FakeGuest#NUMBERED_FRAME}-byte frames (each costs the queue about 1 KiB of buffer
     * and bookkeeping), so a reader that falls a whole window behind loses nothing.
     */
    public static final int FROM_GUEST_WINDOW = 2048;
    private static final Path SOFTNET_STAT = Path.of("/proc/net/softnet_stat");

    private final PacketSocket socket;
    private final String tapName;
    private final int window;
    private final Path txPackets;
    private final Path txDropped;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment sendBuffer = arena.allocate(FakeGuest.NUMBERED_FRAME);
    private final MemorySegment receiveBuffer = arena.allocate(65536);
    private final MemorySegment frameBuffer = arena.allocate(65536);
    private final List<List<Long>> fromGuest = new ArrayList<>();
    private final long[] nextToGuest;
    private long sent;
    private long deliveredBase;
    private long delivered;
    private final long droppedBase;
    private long foreign;
    private long socketDropped;
    private long backlogDroppedBase;

    /**
     * Binds to {@code tapName}; quiets the host's IPv6 chatter on it (router solicitations, MLD);
     * lets the TAP queue {@value #TAP_QUEUE} frames.
     *
     * @param streams numbered streams (one per queue pair)
     * @param window frames at most in flight towards the guest (at most its receive buffers of one queue)
     */
    public NetworkSide(String tapName, int streams, int window) throws NativeCallException {
        if (window < 1 || window > TAP_QUEUE / 2) {
            throw new IllegalArgumentException("window " + window + " outside 1.." + TAP_QUEUE / 2);
        }
        quiet(tapName);
        writeKnob(Path.of("/sys/class/net", tapName, "tx_queue_len"), Integer.toString(TAP_QUEUE));
        this.tapName = tapName;
        this.window = window;
        this.txPackets = Path.of("/sys/class/net", tapName, "statistics", "tx_packets");
        this.txDropped = Path.of("/sys/class/net", tapName, "statistics", "tx_dropped");
        this.socket = PacketSocket.bind(tapName);
        socket.setReceiveBuffer(RECEIVE_BUFFER);
        this.nextToGuest = new long[streams];
        for (int s = 0; s < streams; s++) {
            fromGuest.add(new ArrayList<>());
        }
        this.deliveredBase = counter(txPackets);
        this.droppedBase = counter(txDropped);
        this.backlogDroppedBase = backlogDropped();
    }

    /** Turns IPv6 off on {@code interfaceName}, so the host sends no router solicitations or MLD reports on it. */
    public static void quiet(String interfaceName) {
        writeKnob(Path.of("/proc/sys/net/ipv6/conf", interfaceName, "disable_ipv6"), "1");
    }

    private static void writeKnob(Path knob, String value) {
        try {
            if (Files.exists(knob)) {
                Files.writeString(knob, value);
            }
        } catch (IOException ignored) {
            // best effort: foreign frames are told apart anyway, and the window stays below the default queue
        }
    }

    private long counter(Path file) {
        try {
            return Long.parseLong(Files.readString(file).trim());
        } catch (IOException | NumberFormatException e) {
            throw new IllegalStateException("network side of " + tapName + ": cannot read " + file + ": " + e, e);
        }
    }

    /** The socket on the TAP (to send or receive frames of a test's own). */
    public PacketSocket socket() {
        return socket;
    }

    /** Frames at most in flight towards the guest. */
    public int window() {
        return window;
    }

    /** Frames sent towards the guest that the TAP has not yet handed to the guest, as last counted. */
    public long inFlightToGuest() {
        return sent - delivered;
    }

    private boolean windowOpen() {
        if (sent - delivered < window) {
            return true;
        }
        delivered = counter(txPackets) - deliveredBase;
        return sent - delivered < window;
    }

    /**
     * Sends up to {@code max} numbered frames of stream {@code stream} towards the guest, as many
     * as the window allows now, without waiting.
     *
     * @return frames sent
     */
    public int sendWithinWindow(int stream, long max) throws NativeCallException {
        int n = 0;
        while (n < max && windowOpen()) {
            sendOne(stream);
            n++;
        }
        return n;
    }

    /**
     * Sends {@code count} numbered frames of stream {@code stream} towards the guest, waiting for
     * the window to open (receiving the guest's frames meanwhile).
     *
     * @throws IllegalStateException when the guest takes nothing for {@value #WINDOW_TIMEOUT_MILLIS} ms
     */
    public void sendToGuest(int stream, long count) throws NativeCallException {
        long deadline = System.nanoTime() + WINDOW_TIMEOUT_MILLIS * 1_000_000L;
        for (long i = 0; i < count; i++) {
            while (!windowOpen()) {
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("network side of " + tapName + ": " + inFlightToGuest()
                            + " frames in flight towards the guest for " + WINDOW_TIMEOUT_MILLIS
                            + " ms, the guest takes none (TAP tx_dropped +" + droppedToGuest() + ")");
                }
                receiveOne(1); // the wait: the guest's frames keep arriving meanwhile
            }
            sendOne(stream);
            deadline = System.nanoTime() + WINDOW_TIMEOUT_MILLIS * 1_000_000L;
            if ((i & 31) == 31) {
                // the guest's frames queue in the socket meanwhile: take them before its buffer fills
                while (receiveOne(0)) {
                    // drained one
                }
            }
        }
    }

    /**
     * Waits until every frame sent towards the guest left the TAP into a guest buffer.
     *
     * @return whether they all did within {@code timeoutMillis}
     */
    public boolean awaitDelivered(int timeoutMillis) throws NativeCallException {
        long deadline = System.nanoTime() + timeoutMillis * 1_000_000L;
        while (true) {
            delivered = counter(txPackets) - deliveredBase;
            if (delivered >= sent) {
                return true;
            }
            if (System.nanoTime() > deadline) {
                return false;
            }
            receiveOne(1);
        }
    }

    private void sendOne(int stream) throws NativeCallException {
        Frames.write(sendBuffer, Frames.BROADCAST, Frames.NETWORK_MAC, stream, nextToGuest[stream]++,
                FakeGuest.NUMBERED_FRAME, -1);
        socket.send(sendBuffer);
        sent++;
    }

    /**
     * Sends {@code frame}, a test's own (any kind, up to 65535 bytes), towards the guest at once,
     * outside the window; it counts as in flight like the numbered ones.
     */
    public void send(byte[] frame) throws NativeCallException {
        MemorySegment.copy(frame, 0, frameBuffer, java.lang.foreign.ValueLayout.JAVA_BYTE, 0, frame.length);
        socket.send(frameBuffer.asSlice(0, frame.length));
        sent++;
    }

    /**
     * The next numbered frame (either kind) the guest transmits, whole, for a test that checks the
     * bytes itself; frames that are not numbered are skipped and counted as foreign. The frame is
     * not recorded in {@link #fromGuest}.
     *
     * @return the frame, or null when none came within {@code timeoutMillis} (0: only one already waiting)
     */
    public byte[] nextFromGuest(int timeoutMillis) throws NativeCallException {
        long deadline = System.nanoTime() + timeoutMillis * 1_000_000L;
        while (true) {
            int left = (int) Math.max(0, (deadline - System.nanoTime()) / 1_000_000L);
            long n = socket.receive(receiveBuffer, left);
            if (n < 0) {
                return null;
            }
            if (Frames.isNumbered(receiveBuffer, n)) {
                return receiveBuffer.asSlice(0, n).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
            }
            foreign++;
        }
    }

    /**
     * A gate that keeps the guest's frames in flight (transmitted, not yet seen here) within
     * {@code window}, counting from now, when the guest has transmitted {@code transmitted} frames
     * in all (every pair). In-process only: it reads this side's count; the caller must keep
     * receiving (as {@link Traffic#run} does).
     */
    public TransmitGate fromGuestWindow(long transmitted, int window) {
        if (window < 1) {
            throw new IllegalArgumentException("window " + window);
        }
        long seenAtStart = seenFromGuest();
        return now -> Math.max(0, window - ((now - transmitted) - (seenFromGuest() - seenAtStart)));
    }

    /**
     * Frames lost by the observer rather than the device: by this side's socket (its receive
     * queue was full: the reader fell behind) and by the host's per-CPU receive backlogs (any
     * interface; frames a TAP delivers to the stack can wait there), since this side was made.
     *
     * @param socket the socket's drops (PACKET_STATISTICS tp_drops, added up)
     * @param backlog drops of the host's backlogs ({@code /proc/net/softnet_stat}, all CPUs)
     */
    public record ObserverDrops(long socket, long backlog) {
        /** Whether the observer lost nothing. */
        public boolean none() {
            return socket == 0 && backlog == 0;
        }

        /** In words, for a check's message. */
        @Override
        public String toString() {
            return "the observer's socket dropped " + socket + " frames (its reader fell behind: lost here, not by the "
                    + "device), the host's receive backlogs " + backlog;
        }
    }

    /** The observer's drops so far (reads and adds up the socket's statistics). */
    public ObserverDrops observerDrops() throws NativeCallException {
        socketDropped += socket.statistics().dropped();
        return new ObserverDrops(socketDropped, backlogDropped() - backlogDroppedBase);
    }

    /** The second column of {@code /proc/net/softnet_stat} (hex, one line per CPU), added up; 0 when unreadable. */
    private static long backlogDropped() {
        try {
            long sum = 0;
            for (String line : Files.readAllLines(SOFTNET_STAT)) {
                String[] columns = line.trim().split("\\s+");
                if (columns.length > 1) {
                    sum += Long.parseLong(columns[1], 16);
                }
            }
            return sum;
        } catch (IOException | NumberFormatException e) {
            return 0; // no procfs here: the socket's own count still stands
        }
    }

    /**
     * Checks stream {@code stream} of the guest's frames as seen here: {@code 0 .. count-1}
     * exactly once, in order ({@link StreamCheck#exactlyOnceInOrder}). When frames are missing
     * and the observer dropped some, the answer says so, so an observer's drop is never taken for
     * the device's loss.
     *
     * @return null when all arrived, else what is wrong, with the observer's drops when it had any
     */
    public String checkFromGuest(String what, int stream, long count) throws NativeCallException {
        String problem = StreamCheck.exactlyOnceInOrder(what, fromGuest.get(stream), count);
        if (problem == null) {
            return null;
        }
        ObserverDrops drops = observerDrops();
        return drops.none() ? problem : problem + "; " + drops;
    }

    /** Frames the TAP dropped on the way to the guest since this side was made. */
    public long droppedToGuest() {
        return counter(txDropped) - droppedBase;
    }

    /** Numbered frames sent towards the guest on stream {@code stream}. */
    public long sentToGuest(int stream) {
        return nextToGuest[stream];
    }

    /** Forgets everything (a guest rebooted: its numbering starts again). */
    public void reset() {
        Arrays.fill(nextToGuest, 0);
        fromGuest.forEach(List::clear);
        deliveredBase = counter(txPackets);
        delivered = 0;
        sent = 0;
        try {
            socket.statistics(); // reading resets the socket's counters
        } catch (NativeCallException e) {
            throw new IllegalStateException("network side of " + tapName + ": " + e.getMessage(), e);
        }
        socketDropped = 0;
        backlogDroppedBase = backlogDropped();
    }

    /**
     * Receives what the guest transmitted, waiting at most {@code timeoutMillis} for each frame,
     * until {@code total} of the guest's numbered frames were seen in all.
     *
     * @return the count seen in all
     */
    public long receiveFromGuest(long total, int timeoutMillis) throws NativeCallException {
        while (seenFromGuest() < total) {
            if (!receiveOne(timeoutMillis)) {
                break;
            }
        }
        return seenFromGuest();
    }

    /** Receives one frame (up to {@code timeoutMillis}); returns false on timeout. */
    private boolean receiveOne(int timeoutMillis) throws NativeCallException {
        long n = socket.receive(receiveBuffer, timeoutMillis);
        if (n < 0) {
            return false;
        }
        if (!Frames.isNumbered(receiveBuffer, n)) {
            foreign++;
            return true;
        }
        int stream = Frames.stream(receiveBuffer, n);
        if (stream < 0 || stream >= fromGuest.size()) {
            foreign++;
            return true;
        }
        fromGuest.get(stream).add(Frames.sequence(receiveBuffer, n));
        return true;
    }

    /** The guest's numbered frames seen so far, all streams. */
    public long seenFromGuest() {
        long n = 0;
        for (List<Long> l : fromGuest) {
            n += l.size();
        }
        return n;
    }

    /** The sequence numbers the guest sent on stream {@code stream}, in arrival order. */
    public List<Long> fromGuest(int stream) {
        return List.copyOf(fromGuest.get(stream));
    }

    /** Frames that were not the guest's numbered ones. */
    public long foreignFrames() {
        return foreign;
    }

    @Override
    public void close() {
        socket.close();
        arena.close();
    }
}

package io.vhostffm.testkit;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

import io.vhostffm.vhost.device.DirtyLog;
import io.vhostffm.vhost.os.DescriptorPoller;
import io.vhostffm.vhost.os.FileDescriptor;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.virtio.DeviceStatus;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vhost.virtio.net.VirtioNetCtrl;
import io.vhostffm.vring.DriverQueue;
import io.vhostffm.vring.DriverState;
import io.vhostffm.vring.GuestMemory;
import io.vhostffm.vring.PackedDriverQueue;
import io.vhostffm.vring.QueueGeometry;
import io.vhostffm.vring.QueueState;
import io.vhostffm.vring.SplitDriverQueue;
import java.io.ByteArrayOutputStream;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

/**
 * A fake guest driving a virtio-net device: vring's driver side of every virtqueue (split, or
 * packed when VIRTIO_F_RING_PACKED is acked) over guest memory laid out by a {@link GuestLayout},
 * reaching the device through a {@link GuestTransport}. It negotiates like a driver, posts receive
 * buffers (reassembling mergeable ones), transmits chains of every {@link TxShape}, sends
 * control-queue commands, and numbers its own traffic ({@link Frames}) so a test can check every
 * frame arrived exactly once and in order ({@link StreamCheck}). It never learns it moved: at a
 * migration the hypervisor pauses it ({@link #saveState()}) and resumes it over the destination's
 * transport ({@link #resume}).
 *
 * <p>Not thread-safe: one thread drives it, as one vCPU would.
 */
public final class FakeGuest {
    /** Bytes of the virtio-net header (VERSION_1: with {@code num_buffers}). */
    public static final int HEADER = 12;
    /** Bytes of a numbered frame {@link #transmitNumbered} sends. */
    public static final int NUMBERED_FRAME = 64;
    /** The MAC address the guest's device is given. */
    public static final byte[] MAC = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
    /** Features a driver of this guest knows; it acks those of them the device offers. */
    public static final long FEATURES = VirtioFeature.maskOf(VirtioFeature.VERSION_1, VirtioFeature.MAC,
            VirtioFeature.STATUS, VirtioFeature.CTRL_VQ, VirtioFeature.CTRL_RX, VirtioFeature.CTRL_RX_EXTRA,
            VirtioFeature.CTRL_VLAN, VirtioFeature.CTRL_MAC_ADDR, VirtioFeature.CTRL_GUEST_OFFLOADS, VirtioFeature.MQ,
            VirtioFeature.MRG_RXBUF, VirtioFeature.EVENT_IDX, VirtioFeature.INDIRECT_DESC, VirtioFeature.CSUM,
            VirtioFeature.GUEST_CSUM, VirtioFeature.RING_PACKED);
    /** How long {@link #control} waits for the device's answer. */
    public static final int CONTROL_TIMEOUT_MILLIS = 10_000;
    /**
     * What VQ_PAIRS_SET adds to {@link #CONTROL_TIMEOUT_MILLIS} per pair it asks for. The command
     * restarts a userspace datapath on the new set of pairs: a thread, a TAP queue attached
     * (TUNSETQUEUE) and the pair's buffers per pair. Measured on a 2-core host at load 15: 1.5 to
     * 2 s for 256 pairs, of which thread starts about 0.3 s and TUNSETQUEUE 0.03 to 0.14 s; the
     * rest is the per-pair set-up, all of it linear in the pairs, none of it a fault to fix. A
     * fixed 10 s was exceeded at 128 pairs under heavier load; a deadline that grows with the
     * pairs (256 pairs: 10 s + 25.6 s) keeps the same margin at every size.
     */
    public static final int QUEUE_PAIRS_SET_MILLIS_PER_PAIR = 100;
    private static final int PIECE_GAP = 64;

    private final GuestMemory memory;
    private final GuestLayout layout;
    private final GuestTransport transport;
    private final DriverQueue[] queues;
    private final int pairs;
    private final Slots[] rxSlots;
    private final Slots[] txSlots;
    private final Assembly[] assembly;
    private final long[] nextTxSeq;
    private final LongList[] received;
    private final IntList[] arrivedOn;
    private final int[] ids;
    private final int[] lens;
    private final Random cuts = new Random(0x5646464dL);
    private long foreignFrames;
    private int rxBufferBytes;
    private RxChainShape rxChainShape = RxChainShape.SINGLE;
    private int rxChainsPosted;
    private volatile DirtyLog dirtyLog;

    private FakeGuest(GuestMemory memory, GuestLayout layout, GuestTransport transport, DriverQueue[] queues) {
        this.memory = memory;
        this.layout = layout;
        this.transport = transport;
        this.queues = queues;
        this.pairs = layout.pairs();
        this.rxSlots = new Slots[pairs];
        this.txSlots = new Slots[pairs];
        this.assembly = new Assembly[pairs];
        this.nextTxSeq = new long[pairs];
        this.received = new LongList[pairs];
        this.arrivedOn = new IntList[pairs];
        int size = layout.spec().queueSize();
        for (int p = 0; p < pairs; p++) {
            rxSlots[p] = new Slots(size);
            txSlots[p] = new Slots(size);
            assembly[p] = new Assembly();
            received[p] = new LongList();
            arrivedOn[p] = new IntList();
        }
        int largest = Math.max(size, layout.spec().controlQueueSize());
        this.ids = new int[largest];
        this.lens = new int[largest];
        this.rxBufferBytes = layout.spec().rxBufferSize();
    }

    /**
     * Brings the device up as a driver does: ACKNOWLEDGE, DRIVER, the features it offers of
     * {@code wanted}, FEATURES_OK, every virtqueue of {@code layout} set up (packed rings when
     * RING_PACKED was acked), DRIVER_OK. Posts no receive buffers yet ({@link #postRxBuffers()}).
     *
     * @throws IllegalStateException when the device refuses FEATURES_OK or DRIVER_OK, with its last error
     */
    public static FakeGuest boot(GuestTransport transport, GuestMemory memory, GuestLayout layout, long wanted) {
        GuestTransport model = transport;
        model.writeStatus(DeviceStatus.ACKNOWLEDGE);
        model.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
        long acked = model.deviceFeatures() & wanted;
        if (layout.pairs() > 1 && !VirtioFeature.MQ.in(acked)) {
            throw new IllegalStateException(layout.pairs() + " pairs but the device offers no MQ: "
                    + VirtioFeature.describe(model.deviceFeatures()));
        }
        model.writeDriverFeatures(acked);
        int ok = DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK;
        if (model.writeStatus(ok) != ok) {
            throw new IllegalStateException("FEATURES_OK refused for " + VirtioFeature.describe(acked) + ": "
                    + model.lastError().orElse("no error given"));
        }
        FakeGuest guest = attach(transport, memory, layout, acked);
        for (int q = 0; q < layout.queueCount(); q++) {
            transport.configureQueue(q, layout.queueSize(q), layout.descAddress(q), layout.driverAreaAddress(q),
                    layout.deviceAreaAddress(q));
        }
        int status = model.writeStatus(ok | DeviceStatus.DRIVER_OK);
        if ((status & DeviceStatus.DRIVER_OK) == 0 || (status & DeviceStatus.DEVICE_NEEDS_RESET) != 0) {
            throw new IllegalStateException("DRIVER_OK failed: status " + DeviceStatus.describe(status) + ", "
                    + model.lastError().orElse("no error given"));
        }
        return guest;
    }

    /**
     * The driver side alone, for a caller that writes the transport's registers itself (as a
     * hypervisor's transport forwards a real guest's accesses): lays out every virtqueue of
     * {@code layout} in guest memory for the negotiated {@code ackedFeatures}, in its initial
     * state. Call it after FEATURES_OK and before DRIVER_OK, as a driver initializes its rings
     * before it tells the device to start reading them; {@link #boot} is this plus the register
     * writes.
     */
    public static FakeGuest attach(GuestTransport transport, GuestMemory memory, GuestLayout layout,
            long ackedFeatures) {
        boolean packed = VirtioFeature.RING_PACKED.in(ackedFeatures);
        boolean eventIdx = VirtioFeature.EVENT_IDX.in(ackedFeatures);
        DriverQueue[] queues = new DriverQueue[layout.queueCount()];
        for (int q = 0; q < queues.length; q++) {
            int size = layout.queueSize(q);
            long desc = layout.descAddress(q);
            long driver = layout.driverAreaAddress(q);
            long device = layout.deviceAreaAddress(q);
            queues[q] = packed
                    ? new PackedDriverQueue(q, memory, size, desc, driver, device, eventIdx, 0, true)
                    : new SplitDriverQueue(q, memory, size, desc, driver, device, eventIdx, 0);
        }
        return new FakeGuest(memory, layout, transport, queues);
    }

    /**
     * The guest, paused where it saved {@code state}, resumes over {@code memory} (the same guest
     * memory, moved or copied) with {@code transport} leading to the device now behind it.
     *
     * @throws IllegalArgumentException when the state does not fit {@code layout}
     */
    public static FakeGuest resume(GuestTransport transport, GuestMemory memory, GuestLayout layout,
            FakeGuestState state) {
        if (state.queues().size() != layout.queueCount() || state.nextTxSeq().length != layout.pairs()) {
            throw new IllegalArgumentException("guest state of " + state.queues().size() + " virtqueues and "
                    + state.nextTxSeq().length + " pairs does not fit " + layout);
        }
        DriverQueue[] queues = new DriverQueue[layout.queueCount()];
        for (int q = 0; q < queues.length; q++) {
            DriverState s = state.queues().get(q);
            queues[q] = s.packed() ? new PackedDriverQueue(q, memory, s) : new SplitDriverQueue(q, memory, s);
        }
        FakeGuest guest = new FakeGuest(memory, layout, transport, queues);
        for (int p = 0; p < guest.pairs; p++) {
            guest.rxSlots[p].restore(state.rxSlots().get(p));
            guest.txSlots[p].restore(state.txSlots().get(p));
            FakeGuestState.Stream stream = state.received().get(p);
            long[] seqs = stream.seqs();
            int[] arrivedOn = stream.arrivedOn();
            for (int i = 0; i < seqs.length; i++) {
                guest.received[p].add(seqs[i]);
                guest.arrivedOn[p].add(arrivedOn[i]);
            }
        }
        System.arraycopy(state.nextTxSeq(), 0, guest.nextTxSeq, 0, guest.pairs);
        guest.foreignFrames = state.foreignFrames();
        guest.rxBufferBytes = state.rxBufferBytes();
        guest.rxChainShape = RxChainShape.values()[state.rxChainShape()];
        return guest;
    }

    /** Pauses: the driver's state as plain data (the caller stops calling this guest). */
    public FakeGuestState saveState() {
        List<DriverState> states = new ArrayList<>();
        for (DriverQueue q : queues) {
            states.add(q.saveState());
        }
        List<FakeGuestState.Slots> rx = new ArrayList<>();
        List<FakeGuestState.Slots> tx = new ArrayList<>();
        List<FakeGuestState.Stream> streams = new ArrayList<>();
        for (int p = 0; p < pairs; p++) {
            rx.add(rxSlots[p].save());
            tx.add(txSlots[p].save());
            streams.add(FakeGuestState.Stream.of(received[p].toArray(), arrivedOn[p].toArray()));
        }
        return new FakeGuestState(states, rx, tx, nextTxSeq.clone(), streams, foreignFrames, rxBufferBytes,
                rxChainShape.ordinal());
    }

    // ------------------------------------------------------------------ what it is

    /** Queue pairs. */
    public int pairs() {
        return pairs;
    }

    /** Where everything lives. */
    public GuestLayout layout() {
        return layout;
    }

    /** The guest memory. */
    public GuestMemory memory() {
        return memory;
    }

    /** The transport to the device. */
    public GuestTransport transport() {
        return transport;
    }

    /** Whether the rings are packed. */
    public boolean packed() {
        return queues[0].isPacked();
    }

    /** Virtqueue {@code queue}'s driver side (data queues by index, then the control queue). */
    public DriverQueue queue(int queue) {
        return queues[queue];
    }

    /** Pair {@code pair}'s receive queue. */
    public DriverQueue rx(int pair) {
        return queues[2 * pair];
    }

    /** Pair {@code pair}'s transmit queue. */
    public DriverQueue tx(int pair) {
        return queues[2 * pair + 1];
    }

    /** The control queue. */
    public DriverQueue controlQueue() {
        return queues[layout.controlQueue()];
    }

    /**
     * The state a device that has taken nothing from virtqueue {@code queue} yet starts in (for a
     * backend started without a runtime).
     */
    public QueueState initialDeviceState(int queue) {
        DriverQueue q = queues[queue];
        if (q instanceof SplitDriverQueue split) {
            return split.initialDeviceState();
        }
        return QueueState.fresh(QueueGeometry.packed(q.size(), layout.descAddress(queue),
                layout.driverAreaAddress(queue), layout.deviceAreaAddress(queue), q.saveState().eventIdx()));
    }

    /** The device status register. */
    public int status() {
        return transport.status();
    }

    /** Whether the device set DEVICE_NEEDS_RESET. */
    public boolean needsReset() {
        return (status() & DeviceStatus.DEVICE_NEEDS_RESET) != 0;
    }

    /**
     * Marks every guest page this guest writes from now on in {@code log} (null: stop), as KVM's
     * dirty log would for a real guest's vCPUs.
     */
    public void setDirtyLog(DirtyLog log) {
        this.dirtyLog = log;
    }

    private void markDriverArea(int queue) {
        DirtyLog log = dirtyLog;
        if (log != null) {
            log.mark(layout.descAddress(queue), layout.descBytes(queue));
            log.mark(layout.driverAreaAddress(queue), layout.driverAreaBytes(queue));
        }
    }

    private void markBytes(long address, long length) {
        DirtyLog log = dirtyLog;
        if (log != null) {
            log.mark(address, length);
        }
    }

    // ------------------------------------------------------------------ notifications

    /** Kicks virtqueue {@code queue} when the device asked for it; returns whether it did. */
    public boolean kickIfNeeded(int queue) throws NativeCallException {
        if (queues[queue].needsKick()) {
            transport.kick(queue);
            return true;
        }
        return false;
    }

    /**
     * Waits up to {@code millis} for a used-buffer notification on any of {@code queueIndices},
     * and consumes what arrived.
     *
     * @return whether one arrived
     */
    public boolean awaitCall(int millis, int... queueIndices) throws NativeCallException {
        List<FileDescriptor> fds = new ArrayList<>();
        for (int q : queueIndices) {
            fds.add(transport.call(q).fd());
        }
        try (DescriptorPoller poller = new DescriptorPoller(fds)) {
            if (poller.poll(millis) <= 0) {
                return false;
            }
        }
        for (int q : queueIndices) {
            transport.call(q).consume();
        }
        return true;
    }

    /**
     * Asks for a used-buffer notification on {@code queue} and waits up to {@code millis} for it,
     * unless used elements are already waiting.
     *
     * @return false when nothing arrived in time
     */
    public boolean awaitUsed(int queue, int millis) throws NativeCallException {
        if (queues[queue].enableUsedNotifications()) {
            return true;
        }
        boolean arrived = transport.call(queue).poll(millis);
        transport.call(queue).consume();
        return arrived;
    }

    /** The receive queue indices, {@code 0, 2, 4...}. */
    public int[] rxQueues() {
        int[] r = new int[pairs];
        for (int p = 0; p < pairs; p++) {
            r[p] = 2 * p;
        }
        return r;
    }

    /** The transmit queue indices, {@code 1, 3, 5...}. */
    public int[] txQueues() {
        int[] r = new int[pairs];
        for (int p = 0; p < pairs; p++) {
            r[p] = 2 * p + 1;
        }
        return r;
    }

    // ------------------------------------------------------------------ receive

    /** Receive chains from now on: {@code shape}. */
    public void setRxChainShape(RxChainShape shape) {
        this.rxChainShape = shape;
    }

    /**
     * Device-writable bytes of each receive chain posted from now on (smaller buffers make the
     * device merge more of them per frame).
     *
     * @throws IllegalArgumentException above the layout's receive buffer size or below 16
     */
    public void setRxBufferBytes(int bytes) {
        if (bytes < 16 || bytes > layout.spec().rxBufferSize()) {
            throw new IllegalArgumentException("receive buffer of " + bytes + " bytes outside 16.."
                    + layout.spec().rxBufferSize());
        }
        this.rxBufferBytes = bytes;
    }

    /** Posts receive chains on every receive queue while slots and descriptors last; kicks when asked. */
    public int postRxBuffers() throws NativeCallException {
        int posted = 0;
        for (int p = 0; p < pairs; p++) {
            posted += postRxBuffers(p, Integer.MAX_VALUE);
        }
        return posted;
    }

    /** Posts up to {@code max} receive chains on pair {@code pair}; kicks when asked. */
    public int postRxBuffers(int pair, int max) throws NativeCallException {
        DriverQueue rx = rx(pair);
        Slots slots = rxSlots[pair];
        int posted = 0;
        while (posted < max && slots.freeCount > 0 && rx.freeDescriptors() >= 2) {
            boolean split = switch (rxChainShape) {
                case SINGLE -> false;
                case SPLIT_HEADER -> true;
                case ALTERNATING -> (rxChainsPosted & 1) == 1;
            };
            int slot = slots.take();
            long base = layout.rxSlot(pair, slot);
            int id = split
                    ? rx.add(new long[] {base, base + PIECE_GAP}, new int[] {7, rxBufferBytes - 7}, 0, 2)
                    : rx.add(new long[] {base}, new int[] {rxBufferBytes}, 0, 1);
            if (id < 0) {
                slots.giveBack(slot);
                break;
            }
            slots.bind(id, slot, split);
            rxChainsPosted++;
            posted++;
        }
        if (posted > 0) {
            markDriverArea(2 * pair);
            kickIfNeeded(2 * pair);
        }
        return posted;
    }

    /** Receive chains pair {@code pair} has posted and the device not yet used. */
    public int rxPosted(int pair) {
        return rxSlots[pair].inFlight();
    }

    /**
     * Collects what the device used on every receive queue, reassembles frames (a frame spans
     * {@code num_buffers} used chains with MRG_RXBUF), gives the buffers back to the device, and
     * adds every complete frame to {@code out}.
     *
     * @return frames added
     * @throws IllegalStateException when a used element breaks the rules (a first buffer shorter
     *     than the header, {@code num_buffers} 0, a used length beyond the chain's buffers)
     */
    public int receive(List<RxFrame> out) throws NativeCallException {
        int frames = 0;
        for (int p = 0; p < pairs; p++) {
            frames += receive(p, out);
        }
        return frames;
    }

    /** As {@link #receive(List)}, for pair {@code pair} only. */
    public int receive(int pair, List<RxFrame> out) throws NativeCallException {
        DriverQueue rx = rx(pair);
        int n = rx.collectUsed(ids, lens, ids.length);
        if (n == 0) {
            return 0;
        }
        markDriverArea(2 * pair); // the driver wrote used_event
        Slots slots = rxSlots[pair];
        Assembly a = assembly[pair];
        int frames = 0;
        for (int i = 0; i < n; i++) {
            int binding = slots.release(ids[i], 2 * pair);
            int slot = binding >>> 1;
            boolean split = (binding & 1) == 1;
            long base = layout.rxSlot(pair, slot);
            int written = lens[i];
            if (written > layout.spec().rxBufferSize()) {
                throw new IllegalStateException("virtqueue " + 2 * pair + ": used length " + written + " of chain "
                        + ids[i] + " beyond its buffers' " + layout.spec().rxBufferSize() + " bytes");
            }
            byte[] data = new byte[written];
            List<GuestArea> buffers = new ArrayList<>(2);
            if (split) {
                int first = Math.min(7, written);
                MemorySegment.copy(memory.slice(base, 7), JAVA_BYTE, 0, data, 0, first);
                buffers.add(new GuestArea("rx buffer", base, Math.max(1, first)));
                if (written > 7) {
                    MemorySegment.copy(memory.slice(base + PIECE_GAP, written - 7), JAVA_BYTE, 0, data, 7, written - 7);
                    buffers.add(new GuestArea("rx buffer", base + PIECE_GAP, written - 7));
                }
            } else {
                if (written > 0) {
                    MemorySegment.copy(memory.slice(base, written), JAVA_BYTE, 0, data, 0, written);
                }
                buffers.add(new GuestArea("rx buffer", base, Math.max(1, written)));
            }
            if (a.remaining == 0) {
                if (written < HEADER) {
                    throw new IllegalStateException("virtqueue " + 2 * pair + ": first buffer of a frame holds "
                            + written + " bytes, less than the " + HEADER + "-byte header");
                }
                a.header = Arrays.copyOf(data, HEADER);
                a.remaining = (a.header[10] & 0xff) | (a.header[11] & 0xff) << 8;
                if (a.remaining < 1) {
                    throw new IllegalStateException("virtqueue " + 2 * pair + ": num_buffers " + a.remaining);
                }
                a.bytes.reset();
                a.bytes.write(data, HEADER, written - HEADER);
                a.buffers = new ArrayList<>();
            } else {
                a.bytes.write(data, 0, written);
            }
            a.buffers.addAll(buffers);
            if (--a.remaining == 0) {
                out.add(new RxFrame(pair, a.header, a.bytes.toByteArray(), List.copyOf(a.buffers)));
                frames++;
            }
        }
        postRxBuffers(pair, Integer.MAX_VALUE);
        return frames;
    }

    /**
     * Collects received frames on every receive queue and records the numbered ones per stream
     * ({@link #received(int)}, {@link #arrivedOn(int)}); counts the others as foreign.
     *
     * @return numbered frames collected
     */
    public int collectRx() throws NativeCallException {
        List<RxFrame> frames = new ArrayList<>();
        receive(frames);
        int ours = 0;
        for (RxFrame f : frames) {
            if (!Frames.isNumbered(f.frame())) {
                foreignFrames++;
                continue;
            }
            int stream = Math.floorMod(Frames.stream(f.frame()), pairs);
            received[stream].add(Frames.sequence(f.frame()));
            arrivedOn[stream].add(f.pair());
            ours++;
        }
        return ours;
    }

    /**
     * The numbered frames of stream {@code stream} received so far, in arrival order. A TAP picks a
     * frame's queue by its flow, so a stream may arrive on several queues ({@link #arrivedOn}).
     */
    public List<Long> received(int stream) {
        return received[stream].toList();
    }

    /** Numbered frames of stream {@code stream} received so far. */
    public int receivedCount(int stream) {
        return received[stream].size;
    }

    /** For each frame of {@link #received(int) received(stream)}, the queue pair it arrived on. */
    public List<Integer> arrivedOn(int stream) {
        return arrivedOn[stream].toList();
    }

    /** Frames received that were not numbered (the host's own traffic on the TAP). */
    public long foreignFrames() {
        return foreignFrames;
    }

    // ------------------------------------------------------------------ transmit

    /**
     * Makes {@code frame} (without header; the header is zero: no offloads) available on pair
     * {@code pair}'s transmit queue in a free transmit slot, laid out as {@code shape}. Does not
     * kick ({@link #kickIfNeeded}).
     *
     * @return the chain's id, or -1 when the queue has no room (collect and retry)
     */
    public int transmit(int pair, byte[] frame, TxShape shape) {
        int total = HEADER + frame.length;
        Slots slots = txSlots[pair];
        if (slots.freeCount == 0) {
            return -1;
        }
        int[] cut = cutPoints(shape, total, frame.length);
        if (total + PIECE_GAP * (cut.length + 1) > GuestLayout.TX_SLOT) {
            throw new IllegalArgumentException("a frame of " + frame.length + " bytes does not fit a transmit slot of "
                    + GuestLayout.TX_SLOT + " bytes as " + shape);
        }
        int slot = slots.take();
        long base = layout.txSlot(pair, slot);
        byte[] image = new byte[total];
        System.arraycopy(frame, 0, image, HEADER, frame.length);
        int pieces = cut.length + 1;
        long[] addresses = new long[pieces];
        int[] lengths = new int[pieces];
        int from = 0;
        long at = base;
        for (int i = 0; i < pieces; i++) {
            int to = i < cut.length ? cut[i] : total;
            MemorySegment.copy(image, from, memory.slice(at, to - from), JAVA_BYTE, 0, to - from);
            markBytes(at, to - from);
            addresses[i] = at;
            lengths[i] = to - from;
            at += to - from + PIECE_GAP;
            from = to;
        }
        DriverQueue tx = tx(pair);
        int id;
        if (shape.indirect()) {
            long table = layout.indirectTable(pair, slot);
            id = tx.addIndirect(table, addresses, lengths, pieces, 0);
            markBytes(table, 16L * pieces);
        } else {
            id = tx.add(addresses, lengths, pieces, 0);
        }
        if (id < 0) {
            slots.giveBack(slot);
            return -1;
        }
        slots.bind(id, slot, false);
        markDriverArea(2 * pair + 1);
        return id;
    }

    private int[] cutPoints(TxShape shape, int total, int frameLength) {
        return switch (shape) {
            case SINGLE -> new int[0];
            case HEADER_APART -> new int[] {HEADER};
            case PIECES, INDIRECT_PIECES -> {
                int first = Math.min(frameLength, 14 + cuts.nextInt(40));
                int rest = frameLength - first;
                int second = rest / 2;
                List<Integer> points = new ArrayList<>();
                points.add(HEADER);
                if (rest > 0 && first > 0) {
                    points.add(HEADER + first);
                }
                if (second > 0 && rest - second > 0) {
                    points.add(HEADER + first + second);
                }
                yield points.stream().mapToInt(Integer::intValue).toArray();
            }
            case CUT_ANYWHERE, INDIRECT_CUT_ANYWHERE -> {
                int pieces = 3 + cuts.nextInt(2);
                yield cuts.ints(1, total).distinct().limit(pieces - 1).sorted().toArray();
            }
        };
    }

    /**
     * Collects the used transmit chains of pair {@code pair} and frees their slots.
     *
     * @return chains collected
     * @throws IllegalStateException when the device wrote a nonzero used length for a transmit chain
     */
    public int collectTx(int pair) {
        int n = tx(pair).collectUsed(ids, lens, ids.length);
        for (int i = 0; i < n; i++) {
            if (lens[i] != 0) {
                throw new IllegalStateException("virtqueue " + (2 * pair + 1) + ": used length " + lens[i]
                        + " for transmit chain " + ids[i] + ", which has no device-writable buffer");
            }
            txSlots[pair].release(ids[i], 2 * pair + 1);
        }
        if (n > 0) {
            markDriverArea(2 * pair + 1); // used_event
        }
        return n;
    }

    /** Collects the used transmit chains of every pair; returns how many. */
    public int collectTx() {
        int total = 0;
        for (int p = 0; p < pairs; p++) {
            total += collectTx(p);
        }
        return total;
    }

    /** Transmit chains of pair {@code pair} made available and not yet collected. */
    public int txInFlight(int pair) {
        return txSlots[pair].inFlight();
    }

    /**
     * Makes up to {@code count} numbered frames of stream {@code pair} available on pair
     * {@code pair}'s transmit queue ({@value #NUMBERED_FRAME} bytes, broadcast, raw kind), as many
     * as there is room for, numbered on from the last; kicks when the device asks.
     *
     * @return frames added
     */
    public int transmitNumbered(int pair, int count) throws NativeCallException {
        int added = 0;
        byte[] frame = new byte[NUMBERED_FRAME];
        MemorySegment segment = MemorySegment.ofArray(frame);
        while (added < count) {
            Frames.write(segment, Frames.BROADCAST, MAC, pair, nextTxSeq[pair], NUMBERED_FRAME, -1);
            if (transmit(pair, frame, TxShape.SINGLE) < 0) {
                break;
            }
            nextTxSeq[pair]++;
            added++;
        }
        if (added > 0) {
            kickIfNeeded(2 * pair + 1);
        }
        return added;
    }

    /** Numbered frames transmitted (made available) on pair {@code pair} so far. */
    public long transmitted(int pair) {
        return nextTxSeq[pair];
    }

    // ------------------------------------------------------------------ control queue

    /** The guest address of the control command's ack byte. */
    public long controlAckAddress() {
        return layout.controlBuffers() + GuestLayout.PAGE - 1;
    }

    /**
     * Sends one control command and waits (on the control queue's call eventfd, up to
     * {@value #CONTROL_TIMEOUT_MILLIS} ms) for the device's answer.
     *
     * @return the ack byte ({@link VirtioNetCtrl#OK}, {@link VirtioNetCtrl#ERR})
     * @throws IllegalStateException when no answer comes in time, or the device answers another chain
     */
    public int control(int commandClass, int command, byte[] data) throws NativeCallException {
        return control(commandClass, command, data, CONTROL_TIMEOUT_MILLIS);
    }

    /** As {@link #control(int, int, byte[])}, waiting up to {@code timeoutMillis} for the answer. */
    private int control(int commandClass, int command, byte[] data, long timeoutMillis) throws NativeCallException {
        int c = layout.controlQueue();
        DriverQueue q = queues[c];
        long header = layout.controlBuffers();
        long payload = header + 0x100;
        long ack = controlAckAddress();
        if (data.length > ack - payload) {
            throw new IllegalArgumentException("control command data of " + data.length + " bytes");
        }
        memory.slice(header, 2).copyFrom(MemorySegment.ofArray(new byte[] {(byte) commandClass, (byte) command}));
        if (data.length > 0) {
            memory.slice(payload, data.length).copyFrom(MemorySegment.ofArray(data));
        }
        memory.slice(ack, 1).set(JAVA_BYTE, 0, (byte) 0x7f);
        markBytes(header, GuestLayout.PAGE);
        int head = data.length == 0
                ? q.add(new long[] {header, ack}, new int[] {2, 1}, 1, 1)
                : q.add(new long[] {header, payload, ack}, new int[] {2, data.length, 1}, 2, 1);
        if (head < 0) {
            throw new IllegalStateException("virtqueue " + c + ": the control queue is full");
        }
        markDriverArea(c);
        kickIfNeeded(c);
        long deadline = System.nanoTime() + timeoutMillis * 1_000_000L;
        while (q.collectUsed(ids, lens, 1) == 0) {
            long left = (deadline - System.nanoTime()) / 1_000_000L;
            if (left <= 0) {
                throw new IllegalStateException("virtqueue " + c + ": no answer to control class " + commandClass
                        + " command " + command + " within " + timeoutMillis + " ms; status "
                        + DeviceStatus.describe(status()) + ", last error "
                        + transport.lastError().orElse("none"));
            }
            awaitUsed(c, (int) Math.min(left, 50));
        }
        if (ids[0] != head) {
            throw new IllegalStateException("virtqueue " + c + ": the device used chain " + ids[0] + ", not " + head);
        }
        markDriverArea(c); // used_event
        return memory.slice(ack, 1).get(JAVA_BYTE, 0);
    }

    /**
     * Sets the number of active queue pairs (VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET); returns the ack.
     * Waits up to {@link #CONTROL_TIMEOUT_MILLIS} plus {@link #QUEUE_PAIRS_SET_MILLIS_PER_PAIR}
     * per pair: the device may restart its datapath on that many pairs before it answers.
     */
    public int setQueuePairs(int n) throws NativeCallException {
        return control(VirtioNetCtrl.CLASS_MQ, VirtioNetCtrl.MQ_VQ_PAIRS_SET, new byte[] {(byte) n, (byte) (n >> 8)},
                CONTROL_TIMEOUT_MILLIS + (long) QUEUE_PAIRS_SET_MILLIS_PER_PAIR * Math.max(0, n));
    }

    /** Adds a VLAN to the filter (VIRTIO_NET_CTRL_VLAN_ADD); returns the ack. */
    public int addVlan(int vid) throws NativeCallException {
        return control(VirtioNetCtrl.CLASS_VLAN, VirtioNetCtrl.VLAN_ADD, new byte[] {(byte) vid, (byte) (vid >> 8)});
    }

    /** Promiscuous mode on or off (VIRTIO_NET_CTRL_RX_PROMISC); returns the ack. */
    public int setPromiscuous(boolean on) throws NativeCallException {
        return control(VirtioNetCtrl.CLASS_RX, VirtioNetCtrl.RX_PROMISC, new byte[] {(byte) (on ? 1 : 0)});
    }

    /** A MAC table of one unicast and no multicast entry (VIRTIO_NET_CTRL_MAC_TABLE_SET); returns the ack. */
    public int setMacTable(byte[] unicast) throws NativeCallException {
        ByteBuffer b = ByteBuffer.allocate(4 + 6 + 4).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(1).put(unicast).putInt(0);
        return control(VirtioNetCtrl.CLASS_MAC, VirtioNetCtrl.MAC_TABLE_SET, b.array());
    }

    /** The device MAC (VIRTIO_NET_CTRL_MAC_ADDR_SET); returns the ack. */
    public int setMac(byte[] mac) throws NativeCallException {
        return control(VirtioNetCtrl.CLASS_MAC, VirtioNetCtrl.MAC_ADDR_SET, mac);
    }

    /** The guest's receive offloads (VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET); returns the ack. */
    public int setGuestOffloads(long offloads) throws NativeCallException {
        ByteBuffer b = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(offloads);
        return control(VirtioNetCtrl.CLASS_GUEST_OFFLOADS, VirtioNetCtrl.GUEST_OFFLOADS_SET, b.array());
    }

    @Override
    public String toString() {
        return "FakeGuest[" + pairs + " pairs, " + (packed() ? "packed" : "split") + ", " + layout + "]";
    }

    // ------------------------------------------------------------------ bookkeeping

    /** One queue's buffer slots: which slot each chain in flight uses, and the free ones. */
    static final class Slots {
        private final int[] ofId;
        private final int[] free;
        private int freeCount;

        Slots(int size) {
            ofId = new int[size];
            Arrays.fill(ofId, -1);
            free = new int[size];
            for (int i = 0; i < size; i++) {
                free[i] = size - 1 - i;
            }
            freeCount = size;
        }

        int take() {
            return free[--freeCount];
        }

        void giveBack(int slot) {
            free[freeCount++] = slot;
        }

        void bind(int id, int slot, boolean split) {
            ofId[id] = slot << 1 | (split ? 1 : 0);
        }

        /** Frees chain {@code id}'s slot; returns its binding (slot times 2, plus 1 when split). */
        int release(int id, int queue) {
            int binding = id >= 0 && id < ofId.length ? ofId[id] : -1;
            if (binding < 0) {
                throw new IllegalStateException("virtqueue " + queue + ": used id " + id + " is no chain in flight");
            }
            ofId[id] = -1;
            giveBack(binding >>> 1);
            return binding;
        }

        int inFlight() {
            return free.length - freeCount;
        }

        FakeGuestState.Slots save() {
            return new FakeGuestState.Slots(ofId.clone(), Arrays.copyOf(free, freeCount));
        }

        void restore(FakeGuestState.Slots s) {
            if (s.ofId().length != ofId.length || s.free().length > free.length) {
                throw new IllegalArgumentException("slots of " + s.ofId().length + " ids for a queue of " + ofId.length);
            }
            System.arraycopy(s.ofId(), 0, ofId, 0, ofId.length);
            System.arraycopy(s.free(), 0, free, 0, s.free().length);
            freeCount = s.free().length;
        }
    }

    /** A frame being reassembled from mergeable receive buffers. */
    private static final class Assembly {
        final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        byte[] header;
        int remaining;
        List<GuestArea> buffers;
    }

    /** A growable list of longs without boxing. */
    private static final class LongList {
        long[] values = new long[64];
        int size;

        void add(long v) {
            if (size == values.length) {
                values = Arrays.copyOf(values, 2 * size);
            }
            values[size++] = v;
        }

        long[] toArray() {
            return Arrays.copyOf(values, size);
        }

        List<Long> toList() {
            List<Long> out = new ArrayList<>(size);
            for (int i = 0; i < size; i++) {
                out.add(values[i]);
            }
            return out;
        }
    }

    /** A growable list of ints without boxing. */
    private static final class IntList {
        int[] values = new int[64];
        int size;

        void add(int v) {
            if (size == values.length) {
                values = Arrays.copyOf(values, 2 * size);
            }
            values[size++] = v;
        }

        int[] toArray() {
            return Arrays.copyOf(values, size);
        }

        List<Integer> toList() {
            List<Integer> out = new ArrayList<>(size);
            for (int i = 0; i < size; i++) {
                out.add(values[i]);
            }
            return out;
        }
    }
}

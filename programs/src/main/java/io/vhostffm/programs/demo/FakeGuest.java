package io.vhostffm.programs.demo;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

import io.vhostffm.migration.net.QueueLayout;
import io.vhostffm.migration.net.QueueLayouts;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.device.NetDeviceRuntime;
import io.vhostffm.vhost.virtio.DeviceStatus;
import io.vhostffm.vhost.virtio.net.VirtioNetCtrl;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vring.DriverState;
import io.vhostffm.vring.GuestMemory;
import io.vhostffm.vring.SplitDriverQueue;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * A fake guest driving a virtio-net device: vring's driver side of every virtqueue, over the
 * guest's memory. It negotiates like a driver, posts receive buffers, transmits numbered frames,
 * collects what the device used, and sends control-queue commands. It never learns it moved: at
 * a migration the hypervisor pauses it ({@link #saveState()}), and resumes it on the destination
 * ({@link #resume}) with the same driver-side state and a transport that now leads to the
 * destination's device.
 *
 * <h2>Guest-physical layout</h2>
 * Region at {@link #RING_BASE}: pair {@code p}'s rings at {@code p * 0x10000} (rx: desc +0, avail
 * +0x1000, used +0x2000; tx: desc +0x4000, avail +0x5000, used +0x6000); the control queue at
 * {@code 0xF0000}, its command buffers at {@code 0xF8000}. Region at {@link #BUFFER_BASE} (a hole
 * below it): pair {@code p}'s receive slots at {@code p * 0x100000}, one 2 KiB slot per
 * descriptor head, transmit slots 0x80000 above (frame {@code seq} in slot {@code seq % 256}).
 *
 * <h2>Frames</h2>
 * 64-byte Ethernet frames, ethertype {@value #ETHERTYPE_HEX}, payload: the pair (4 bytes) and a
 * sequence number (8 bytes), big endian. Frames of other types (the host's own) are counted and
 * ignored.
 */
public final class FakeGuest {
    public static final int QUEUE_SIZE = 256;
    public static final int CONTROL_QUEUE_SIZE = 64;
    public static final long RING_BASE = 0;
    public static final long RING_REGION_SIZE = 0x100000;
    public static final long BUFFER_BASE = 0x4000_0000L;
    public static final long BUFFER_REGION_SIZE = 0x100000L * 8;
    public static final int HEADER = 12;
    public static final int SLOT = 2048;
    public static final int FRAME = 64;
    public static final short ETHERTYPE = (short) 0x88b5;
    static final String ETHERTYPE_HEX = "0x88b5";
    public static final byte[] MAC = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
    private static final long CONTROL_RING = RING_BASE + 0xF0000;
    private static final long CONTROL_BUFFERS = RING_BASE + 0xF8000;
    private static final ValueLayout.OfShort LE16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** The features this guest's driver wants; it acknowledges those the device offers. */
    public static final long WANTED = VirtioFeature.maskOf(VirtioFeature.VERSION_1, VirtioFeature.MAC,
            VirtioFeature.STATUS, VirtioFeature.CTRL_VQ, VirtioFeature.CTRL_RX, VirtioFeature.CTRL_VLAN,
            VirtioFeature.CTRL_MAC_ADDR, VirtioFeature.CTRL_GUEST_OFFLOADS, VirtioFeature.MQ,
            VirtioFeature.MRG_RXBUF, VirtioFeature.EVENT_IDX, VirtioFeature.CSUM, VirtioFeature.GUEST_CSUM);

    private final GuestMemory memory;
    private final int pairs;
    private final int controlIndex;
    private final SplitDriverQueue[] queues;
    private final long[] nextTxSeq;
    private final List<List<Long>> received = new ArrayList<>();
    /** Per stream, the queue pair each frame of {@link #received} arrived on. */
    private final List<List<Integer>> arrivedOn = new ArrayList<>();
    private NetDeviceRuntime device;
    private final int[] ids = new int[QUEUE_SIZE];
    private final int[] lens = new int[QUEUE_SIZE];
    private long foreignFrames;
    private volatile io.vhostffm.vhost.device.DirtyLog dirtyLog;

    private FakeGuest(GuestMemory memory, int pairs, NetDeviceRuntime device, SplitDriverQueue[] queues, long[] nextTxSeq) {
        this.memory = memory;
        this.pairs = pairs;
        this.controlIndex = 2 * pairs;
        this.device = device;
        this.queues = queues;
        this.nextTxSeq = nextTxSeq;
        for (int p = 0; p < pairs; p++) {
            received.add(new ArrayList<>());
            arrivedOn.add(new ArrayList<>());
        }
    }

    /**
     * Brings up {@code device} (max pairs = {@code pairs}) as a driver does: ACKNOWLEDGE, DRIVER,
     * features, FEATURES_OK, every queue set up, DRIVER_OK; then fills the receive queues.
     */
    public static FakeGuest boot(GuestMemory memory, NetDeviceRuntime device, int pairs) throws NativeCallException {
        return boot(memory, device, pairs, WANTED);
    }

    /** As {@link #boot(GuestMemory, NetDeviceRuntime, int)}, acknowledging only {@code wanted} of the offer. */
    public static FakeGuest boot(GuestMemory memory, NetDeviceRuntime device, int pairs, long wanted)
            throws NativeCallException {
        var model = device.model();
        model.writeStatus(DeviceStatus.ACKNOWLEDGE);
        model.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
        long acked = model.deviceFeatures() & wanted;
        if (!VirtioFeature.MQ.in(acked) || !VirtioFeature.CTRL_VQ.in(acked)) {
            throw new IllegalStateException("the device offers no MQ/CTRL_VQ: " + VirtioFeature.describe(model.deviceFeatures()));
        }
        model.writeDriverFeatures(acked);
        int ok = DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK;
        if (model.writeStatus(ok) != ok) {
            throw new IllegalStateException("FEATURES_OK refused: " + model.lastError().orElse("?"));
        }
        boolean eventIdx = VirtioFeature.EVENT_IDX.in(acked);
        SplitDriverQueue[] queues = new SplitDriverQueue[2 * pairs + 1];
        for (int q = 0; q < 2 * pairs; q++) {
            long ring = ringOf(q);
            queues[q] = new SplitDriverQueue(q, memory, QUEUE_SIZE, ring, ring + 0x1000, ring + 0x2000, eventIdx, 0);
            device.configureQueue(q, QUEUE_SIZE, ring, ring + 0x1000, ring + 0x2000);
        }
        int c = 2 * pairs;
        queues[c] = new SplitDriverQueue(c, memory, CONTROL_QUEUE_SIZE, CONTROL_RING, CONTROL_RING + 0x1000,
                CONTROL_RING + 0x2000, eventIdx, 0);
        device.configureQueue(c, CONTROL_QUEUE_SIZE, CONTROL_RING, CONTROL_RING + 0x1000, CONTROL_RING + 0x2000);
        FakeGuest guest = new FakeGuest(memory, pairs, device, queues, new long[pairs]);
        guest.postRxBuffers();
        int status = model.writeStatus(ok | DeviceStatus.DRIVER_OK);
        if ((status & DeviceStatus.DRIVER_OK) == 0 || (status & DeviceStatus.DEVICE_NEEDS_RESET) != 0) {
            throw new IllegalStateException("DRIVER_OK failed: status " + DeviceStatus.describe(status) + ", "
                    + model.lastError().orElse("?"));
        }
        return guest;
    }

    /** The guest, paused at the source, resumes over {@code memory} with {@code device} behind its transport. */
    public static FakeGuest resume(GuestMemory memory, NetDeviceRuntime device, GuestState state) {
        int pairs = state.nextTxSeq().length;
        SplitDriverQueue[] queues = new SplitDriverQueue[state.queues().size()];
        for (int q = 0; q < queues.length; q++) {
            queues[q] = new SplitDriverQueue(q, memory, state.queues().get(q));
        }
        FakeGuest guest = new FakeGuest(memory, pairs, device, queues, state.nextTxSeq().clone());
        for (int p = 0; p < pairs; p++) {
            for (long seq : state.received().get(p).seqs()) {
                guest.received.get(p).add(seq);
            }
            for (int on : state.received().get(p).arrivedOn()) {
                guest.arrivedOn.get(p).add(on);
            }
        }
        return guest;
    }

    private static long ringOf(int queue) {
        return RING_BASE + (queue / 2) * 0x10000L + (queue % 2) * 0x4000L;
    }

    /** The transport's queue registers, as the hypervisor knows them (the migration's queue layout section). */
    public QueueLayouts layouts() {
        boolean eventIdx = VirtioFeature.EVENT_IDX.in(device.model().driverFeatures());
        List<QueueLayout> data = new ArrayList<>();
        for (int q = 0; q < 2 * pairs; q++) {
            long ring = ringOf(q);
            data.add(new QueueLayout(q, QUEUE_SIZE, ring, ring + 0x1000, ring + 0x2000, eventIdx, false));
        }
        return new QueueLayouts(data, List.of(new QueueLayout(controlIndex, CONTROL_QUEUE_SIZE, CONTROL_RING,
                CONTROL_RING + 0x1000, CONTROL_RING + 0x2000, eventIdx, false)));
    }

    /** The queue layouts of a guest booted with {@code pairs} pairs and event idx as given. */
    public static QueueLayouts layoutsFor(int pairs, boolean eventIdx) {
        List<QueueLayout> data = new ArrayList<>();
        for (int q = 0; q < 2 * pairs; q++) {
            long ring = ringOf(q);
            data.add(new QueueLayout(q, QUEUE_SIZE, ring, ring + 0x1000, ring + 0x2000, eventIdx, false));
        }
        return new QueueLayouts(data, List.of(new QueueLayout(2 * pairs, CONTROL_QUEUE_SIZE, CONTROL_RING,
                CONTROL_RING + 0x1000, CONTROL_RING + 0x2000, eventIdx, false)));
    }

    /** Pauses: the driver's state as plain data (the caller stops calling this guest). */
    public GuestState saveState() {
        List<DriverState> states = new ArrayList<>();
        for (SplitDriverQueue q : queues) {
            states.add(q.saveState());
        }
        List<GuestState.Received> rx = new ArrayList<>();
        for (int p = 0; p < pairs; p++) {
            rx.add(new GuestState.Received(received.get(p).stream().mapToLong(Long::longValue).toArray(),
                    arrivedOn.get(p).stream().mapToInt(Integer::intValue).toArray()));
        }
        return new GuestState(states, nextTxSeq.clone(), rx);
    }

    /**
     * Marks every guest page this guest writes from now on in {@code log} (null: stop), as KVM's
     * dirty log would for a real guest's vCPUs: RAM precopy between two hosts relies on it.
     */
    public void setDirtyLog(io.vhostffm.vhost.device.DirtyLog log) {
        this.dirtyLog = log;
    }

    /** The driver wrote descriptors and the available ring (entries, idx, used_event) of {@code queue}. */
    private void markDriverArea(int queue) {
        var log = dirtyLog;
        if (log != null) {
            int size = queue == controlIndex ? CONTROL_QUEUE_SIZE : QUEUE_SIZE;
            long ring = queue == controlIndex ? CONTROL_RING : ringOf(queue);
            log.mark(ring, 16L * size);
            log.mark(ring + 0x1000, 6 + 2L * size);
        }
    }

    private void markBytes(long address, long length) {
        var log = dirtyLog;
        if (log != null) {
            log.mark(address, length);
        }
    }

    /** Pairs the guest drives. */
    public int pairs() {
        return pairs;
    }

    /** The device behind the guest's transport. */
    public NetDeviceRuntime device() {
        return device;
    }

    // ------------------------------------------------------------------ receive

    /** Posts one single-buffer receive chain per free descriptor of every rx queue; kicks when asked. */
    public void postRxBuffers() throws NativeCallException {
        for (int p = 0; p < pairs; p++) {
            SplitDriverQueue rx = queues[2 * p];
            boolean added = false;
            while (rx.freeDescriptors() > 0) {
                // One slot per descriptor head: the next chain's head is the free list's head.
                int next = rx.saveState().freeHead();
                int head = rx.add(new long[] {rxSlot(p, next)}, new int[] {SLOT}, 0, 1);
                if (head < 0) {
                    break;
                }
                if (head != next) {
                    throw new IllegalStateException("rx queue " + 2 * p + ": head " + head + ", free list said " + next);
                }
                added = true;
            }
            if (added) {
                markDriverArea(2 * p);
            }
            if (added && rx.needsKick()) {
                device.kick(2 * p).signal();
            }
        }
    }

    /**
     * Collects received frames on every rx queue (recording our frames' sequence numbers per pair,
     * in arrival order), reposts the buffers.
     *
     * @return frames of ours collected
     */
    public int collectRx() throws NativeCallException {
        int ours = 0;
        for (int p = 0; p < pairs; p++) {
            SplitDriverQueue rx = queues[2 * p];
            int n = rx.collectUsed(ids, lens, QUEUE_SIZE);
            if (n > 0) {
                markDriverArea(2 * p); // used_event
            }
            for (int i = 0; i < n; i++) {
                long base = rxSlot(p, ids[i]);
                if (lens[i] < HEADER + FRAME) {
                    foreignFrames++;
                    continue;
                }
                MemorySegment frame = memorySlice(base + HEADER, FRAME);
                int numBuffers = Short.toUnsignedInt(memorySlice(base + 10, 2).get(LE16, 0));
                if (numBuffers != 1) {
                    throw new IllegalStateException("rx queue " + 2 * p + ": num_buffers " + numBuffers + " for a 64-byte frame");
                }
                ByteBuffer b = frame.asByteBuffer();
                if (b.getShort(12) != ETHERTYPE) {
                    foreignFrames++;
                    continue;
                }
                int pair = b.getInt(14);
                long seq = b.getLong(18);
                received.get(Math.floorMod(pair, pairs)).add(seq);
                arrivedOn.get(Math.floorMod(pair, pairs)).add(p);
                ours++;
            }
        }
        postRxBuffers();
        return ours;
    }

    /** The receive slot of descriptor head {@code head} of pair {@code pair}. */
    private long rxSlot(int pair, int head) {
        return BUFFER_BASE + pair * 0x100000L + (long) head * SLOT;
    }

    /**
     * The sequence numbers of stream {@code pair} received so far, in arrival order. The TAP picks
     * the queue of a frame from the network by its flow hash and the queue the guest last sent that
     * hash on, so a stream may arrive on several queues, in order on each ({@link #arrivedOn}).
     */
    public List<Long> received(int pair) {
        return List.copyOf(received.get(pair));
    }

    /** For each frame of {@link #received(int) received(pair)}, the queue pair it arrived on. */
    public List<Integer> arrivedOn(int pair) {
        return List.copyOf(arrivedOn.get(pair));
    }

    /** Frames received that were not ours (the host's own traffic on the TAP). */
    public long foreignFrames() {
        return foreignFrames;
    }

    // ------------------------------------------------------------------ transmit

    /**
     * Makes up to {@code count} frames available on pair {@code pair}'s tx queue (as many as free
     * descriptors allow), numbered on from the last, kicking when the device asks.
     *
     * @return frames added
     */
    public int transmit(int pair, int count) throws NativeCallException {
        SplitDriverQueue tx = queues[2 * pair + 1];
        int added = 0;
        while (added < count && tx.freeDescriptors() > 0) {
            long seq = nextTxSeq[pair];
            long slot = BUFFER_BASE + pair * 0x100000L + 0x80000L + (seq % QUEUE_SIZE) * SLOT;
            MemorySegment s = memorySlice(slot, HEADER + FRAME);
            s.asSlice(0, HEADER).fill((byte) 0);
            writeFrame(s.asSlice(HEADER, FRAME), new byte[] {-1, -1, -1, -1, -1, -1}, MAC, pair, seq);
            markBytes(slot, HEADER + FRAME);
            if (tx.add(new long[] {slot}, new int[] {HEADER + FRAME}, 1, 0) < 0) {
                break;
            }
            nextTxSeq[pair]++;
            added++;
        }
        if (added > 0) {
            markDriverArea(2 * pair + 1);
        }
        if (added > 0 && tx.needsKick()) {
            device.kick(2 * pair + 1).signal();
        }
        return added;
    }

    /** Collects used tx chains of every pair; returns how many. */
    public int collectTx() {
        int total = 0;
        for (int p = 0; p < pairs; p++) {
            int n = queues[2 * p + 1].collectUsed(ids, lens, QUEUE_SIZE);
            if (n > 0) {
                markDriverArea(2 * p + 1);
            }
            total += n;
        }
        return total;
    }

    /** Frames transmitted (made available) on pair {@code pair} so far. */
    public long transmitted(int pair) {
        return nextTxSeq[pair];
    }

    /** Chains still in flight on pair {@code pair}'s tx queue. */
    public int txInFlight(int pair) {
        return QUEUE_SIZE - queues[2 * pair + 1].freeDescriptors();
    }

    /** One 64-byte test frame: destination, source, ethertype, pair, sequence number. */
    public static void writeFrame(MemorySegment into, byte[] dst, byte[] src, int pair, long seq) {
        ByteBuffer b = into.asByteBuffer().order(ByteOrder.BIG_ENDIAN);
        b.put(dst).put(src).putShort(ETHERTYPE).putInt(pair).putLong(seq);
        while (b.hasRemaining()) {
            b.put((byte) 0);
        }
    }

    // ------------------------------------------------------------------ control queue

    /**
     * Sends one control command and waits (polling, up to 10 s) for the device's answer.
     *
     * @return the ack byte (VIRTIO_NET_OK 0, VIRTIO_NET_ERR 1)
     */
    public int control(int commandClass, int command, byte[] data) throws NativeCallException, InterruptedException {
        SplitDriverQueue c = queues[controlIndex];
        MemorySegment header = memorySlice(CONTROL_BUFFERS, 2);
        header.set(JAVA_BYTE, 0, (byte) commandClass);
        header.set(JAVA_BYTE, 1, (byte) command);
        MemorySegment.copy(data, 0, memorySlice(CONTROL_BUFFERS + 64, Math.max(1, data.length)), JAVA_BYTE, 0, data.length);
        MemorySegment ack = memorySlice(CONTROL_BUFFERS + 4032, 1);
        ack.set(JAVA_BYTE, 0, (byte) 0x7f);
        int head = data.length == 0
                ? c.add(new long[] {CONTROL_BUFFERS, CONTROL_BUFFERS + 4032}, new int[] {2, 1}, 1, 1)
                : c.add(new long[] {CONTROL_BUFFERS, CONTROL_BUFFERS + 64, CONTROL_BUFFERS + 4032},
                        new int[] {2, data.length, 1}, 2, 1);
        if (head < 0) {
            throw new IllegalStateException("control queue full");
        }
        markBytes(CONTROL_BUFFERS, 4096);
        markDriverArea(controlIndex);
        device.kick(controlIndex).signal();
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (c.collectUsed(ids, lens, 1) == 0) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("no answer on the control queue for class " + commandClass + " command " + command);
            }
            Thread.sleep(1);
        }
        markDriverArea(controlIndex); // used_event
        return ack.get(JAVA_BYTE, 0);
    }

    /** Sets the number of active queue pairs (VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET). */
    public int setQueuePairs(int n) throws NativeCallException, InterruptedException {
        return control(VirtioNetCtrl.CLASS_MQ, VirtioNetCtrl.MQ_VQ_PAIRS_SET, new byte[] {(byte) n, (byte) (n >> 8)});
    }

    /** Adds a VLAN to the filter (VIRTIO_NET_CTRL_VLAN_ADD). */
    public int addVlan(int vid) throws NativeCallException, InterruptedException {
        return control(VirtioNetCtrl.CLASS_VLAN, VirtioNetCtrl.VLAN_ADD, new byte[] {(byte) vid, (byte) (vid >> 8)});
    }

    /** Promiscuous mode on or off (VIRTIO_NET_CTRL_RX_PROMISC). */
    public int setPromiscuous(boolean on) throws NativeCallException, InterruptedException {
        return control(VirtioNetCtrl.CLASS_RX, VirtioNetCtrl.RX_PROMISC, new byte[] {(byte) (on ? 1 : 0)});
    }

    /** A MAC table of one unicast and no multicast entry (VIRTIO_NET_CTRL_MAC_TABLE_SET). */
    public int setMacTable(byte[] unicast) throws NativeCallException, InterruptedException {
        ByteBuffer b = ByteBuffer.allocate(4 + 6 + 4).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(1).put(unicast).putInt(0);
        return control(VirtioNetCtrl.CLASS_MAC, VirtioNetCtrl.MAC_TABLE_SET, b.array());
    }

    /** The device MAC (VIRTIO_NET_CTRL_MAC_ADDR_SET). */
    public int setMac(byte[] mac) throws NativeCallException, InterruptedException {
        return control(VirtioNetCtrl.CLASS_MAC, VirtioNetCtrl.MAC_ADDR_SET, mac);
    }

    /** The guest's receive offloads (VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET). */
    public int setGuestOffloads(long offloads) throws NativeCallException, InterruptedException {
        ByteBuffer b = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(offloads);
        return control(VirtioNetCtrl.CLASS_GUEST_OFFLOADS, VirtioNetCtrl.GUEST_OFFLOADS_SET, b.array());
    }

    private MemorySegment memorySlice(long guestAddress, long length) {
        int r = memory.findRegion(guestAddress, length);
        if (r < 0) {
            throw new IllegalArgumentException("guest range [0x" + Long.toHexString(guestAddress) + ", +" + length + ") is not in memory");
        }
        return memory.region(r).segment().asSlice(guestAddress - memory.region(r).guestAddress(), length);
    }
}

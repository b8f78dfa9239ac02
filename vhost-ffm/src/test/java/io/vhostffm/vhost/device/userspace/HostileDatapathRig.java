package io.vhostffm.vhost.device.userspace;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import io.vhostffm.vhost.internal.CallState;
import io.vhostffm.vhost.internal.Libc;
import io.vhostffm.vhost.internal.LinuxConstants;
import io.vhostffm.vhost.internal.NativeErrors;
import io.vhostffm.vhost.internal.Structs;
import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.FileDescriptor;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.os.PacketSocket;
import io.vhostffm.vhost.os.TapDevice;
import io.vhostffm.vhost.virtio.net.VirtioNetHeader;
import io.vhostffm.vring.GuestMemory;
import io.vhostffm.vring.GuestRegion;
import io.vhostffm.vring.QueueGeometry;
import io.vhostffm.vring.QueueState;
import io.vhostffm.vring.RegionGuestMemory;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;

/**
 * What the hostile-datapath fuzz target keeps for a whole run: guest memory, two TAPs and the
 * eventfds of two queue pairs. Pair 0 is the hostile guest's, pair 1 the bystander's; each pair
 * has a TAP of its own (a frame sent to a TAP's interface reaches that pair alone), with an
 * AF_PACKET socket on its interface to inject frames and read what the pair transmitted.
 *
 * <p>Guest memory is one memfd, mapped once and cut into two regions with a hole between them
 * (guest addresses {@code 0x0} and {@code 0x100000}) and a guard page before, between and after
 * them in the host mapping: the readv/writev iovecs carry host addresses the kernel writes
 * through unchecked, so a wrong translation shows as a changed guard byte. Inside the regions,
 * every byte no area below holds is a canary too. Region 0 holds the rings, a page per virtqueue
 * (descriptor table at +0, available ring at +0x100, used ring at +0x200, for queues of up to
 * {@value #MAX_SIZE}); region 1 the buffers: pair 0's 2 KiB transmit and receive slots, its
 * indirect tables, pair 1's transmit and receive slot.
 */
final class HostileDatapathRig implements AutoCloseable {
    static final int MAX_SIZE = 16;
    static final int SLOT = 2048;
    static final int HEADER = VirtioNetHeader.SIZE;
    static final long PAGE = 0x1000;
    static final long REGION0 = 0x0;
    static final long REGION0_SIZE = 4 * PAGE;
    static final long REGION1 = 0x100000;
    static final long REGION1_SIZE = 0x14000;
    static final long TX0_SLOTS = REGION1;
    static final long RX0_SLOTS = REGION1 + 0x8000;
    static final long INDIRECT = REGION1 + 0x10000;
    static final int INDIRECT_TABLES = 4;
    static final int INDIRECT_BYTES = 16 * MAX_SIZE;
    static final long TX1_SLOT = REGION1 + 0x11000;
    /** Each network-side socket's receive buffer. */
    static final int RECEIVE_BUFFER = 32 << 20;
    static final long RX1_SLOT = REGION1 + 0x12000;
    /** Host offsets of the regions in the mapping: a guard page before each and after the last. */
    private static final long HOST0 = PAGE;
    private static final long HOST1 = HOST0 + REGION0_SIZE + PAGE;
    private static final long HOST_SIZE = HOST1 + REGION1_SIZE + PAGE;

    /** A range of guest memory, or of the host mapping for the guards. */
    record Range(String name, long address, long size) {
        long end() {
            return address + size;
        }

        boolean overlaps(long from, long to) {
            return Long.compareUnsigned(from, end()) < 0 && Long.compareUnsigned(to, address) > 0;
        }
    }

    private final MemfdGuestMemory memfd;
    /** The whole host mapping, guards included. */
    final MemorySegment host;
    final GuestMemory memory;
    private final MemorySegment pattern;
    /** Host offsets of every canary: the guards and each region's bytes no area holds. */
    private final List<Range> canaries;
    /** Guest ranges where pair 0's receive buffers may send the device's writes. */
    final List<Range> writable;
    /** Host ranges of pair 1 (rings and slots): the only memory pair 1's traffic changes. */
    private final List<Range> bystander;
    final TapDevice[] taps = new TapDevice[2];
    final PacketSocket[] sockets = new PacketSocket[2];
    final EventFd[] eventFds = new EventFd[8];
    private final MemorySegment drain;
    final MemorySegment frame;

    HostileDatapathRig() throws Exception {
        memfd = MemfdGuestMemory.create("hostile-datapath", List.of(new MemfdGuestMemory.RegionSpec(0, HOST_SIZE)));
        try {
            host = memfd.region(0).segment();
            memory = new RegionGuestMemory(List.of(new GuestRegion(REGION0, host.asSlice(HOST0, REGION0_SIZE)),
                    new GuestRegion(REGION1, host.asSlice(HOST1, REGION1_SIZE))));
            List<Range> areas = new ArrayList<>();
            for (int q = 0; q < 4; q++) {
                areas.add(new Range("descriptor table " + q, descAddress(q), 16L * MAX_SIZE));
                areas.add(new Range("available ring " + q, availAddress(q), 6 + 2L * MAX_SIZE));
                areas.add(new Range("used ring " + q, usedAddress(q), 6 + 8L * MAX_SIZE));
            }
            areas.add(new Range("pair 0 transmit slots", TX0_SLOTS, (long) SLOT * MAX_SIZE));
            areas.add(new Range("pair 0 receive slots", RX0_SLOTS, (long) SLOT * MAX_SIZE));
            areas.add(new Range("indirect tables", INDIRECT, (long) INDIRECT_TABLES * INDIRECT_BYTES));
            areas.add(new Range("pair 1 transmit slot", TX1_SLOT, SLOT));
            areas.add(new Range("pair 1 receive slot", RX1_SLOT, SLOT));
            areas.sort(Comparator.comparingLong(Range::address));
            canaries = new ArrayList<>(List.of(new Range("guard before region 0", 0, HOST0),
                    new Range("guard between the regions", HOST0 + REGION0_SIZE, PAGE),
                    new Range("guard after region 1", HOST1 + REGION1_SIZE, PAGE)));
            gaps(areas, REGION0, REGION0_SIZE, HOST0);
            gaps(areas, REGION1, REGION1_SIZE, HOST1);
            writable = List.of(new Range("used ring 0", usedAddress(0), 6 + 8L * MAX_SIZE),
                    new Range("used ring 1", usedAddress(1), 6 + 8L * MAX_SIZE),
                    new Range("pair 0 slots", TX0_SLOTS, 2L * SLOT * MAX_SIZE));
            bystander = List.of(new Range("pair 1 rings", HOST0 + 2 * PAGE, 2 * PAGE),
                    new Range("pair 1 slots", HOST1 + (TX1_SLOT - REGION1), RX1_SLOT + PAGE - TX1_SLOT));
            pattern = Arena.ofAuto().allocate(HOST_SIZE);
            for (Range c : canaries) {
                for (long i = c.address(); i < c.end(); i++) {
                    pattern.set(JAVA_BYTE, i, (byte) (0xa5 ^ (i * 0x9e3779b1L >>> 24)));
                }
                MemorySegment.copy(pattern, c.address(), host, c.address(), c.size());
            }
            for (int p = 0; p < 2; p++) {
                taps[p] = TapDevice.create("vffh%d");
                taps[p].setVnetHeaderSize(HEADER);
                quiet(taps[p].name());
                taps[p].setLinkUp(true);
                taps[p].queue(0).setNonBlocking(true);
                sockets[p] = PacketSocket.bind(taps[p].name());
                // Room for what pair 0 may transmit ahead of its marker in the final rounds: up to
                // a queue's worth of chains of up to 64 KiB each (the default buffer, about
                // 200 KiB, dropped the marker behind a few dozen large frames).
                sockets[p].setReceiveBuffer(RECEIVE_BUFFER);
            }
            for (int i = 0; i < eventFds.length; i++) {
                eventFds[i] = EventFd.create("hostile-datapath " + i);
            }
            drain = Arena.ofAuto().allocate(RxPath.MAX_READ);
            frame = Arena.ofAuto().allocate(RxPath.MAX_READ);
        } catch (Exception | Error e) {
            close();
            throw e;
        }
    }

    private void gaps(List<Range> areas, long base, long size, long hostBase) {
        long at = base;
        for (Range a : areas) {
            if (a.address() < base || a.address() >= base + size) {
                continue;
            }
            if (a.address() > at) {
                canaries.add(new Range("canary before " + a.name(), hostBase + at - base, a.address() - at));
            }
            at = Math.max(at, a.end());
        }
        if (base + size > at) {
            canaries.add(new Range("canary at the end of region " + (base == REGION0 ? 0 : 1), hostBase + at - base,
                    base + size - at));
        }
    }

    /** No IPv6 on the TAP (before its link is up): the kernel sends nothing of its own into it. */
    private static void quiet(String name) throws IOException {
        Path knob = Path.of("/proc/sys/net/ipv6/conf", name, "disable_ipv6");
        if (Files.exists(knob)) {
            Files.writeString(knob, "1");
        }
    }

    static long descAddress(int queue) {
        return REGION0 + queue * PAGE;
    }

    static long availAddress(int queue) {
        return descAddress(queue) + 0x100;
    }

    static long usedAddress(int queue) {
        return descAddress(queue) + 0x200;
    }

    /** The guest ranges of the canaries inside the regions (the guards have no guest address). */
    List<Range> guestCanaries() {
        List<Range> guest = new ArrayList<>();
        for (Range c : canaries) {
            if (c.address() >= HOST0 && c.end() <= HOST0 + REGION0_SIZE) {
                guest.add(new Range(c.name(), REGION0 + c.address() - HOST0, c.size()));
            } else if (c.address() >= HOST1 && c.end() <= HOST1 + REGION1_SIZE) {
                guest.add(new Range(c.name(), REGION1 + c.address() - HOST1, c.size()));
            }
        }
        return guest;
    }

    /** A fresh split queue of {@code size} descriptors in virtqueue {@code queue}'s page. */
    static QueueState fresh(int queue, int size, boolean eventIdx) {
        return QueueState.fresh(QueueGeometry.split(size, descAddress(queue), availAddress(queue),
                usedAddress(queue), eventIdx));
    }

    /** Pair {@code p}'s configuration: its queues fresh at {@code sizes}, its eventfds and TAP. */
    QueuePairConfig config(int p, int rxSize, int txSize, boolean eventIdx) {
        return new QueuePairConfig(p, fresh(2 * p, rxSize, eventIdx), fresh(2 * p + 1, txSize, eventIdx),
                eventFds[4 * p], eventFds[4 * p + 1], eventFds[4 * p + 2], eventFds[4 * p + 3], taps[p].queue(0));
    }

    /** Zeroes every ring (all four virtqueues' areas, canaries left alone). */
    void clearRings() {
        for (int q = 0; q < 4; q++) {
            memory.slice(descAddress(q), 16L * MAX_SIZE).fill((byte) 0);
            memory.slice(availAddress(q), 6 + 2L * MAX_SIZE).fill((byte) 0);
            memory.slice(usedAddress(q), 6 + 8L * MAX_SIZE).fill((byte) 0);
        }
    }

    /** The first canary byte that changed, named with its range and host offset; empty when all hold. */
    Optional<String> damagedCanary() {
        for (Range c : canaries) {
            long at = MemorySegment.mismatch(host, c.address(), c.end(), pattern, c.address(), c.end());
            if (at >= 0) {
                long offset = c.address() + at;
                return Optional.of(String.format("%s: host offset 0x%x is 0x%02x, not 0x%02x", c.name(), offset,
                        host.get(JAVA_BYTE, offset) & 0xff, pattern.get(JAVA_BYTE, offset) & 0xff));
            }
        }
        return Optional.empty();
    }

    /** Copies the host mapping into {@code into} (of the same size). */
    void copyMemory(MemorySegment into) {
        MemorySegment.copy(host, 0, into, 0, HOST_SIZE);
    }

    static long hostSize() {
        return HOST_SIZE;
    }

    /**
     * The first byte outside pair 1's ranges where the mapping differs from {@code before}, as
     * a host offset; -1 when none.
     */
    long changedOutsideBystander(MemorySegment before) {
        long at = 0;
        for (Range b : bystander) {
            long m = MemorySegment.mismatch(host, at, b.address(), before, at, b.address());
            if (m >= 0) {
                return at + m;
            }
            at = b.end();
        }
        long m = MemorySegment.mismatch(host, at, HOST_SIZE, before, at, HOST_SIZE);
        return m >= 0 ? at + m : -1;
    }

    /** Reads and drops every frame waiting on pair {@code p}'s TAP and socket. */
    void drain(int p, CallState s) throws NativeCallException {
        int n = taps[p].queue(0).acquire();
        try {
            while (Libc.read(s, n, drain, drain.byteSize()) >= 0) {
                // dropped: left by the previous input
            }
        } finally {
            taps[p].queue(0).release();
        }
        drainSocket(p);
    }

    /** Reads and drops every frame waiting on pair {@code p}'s socket (what the pair transmitted so far). */
    void drainSocket(int p) throws NativeCallException {
        while (sockets[p].receive(drain, 0) >= 0) {
            // dropped
        }
    }

    /**
     * Writes a numbered frame of {@code length} bytes (14..1514) into {@link #frame}: broadcast,
     * an experimental ethertype, {@code seq} after it, then a pattern of {@code seq}.
     */
    void buildFrame(long seq, int length) {
        for (int i = 0; i < 6; i++) {
            frame.set(JAVA_BYTE, i, (byte) 0xff);
            frame.set(JAVA_BYTE, 6 + i, (byte) (i == 0 ? 0x02 : i));
        }
        frame.set(JAVA_BYTE, 12, (byte) 0x88);
        frame.set(JAVA_BYTE, 13, (byte) 0xb5);
        for (int i = 14; i < length; i++) {
            frame.set(JAVA_BYTE, i, (byte) (i - 14 < 8 ? seq >>> (8 * (i - 14)) : seq * 31 + i));
        }
    }

    /** Sends {@link #frame}'s first {@code length} bytes to pair {@code p}'s TAP (the device reads it there). */
    void inject(int p, int length) throws NativeCallException {
        sockets[p].send(frame.asSlice(0, length));
    }

    /**
     * Waits until {@code deadlineNanos} ({@link System#nanoTime}) for a frame pair {@code p}
     * transmitted with sequence {@code seq}; other frames are dropped.
     */
    boolean awaitTransmitted(int p, long seq, long deadlineNanos) throws NativeCallException {
        while (true) {
            long left = (deadlineNanos - System.nanoTime()) / 1_000_000;
            if (left <= 0) {
                return false;
            }
            long n = sockets[p].receive(drain, (int) Math.min(left, 1000));
            if (n >= 22 && drain.get(JAVA_BYTE, 12) == (byte) 0x88 && drain.get(JAVA_BYTE, 13) == (byte) 0xb5
                    && sequenceAt(drain, 14) == seq) {
                return true;
            }
        }
    }

    /** What pair {@code p}'s socket counted since the last call, for a failure's message. */
    String socketStatistics(int p) {
        try {
            return "network side " + sockets[p].statistics();
        } catch (NativeCallException e) {
            return "network side statistics unreadable: " + e.getMessage();
        }
    }

    static long sequenceAt(MemorySegment s, long at) {
        long seq = 0;
        for (int i = 0; i < 8; i++) {
            seq |= (s.get(JAVA_BYTE, at + i) & 0xffL) << (8 * i);
        }
        return seq;
    }

    /** Waits up to {@code millis} for pair {@code p}'s TAP to be readable (a frame for the device). */
    void awaitTapReadable(int p, int millis, CallState s) throws NativeCallException {
        FileDescriptor fd = taps[p].queue(0);
        int n = fd.acquire();
        try {
            s.pollfd.set(JAVA_INT, 0, n);
            s.pollfd.set(JAVA_SHORT, Structs.offset(Structs.POLLFD, "events"), LinuxConstants.POLLIN);
            s.pollfd.set(JAVA_SHORT, Structs.offset(Structs.POLLFD, "revents"), (short) 0);
            if (Libc.poll(s, s.pollfd, 1, millis) < 0) {
                throw NativeErrors.failure("poll", fd, s.errno());
            }
        } finally {
            fd.release();
        }
    }

    @Override
    public void close() {
        for (EventFd e : eventFds) {
            if (e != null) {
                e.close();
            }
        }
        for (int p = 0; p < 2; p++) {
            if (sockets[p] != null) {
                sockets[p].close();
            }
            if (taps[p] != null) {
                taps[p].close();
            }
        }
        memfd.close();
    }
}

package io.vhostffm.vhost.os;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import io.vhostffm.vhost.internal.CallState;
import io.vhostffm.vhost.internal.Libc;
import io.vhostffm.vhost.internal.LinuxConstants;
import io.vhostffm.vhost.internal.NativeErrors;
import io.vhostffm.vhost.internal.Structs;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * A raw AF_PACKET socket bound to one network interface, for every protocol (ETH_P_ALL): it
 * reads whole Ethernet frames the interface receives or sends, and sends frames out of it. On a
 * TAP this is the network side of a guest's NIC: frames the guest transmits arrive here, frames
 * sent here reach the guest's receive queues. A test tool and a debugging aid, not a datapath.
 *
 * <p>{@link #send} and {@link #receive} allocate nothing (the thread's {@code pollfd} is reused).
 */
public final class PacketSocket implements AutoCloseable {
    private static final int EAGAIN = Errno.number("EAGAIN").orElseThrow();
    private static final int EINTR = Errno.number("EINTR").orElseThrow();
    private static final long POLLFD_EVENTS = Structs.offset(Structs.POLLFD, "events");
    private static final long POLLFD_REVENTS = Structs.offset(Structs.POLLFD, "revents");
    /** htons(ETH_P_ALL): sockaddr_ll and socket() take the protocol in network byte order. */
    private static final int PROTOCOL_ALL = Short.toUnsignedInt(Short.reverseBytes((short) LinuxConstants.ETH_P_ALL));

    private final FileDescriptor fd;
    private final String interfaceName;
    private final int interfaceIndex;

    private PacketSocket(FileDescriptor fd, String interfaceName, int interfaceIndex) {
        this.fd = fd;
        this.interfaceName = interfaceName;
        this.interfaceIndex = interfaceIndex;
    }

    /**
     * A socket(AF_PACKET, SOCK_RAW, 0) bound to {@code interfaceName} for ETH_P_ALL: it never
     * holds a frame of another interface. Needs CAP_NET_RAW.
     */
    public static PacketSocket bind(String interfaceName) throws NativeCallException {
        CallState s = CallState.current();
        int index;
        try (Arena arena = Arena.ofConfined()) {
            index = Libc.ifNametoindex(s, arena.allocateFrom(interfaceName));
        }
        if (index == 0) {
            throw NativeErrors.failure("if_nametoindex", interfaceName, s.errno());
        }
        // Protocol 0: the socket receives nothing until bind() names the interface and ETH_P_ALL
        // (packet(7)). Created for ETH_P_ALL, it would queue every interface's frames until then.
        int n = Libc.socket(s, LinuxConstants.AF_PACKET, LinuxConstants.SOCK_RAW | LinuxConstants.SOCK_CLOEXEC, 0);
        if (n < 0) {
            throw NativeErrors.failure("socket", "AF_PACKET, SOCK_RAW, 0", s.errno());
        }
        FileDescriptor fd = FileDescriptor.adopt(n, "AF_PACKET socket on " + interfaceName);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment address = arena.allocate(Structs.SOCKADDR_LL);
            address.set(JAVA_SHORT, Structs.offset(Structs.SOCKADDR_LL, "sll_family"), (short) LinuxConstants.AF_PACKET);
            address.set(JAVA_SHORT, Structs.offset(Structs.SOCKADDR_LL, "sll_protocol"), (short) PROTOCOL_ALL);
            address.set(JAVA_INT, Structs.offset(Structs.SOCKADDR_LL, "sll_ifindex"), index);
            NativeErrors.check(Libc.bind(s, n, address, (int) Structs.SOCKADDR_LL.byteSize()), "bind", fd, s);
            return new PacketSocket(fd, interfaceName, index);
        } catch (NativeCallException | RuntimeException e) {
            fd.close();
            throw e;
        }
    }

    /** The interface's index (if_nametoindex). */
    public int interfaceIndex() {
        return interfaceIndex;
    }

    /** The interface's name. */
    public String interfaceName() {
        return interfaceName;
    }

    /** The socket's descriptor. */
    public FileDescriptor fd() {
        return fd;
    }

    /**
     * SO_RCVBUFFORCE (root may go past net.core.rmem_max), falling back to SO_RCVBUF: room for
     * bursts a slow reader would otherwise lose.
     */
    public void setReceiveBuffer(int bytes) throws NativeCallException {
        int n = fd.acquire();
        try (Arena arena = Arena.ofConfined()) {
            CallState s = CallState.current();
            MemorySegment value = arena.allocate(JAVA_INT);
            value.set(JAVA_INT, 0, bytes);
            if (Libc.setsockopt(s, n, LinuxConstants.SOL_SOCKET, LinuxConstants.SO_RCVBUFFORCE, value, 4) < 0) {
                NativeErrors.check(Libc.setsockopt(s, n, LinuxConstants.SOL_SOCKET, LinuxConstants.SO_RCVBUF, value, 4),
                        "setsockopt(SO_RCVBUF)", fd, s);
            }
        } finally {
            fd.release();
        }
    }

    /**
     * What the kernel counted on this socket's receive side since the last call (or since it was
     * bound): getsockopt(SOL_PACKET, PACKET_STATISTICS). Reading resets the kernel's counters, so
     * a caller that wants totals adds up the answers.
     *
     * @see Statistics
     */
    public Statistics statistics() throws NativeCallException {
        int n = fd.acquire();
        try (Arena arena = Arena.ofConfined()) {
            CallState s = CallState.current();
            MemorySegment value = arena.allocate(JAVA_INT, 2); // struct tpacket_stats {unsigned tp_packets, tp_drops}
            MemorySegment length = arena.allocate(JAVA_INT);
            length.set(JAVA_INT, 0, (int) value.byteSize());
            NativeErrors.check(Libc.getsockopt(s, n, LinuxConstants.SOL_PACKET, LinuxConstants.PACKET_STATISTICS, value,
                    length), "getsockopt(PACKET_STATISTICS)", fd, s);
            long all = Integer.toUnsignedLong(value.get(JAVA_INT, 0));
            long dropped = Integer.toUnsignedLong(value.get(JAVA_INT, 4));
            // The kernel adds the drops into tp_packets before it answers (af_packet.c): take them out.
            return new Statistics(all - dropped, dropped);
        } finally {
            fd.release();
        }
    }

    /**
     * A socket's receive counters over one interval.
     *
     * @param queued frames the socket took into its receive queue
     * @param dropped frames meant for the socket that the kernel dropped: its receive queue was
     *     full (the reader fell behind) or memory ran out. Frames the interface's per-CPU backlog
     *     dropped before they reached any socket are not here ({@code /proc/net/softnet_stat}).
     */
    public record Statistics(long queued, long dropped) {}

    /** Sends one whole Ethernet frame (destination MAC first) out of the interface. */
    public void send(MemorySegment frame) throws NativeCallException {
        int n = fd.acquire();
        try {
            CallState s = CallState.current();
            long sent = NativeErrors.check(Libc.send(s, n, frame, frame.byteSize(), 0), "send", fd, s);
            if (sent != frame.byteSize()) {
                throw new NativeCallException("send", null, 0, fd.toString(),
                        "sent " + sent + " of a " + frame.byteSize() + "-byte frame");
            }
        } finally {
            fd.release();
        }
    }

    /**
     * Receives one frame into {@code buffer}, waiting up to {@code timeoutMillis} (negative:
     * forever).
     *
     * @return the frame's full length (larger than the buffer when it was cut: MSG_TRUNC), or -1
     *     when nothing arrived in time or a signal interrupted the wait (as {@link EventFd#poll}:
     *     a caller waits against its own deadline and calls again)
     */
    public long receive(MemorySegment buffer, int timeoutMillis) throws NativeCallException {
        int n = fd.acquire();
        try {
            CallState s = CallState.current();
            long got = Libc.recv(s, n, buffer, buffer.byteSize(), LinuxConstants.MSG_DONTWAIT | LinuxConstants.MSG_TRUNC);
            if (got >= 0) {
                return got;
            }
            if (s.errno() != EAGAIN) {
                throw NativeErrors.failure("recv", fd, s.errno());
            }
            if (timeoutMillis == 0) {
                return -1;
            }
            s.pollfd.set(JAVA_INT, 0, n);
            s.pollfd.set(JAVA_SHORT, POLLFD_EVENTS, LinuxConstants.POLLIN);
            s.pollfd.set(JAVA_SHORT, POLLFD_REVENTS, (short) 0);
            int ready = Libc.poll(s, s.pollfd, 1, timeoutMillis);
            if (ready < 0) {
                if (s.errno() == EINTR) {
                    return -1; // a profiler's or debugger's signal: nothing arrived yet
                }
                throw NativeErrors.failure("poll", fd, s.errno());
            }
            if (ready == 0) {
                return -1;
            }
            got = Libc.recv(s, n, buffer, buffer.byteSize(), LinuxConstants.MSG_DONTWAIT | LinuxConstants.MSG_TRUNC);
            if (got < 0) {
                if (s.errno() == EAGAIN) {
                    return -1;
                }
                throw NativeErrors.failure("recv", fd, s.errno());
            }
            return got;
        } finally {
            fd.release();
        }
    }

    /** Closes the socket (once). */
    @Override
    public void close() {
        fd.close();
    }

    @Override
    public String toString() {
        return fd.toString();
    }
}

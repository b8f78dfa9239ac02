package io.vhostffm.vhost;

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
 * A raw AF_PACKET socket bound to one network interface ({@code socket(AF_PACKET, SOCK_RAW,
 * htons(ETH_P_ALL))}, {@code bind} to a {@code sockaddr_ll} with the interface's index): the
 * network side of a TAP. A frame {@link #send sent} here leaves through the interface, so the TAP
 * owner reads it from its queue descriptor; a frame the TAP owner writes arrives here.
 *
 * <p>Frames the socket itself sends are not received back ({@code PACKET_IGNORE_OUTGOING}), so a
 * test sees only what came in from the TAP. Needs CAP_NET_RAW. {@link #send}, {@link #receive}
 * and {@link #poll} allocate nothing.
 */
public final class PacketSocket implements AutoCloseable {
    private static final int EAGAIN = Errno.number("EAGAIN").orElseThrow();
    private static final int EINTR = Errno.number("EINTR").orElseThrow();
    private static final long POLLFD_EVENTS = Structs.offset(Structs.POLLFD, "events");
    private static final long POLLFD_REVENTS = Structs.offset(Structs.POLLFD, "revents");

    private final FileDescriptor fd;
    private final String interfaceName;
    private final int interfaceIndex;

    private PacketSocket(FileDescriptor fd, String interfaceName, int interfaceIndex) {
        this.fd = fd;
        this.interfaceName = interfaceName;
        this.interfaceIndex = interfaceIndex;
    }

    /**
     * Opens a non-blocking raw packet socket for every protocol and binds it to {@code interfaceName}
     * (which should be up: a down interface neither sends nor receives).
     */
    public static PacketSocket bind(String interfaceName) throws NativeCallException {
        int index = interfaceIndex(interfaceName);
        CallState s = CallState.current();
        int protocol = Short.toUnsignedInt(Short.reverseBytes((short) LinuxConstants.ETH_P_ALL)); // htons
        int n = Libc.socket(s, LinuxConstants.AF_PACKET,
                LinuxConstants.SOCK_RAW | LinuxConstants.SOCK_CLOEXEC | LinuxConstants.SOCK_NONBLOCK, protocol);
        if (n < 0) {
            throw NativeErrors.failure("socket", "AF_PACKET, SOCK_RAW, ETH_P_ALL", s.errno());
        }
        FileDescriptor fd = FileDescriptor.adopt(n, "AF_PACKET socket on " + interfaceName);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment one = arena.allocate(JAVA_INT);
            one.set(JAVA_INT, 0, 1);
            NativeErrors.check(Libc.setsockopt(s, n, LinuxConstants.SOL_PACKET, LinuxConstants.PACKET_IGNORE_OUTGOING,
                    one, 4), "setsockopt(PACKET_IGNORE_OUTGOING)", fd, s);
            MemorySegment address = arena.allocate(Structs.SOCKADDR_LL);
            address.set(JAVA_SHORT, Structs.offset(Structs.SOCKADDR_LL, "sll_family"), (short) LinuxConstants.AF_PACKET);
            address.set(JAVA_SHORT, Structs.offset(Structs.SOCKADDR_LL, "sll_protocol"), (short) protocol);
            address.set(JAVA_INT, Structs.offset(Structs.SOCKADDR_LL, "sll_ifindex"), index);
            NativeErrors.check(Libc.bind(s, n, address, (int) Structs.SOCKADDR_LL.byteSize()), "bind", fd, s);
            return new PacketSocket(fd, interfaceName, index);
        } catch (NativeCallException | RuntimeException e) {
            fd.close();
            throw e;
        }
    }

    /** if_nametoindex: the kernel's index of a network interface. */
    public static int interfaceIndex(String interfaceName) throws NativeCallException {
        try (Arena arena = Arena.ofConfined()) {
            CallState s = CallState.current();
            int index = Libc.ifNametoindex(s, arena.allocateFrom(interfaceName));
            if (index == 0) {
                throw NativeErrors.failure("if_nametoindex", interfaceName, s.errno());
            }
            return index;
        }
    }

    /**
     * Sets the receive buffer (SO_RCVBUFFORCE, which root may set beyond {@code rmem_max}), so a
     * burst of frames waits here instead of being dropped; the kernel doubles the value for its
     * bookkeeping.
     */
    public void setReceiveBuffer(int bytes) throws NativeCallException {
        int n = fd.acquire();
        try (Arena arena = Arena.ofConfined()) {
            CallState s = CallState.current();
            MemorySegment value = arena.allocate(JAVA_INT);
            value.set(JAVA_INT, 0, bytes);
            NativeErrors.check(Libc.setsockopt(s, n, LinuxConstants.SOL_SOCKET, LinuxConstants.SO_RCVBUFFORCE, value, 4),
                    "setsockopt(SO_RCVBUFFORCE)", fd, s);
        } finally {
            fd.release();
        }
    }

    /** The interface this socket is bound to. */
    public String interfaceName() {
        return interfaceName;
    }

    /** The interface's index. */
    public int interfaceIndex() {
        return interfaceIndex;
    }

    /** The socket's descriptor. */
    public FileDescriptor fd() {
        return fd;
    }

    /**
     * Sends one Ethernet frame (destination MAC first) out of the interface.
     *
     * @return false when the socket buffer is full (EAGAIN): nothing was sent, try again later
     */
    public boolean send(MemorySegment frame) throws NativeCallException {
        int n = fd.acquire();
        try {
            CallState s = CallState.current();
            long sent = Libc.write(s, n, frame, frame.byteSize());
            if (sent < 0) {
                int errno = s.errno();
                if (errno == EAGAIN) {
                    return false;
                }
                throw NativeErrors.failure("write", fd, errno);
            }
            return true;
        } finally {
            fd.release();
        }
    }

    /**
     * Receives one frame that came in on the interface into {@code buffer}.
     *
     * @return its length (capped at the buffer's size), or -1 when none is waiting
     */
    public long receive(MemorySegment buffer) throws NativeCallException {
        int n = fd.acquire();
        try {
            CallState s = CallState.current();
            long received = Libc.read(s, n, buffer, buffer.byteSize());
            if (received < 0) {
                int errno = s.errno();
                if (errno == EAGAIN) {
                    return -1;
                }
                throw NativeErrors.failure("read", fd, errno);
            }
            return received;
        } finally {
            fd.release();
        }
    }

    /**
     * Waits up to {@code timeoutMillis} (negative: forever) for a frame to arrive.
     *
     * @return true when one is waiting; false on timeout or when a signal interrupted the wait
     */
    public boolean poll(int timeoutMillis) throws NativeCallException {
        int n = fd.acquire();
        try {
            CallState s = CallState.current();
            s.pollfd.set(JAVA_INT, 0, n);
            s.pollfd.set(JAVA_SHORT, POLLFD_EVENTS, LinuxConstants.POLLIN);
            s.pollfd.set(JAVA_SHORT, POLLFD_REVENTS, (short) 0);
            int ready = Libc.poll(s, s.pollfd, 1, timeoutMillis);
            if (ready < 0) {
                int errno = s.errno();
                if (errno == EINTR) {
                    return false;
                }
                throw NativeErrors.failure("poll", fd, errno);
            }
            return ready > 0 && (s.pollfd.get(JAVA_SHORT, POLLFD_REVENTS) & LinuxConstants.POLLIN) != 0;
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

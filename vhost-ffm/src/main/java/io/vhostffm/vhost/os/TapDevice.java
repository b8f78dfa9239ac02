package io.vhostffm.vhost.os;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import io.vhostffm.vhost.internal.CallState;
import io.vhostffm.vhost.internal.Ioctls;
import io.vhostffm.vhost.internal.Libc;
import io.vhostffm.vhost.internal.LinuxConstants;
import io.vhostffm.vhost.internal.NativeErrors;
import io.vhostffm.vhost.internal.Structs;
import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;

/**
 * A TAP network interface made through {@code /dev/net/tun}, with one descriptor per queue
 * (vhost-net binds each with NET_SET_BACKEND). Not persistent: closing the last queue
 * descriptor removes the interface from the system.
 *
 * <p>Set-up calls allocate a small {@code struct ifreq} each; none of them is on a data path.
 */
public final class TapDevice implements AutoCloseable {
    /** The clone device. */
    public static final String TUN_DEVICE = "/dev/net/tun";
    /** What vhost-net wants: a TAP without packet info, with virtio-net headers. */
    public static final Set<TunFlag> VHOST_FLAGS = EnumSet.of(TunFlag.TAP, TunFlag.NO_PI, TunFlag.VNET_HDR);

    private static final long IFR_FLAGS = Structs.IFREQ.byteOffset(
            MemoryLayout.PathElement.groupElement("ifr_ifru"), MemoryLayout.PathElement.groupElement("ifr_flags"));
    private static final long IFR_MTU = Structs.IFREQ.byteOffset(
            MemoryLayout.PathElement.groupElement("ifr_ifru"), MemoryLayout.PathElement.groupElement("ifr_mtu"));
    private static final int IFNAMSIZ = LinuxConstants.IFNAMSIZ;
    private static final int EINVAL = Errno.number("EINVAL").orElseThrow();

    private final String name;
    private final List<FileDescriptor> queues;

    /**
     * The two TUNSETQUEUE requests (an ifreq with no name and IFF_ATTACH_QUEUE or
     * IFF_DETACH_QUEUE), made once: a migration destination attaches its queues inside the
     * downtime, where nothing should allocate. The kernel only reads them, so every TAP and every
     * thread (a parallel quickstart) shares the same two, in the global arena (80 bytes).
     */
    private static final MemorySegment ATTACH_QUEUE_REQUEST =
            ifreq(Arena.global(), "", (short) TunFlag.ATTACH_QUEUE.value());
    private static final MemorySegment DETACH_QUEUE_REQUEST =
            ifreq(Arena.global(), "", (short) TunFlag.DETACH_QUEUE.value());

    private TapDevice(String name, List<FileDescriptor> queues) {
        this.name = name;
        this.queues = List.copyOf(queues);
    }

    /** A single-queue TAP with {@link #VHOST_FLAGS}; the kernel picks the name when {@code name} is empty. */
    public static TapDevice create(String name) throws NativeCallException {
        return create(name, 1, VHOST_FLAGS);
    }

    /**
     * A TAP with {@code queues} queue descriptors. {@code flags} must hold {@link TunFlag#TAP};
     * {@link TunFlag#MULTI_QUEUE} is added when {@code queues > 1}. {@code name} may be empty
     * (kernel picks {@code tapN}) or a template with {@code %d}.
     */
    public static TapDevice create(String name, int queues, Set<TunFlag> flags) throws NativeCallException {
        if (!flags.contains(TunFlag.TAP)) {
            throw new IllegalArgumentException("a TAP device needs TunFlag.TAP: " + flags);
        }
        if (queues < 1) {
            throw new IllegalArgumentException("queues must be at least 1: " + queues);
        }
        checkName(name);
        EnumSet<TunFlag> wanted = EnumSet.copyOf(flags);
        if (queues > 1) {
            wanted.add(TunFlag.MULTI_QUEUE);
        }
        short ifrFlags = (short) TunFlag.encode(wanted);
        List<FileDescriptor> fds = new ArrayList<>();
        String actualName = name;
        try (Arena arena = Arena.ofConfined()) {
            for (int q = 0; q < queues; q++) {
                MemorySegment ifr = ifreq(arena, actualName, ifrFlags);
                int n = Ioctls.openAndCall(TUN_DEVICE, IoctlRequest.TUNSETIFF, ifr);
                // the kernel writes the chosen name back (a template such as vtap%d becomes vtap0)
                actualName = ifr.getString(0, StandardCharsets.US_ASCII);
                fds.add(FileDescriptor.adopt(n, "tap " + actualName + " queue " + q));
            }
            return new TapDevice(actualName, fds);
        } catch (NativeCallException | RuntimeException e) {
            fds.forEach(FileDescriptor::close);
            throw e;
        }
    }

    /**
     * A TAP made elsewhere, from its queue descriptors (e.g. received over SCM_RIGHTS from
     * another process): takes ownership of {@code queueFds}, queue 0 first. Checks with TUNGETIFF
     * that the first one is a TAP named {@code name}; closes them all if not.
     */
    public static TapDevice fromQueues(String name, List<FileDescriptor> queueFds) throws NativeCallException {
        checkName(name);
        if (queueFds.isEmpty()) {
            throw new IllegalArgumentException("a TAP needs at least one queue descriptor");
        }
        TapDevice tap = new TapDevice(name, queueFds);
        try {
            if (!tap.flags().contains(TunFlag.TAP)) {
                throw new IllegalArgumentException(queueFds.get(0) + " is a TUN, not a TAP device");
            }
            return tap;
        } catch (NativeCallException | RuntimeException e) {
            tap.close();
            throw e;
        }
    }

    /** TUNGETFEATURES: the flags this kernel's TUN driver supports. */
    public static Set<TunFlag> supportedFlags() throws NativeCallException {
        try (FileDescriptor fd = FileDescriptor.openReadWrite(TUN_DEVICE); Arena arena = Arena.ofConfined()) {
            MemorySegment value = arena.allocate(JAVA_INT);
            Ioctls.call(fd, IoctlRequest.TUNGETFEATURES, value, null);
            return TunFlag.decode(value.get(JAVA_INT, 0) & 0xffffffffL);
        }
    }

    /** The interface name, e.g. {@code tap0}. */
    public String name() {
        return name;
    }

    /** The queue descriptors, queue 0 first. Owned by this device. */
    public List<FileDescriptor> queues() {
        return queues;
    }

    /** One queue's descriptor. */
    public FileDescriptor queue(int index) {
        return queues.get(index);
    }

    /** TUNGETIFF on a queue: the flags the interface has (TAP, NO_PI, VNET_HDR, MULTI_QUEUE...). */
    public Set<TunFlag> flags() throws NativeCallException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ifr = arena.allocate(Structs.IFREQ);
            Ioctls.call(queues.get(0), IoctlRequest.TUNGETIFF, ifr, null);
            String reported = ifr.getString(0, StandardCharsets.US_ASCII);
            if (!reported.equals(name)) {
                throw new IllegalStateException("TUNGETIFF names " + reported + ", expected " + name);
            }
            return TunFlag.decode(ifr.get(JAVA_SHORT, IFR_FLAGS) & 0xffffL);
        }
    }

    /** TUNSETVNETHDRSZ: 10 for legacy virtio-net headers, 12 with MRG_RXBUF or VERSION_1. */
    public void setVnetHeaderSize(int size) throws NativeCallException {
        setInt(IoctlRequest.TUNSETVNETHDRSZ, size);
    }

    /** TUNGETVNETHDRSZ. */
    public int vnetHeaderSize() throws NativeCallException {
        return getInt(IoctlRequest.TUNGETVNETHDRSZ);
    }

    /** TUNSETOFFLOAD: the offloads the TAP may hand us (empty: checksummed, segmented packets only). */
    public void setOffload(Set<TunOffload> offloads) throws NativeCallException {
        for (FileDescriptor q : queues) {
            Ioctls.callWithValue(q, IoctlRequest.TUNSETOFFLOAD, TunOffload.encode(offloads));
        }
    }

    /**
     * TUNSETOFFLOAD with {@code TUN_F_*} flags as one mask ({@link TunOffload#value()}s or'ed) on
     * every queue, as the datapath computes them from the guest's offloads.
     */
    public void setOffloadFlags(int tunOffloadFlags) throws NativeCallException {
        for (FileDescriptor q : queues) {
            Ioctls.callWithValue(q, IoctlRequest.TUNSETOFFLOAD, Integer.toUnsignedLong(tunOffloadFlags));
        }
    }

    /** TUNSETSNDBUF: the socket send buffer of every queue, in bytes. */
    public void setSendBuffer(int bytes) throws NativeCallException {
        for (FileDescriptor q : queues) {
            setInt(q, IoctlRequest.TUNSETSNDBUF, bytes);
        }
    }

    /** TUNGETSNDBUF of queue 0. */
    public int sendBuffer() throws NativeCallException {
        return getInt(IoctlRequest.TUNGETSNDBUF);
    }

    /** TUNSETQUEUE with IFF_DETACH_QUEUE: the queue stops carrying traffic (multi-queue only). */
    public void detachQueue(int index) throws NativeCallException {
        setQueue(index, TunFlag.DETACH_QUEUE);
    }

    /** TUNSETQUEUE with IFF_ATTACH_QUEUE: a detached queue carries traffic again. */
    public void attachQueue(int index) throws NativeCallException {
        setQueue(index, TunFlag.ATTACH_QUEUE);
    }

    private void setQueue(int index, TunFlag flag) throws NativeCallException {
        Ioctls.call(queues.get(index), IoctlRequest.TUNSETQUEUE, queueRequest(flag), null);
    }

    private static MemorySegment queueRequest(TunFlag flag) {
        return flag == TunFlag.ATTACH_QUEUE ? ATTACH_QUEUE_REQUEST : DETACH_QUEUE_REQUEST;
    }

    /**
     * Makes sure queue {@code index} carries traffic ({@code attached}) or not: TUNSETQUEUE with
     * IFF_ATTACH_QUEUE or IFF_DETACH_QUEUE, where the kernel's EINVAL for a queue already in that
     * state is an answer, returned as {@code false} without an exception. The state is asked of
     * the kernel every time, never cached: another backend, or another process holding the same
     * queue descriptors (a migration source), may have changed it. A single-queue TAP has no
     * TUNSETQUEUE; its one queue is always attached, so attaching it is a no-op and detaching it
     * an error.
     *
     * @return whether the queue changed state
     * @throws IllegalArgumentException when asked to detach the queue of a single-queue TAP
     */
    public boolean setQueueAttached(int index, boolean attached) throws NativeCallException {
        if (queues.size() == 1) {
            if (!attached) {
                throw new IllegalArgumentException("tap " + name + " has a single queue; it cannot be detached");
            }
            return false;
        }
        TunFlag flag = attached ? TunFlag.ATTACH_QUEUE : TunFlag.DETACH_QUEUE;
        return Ioctls.callAnswering(queues.get(index), IoctlRequest.TUNSETQUEUE, queueRequest(flag), null, EINVAL) >= 0;
    }

    /** Brings the link up or down (SIOCSIFFLAGS with IFF_UP on an AF_INET socket). */
    public void setLinkUp(boolean up) throws NativeCallException {
        try (FileDescriptor socket = inetSocket(); Arena arena = Arena.ofConfined()) {
            MemorySegment ifr = ifreq(arena, name, (short) 0);
            Ioctls.call(socket, IoctlRequest.SIOCGIFFLAGS, ifr, null);
            short flags = ifr.get(JAVA_SHORT, IFR_FLAGS);
            flags = (short) (up ? flags | LinuxConstants.IFF_UP : flags & ~LinuxConstants.IFF_UP);
            ifr.set(JAVA_SHORT, IFR_FLAGS, flags);
            Ioctls.call(socket, IoctlRequest.SIOCSIFFLAGS, ifr, null);
        }
    }

    /** Whether the link is administratively up (SIOCGIFFLAGS). */
    public boolean isLinkUp() throws NativeCallException {
        try (FileDescriptor socket = inetSocket(); Arena arena = Arena.ofConfined()) {
            MemorySegment ifr = ifreq(arena, name, (short) 0);
            Ioctls.call(socket, IoctlRequest.SIOCGIFFLAGS, ifr, null);
            return (ifr.get(JAVA_SHORT, IFR_FLAGS) & LinuxConstants.IFF_UP) != 0;
        }
    }

    /**
     * The interface's MTU as the kernel has it now (SIOCGIFMTU on an AF_INET socket of this
     * process's network namespace, where the TAP lives: unlike {@code /sys/class/net}, which shows
     * the namespace of whoever mounted it).
     */
    public int mtu() throws NativeCallException {
        try (FileDescriptor socket = inetSocket(); Arena arena = Arena.ofConfined()) {
            MemorySegment ifr = ifreq(arena, name, (short) 0);
            Ioctls.call(socket, IoctlRequest.SIOCGIFMTU, ifr, null);
            return ifr.get(JAVA_INT, IFR_MTU);
        }
    }

    private static FileDescriptor inetSocket() throws NativeCallException {
        CallState s = CallState.current();
        int n = Libc.socket(s, LinuxConstants.AF_INET, LinuxConstants.SOCK_DGRAM | LinuxConstants.SOCK_CLOEXEC, 0);
        if (n < 0) {
            throw NativeErrors.failure("socket", "AF_INET, SOCK_DGRAM (for interface flags)", s.errno());
        }
        return FileDescriptor.adopt(n, "AF_INET socket for interface ioctls");
    }

    private void setInt(IoctlRequest request, int value) throws NativeCallException {
        setInt(queues.get(0), request, value);
    }

    private static void setInt(FileDescriptor fd, IoctlRequest request, int value) throws NativeCallException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment arg = arena.allocate(JAVA_INT);
            arg.set(JAVA_INT, 0, value);
            Ioctls.call(fd, request, arg, null);
        }
    }

    private int getInt(IoctlRequest request) throws NativeCallException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment arg = arena.allocate(JAVA_INT);
            Ioctls.call(queues.get(0), request, arg, null);
            return arg.get(JAVA_INT, 0);
        }
    }

    private static MemorySegment ifreq(Arena arena, String name, short flags) {
        MemorySegment ifr = arena.allocate(Structs.IFREQ);
        byte[] bytes = name.getBytes(StandardCharsets.US_ASCII);
        MemorySegment.copy(bytes, 0, ifr, JAVA_BYTE, 0, bytes.length);
        ifr.set(JAVA_SHORT, IFR_FLAGS, flags);
        return ifr;
    }

    private static void checkName(String name) {
        if (name.length() >= IFNAMSIZ || !name.chars().allMatch(c -> c > ' ' && c < 127 && c != '/')) {
            throw new IllegalArgumentException("not an interface name (ASCII, under " + IFNAMSIZ + " bytes, no '/'): \"" + name + "\"");
        }
    }

    /** Closes every queue; the interface disappears with the last one. Idempotent. */
    @Override
    public void close() {
        queues.forEach(FileDescriptor::close);
    }

    @Override
    public String toString() {
        return "TapDevice " + name + " (" + queues.size() + " queue" + (queues.size() == 1 ? ")" : "s)");
    }
}

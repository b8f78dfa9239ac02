package io.vhostffm.vhost.device.kernel;

import io.vhostffm.vhost.os.DescriptorClosedException;
import io.vhostffm.vhost.os.FileDescriptor;
import io.vhostffm.vhost.os.IoctlObserver;
import io.vhostffm.vhost.os.IoctlRequest;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.MemfdRegion;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.virtio.VirtioFeature;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import io.vhostffm.vhost.internal.Ioctls;
import io.vhostffm.vhost.internal.LinuxConstants;
import io.vhostffm.vhost.internal.Structs;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * One {@code /dev/vhost-net} instance (one virtio-net device's pair of queues, rx = 0, tx = 1)
 * and a method per vhost ioctl.
 *
 * <p>No allocation per call: each kind of argument struct has one segment allocated when the
 * handle opens, and every method fills it, makes the ioctl, and (for GET_* requests) reads the
 * answer back from the same segment after the call. Methods are synchronized because those
 * segments are shared; the kernel serializes vhost ioctls on a mutex anyway.
 *
 * <p>Every ioctl goes through one seam, {@link #setObserver}, for counting and fault injection.
 *
 * <p>Order the kernel expects (QEMU's): {@link #setOwner} first; {@link #setFeatures};
 * {@link #setMemTable}; per queue {@link #setVringNum}, {@link #setVringBase},
 * {@link #setVringAddr}, {@link #setVringKick}, {@link #setVringCall}; {@link #setBackend} last.
 * To stop: {@link #clearBackend}, then {@link #getVringBase}. NUM and BASE are refused with
 * EBUSY while a backend is bound.
 */
public final class VhostNet implements AutoCloseable {
    /** The device node. */
    public static final String DEVICE = "/dev/vhost-net";
    /** vhost-net's queues: receive. */
    public static final int RX_QUEUE = 0;
    /** vhost-net's queues: transmit. */
    public static final int TX_QUEUE = 1;
    /** The fd value that unbinds a kick, call, err or backend (VHOST_FILE_UNBIND). */
    public static final int FILE_UNBIND = LinuxConstants.VHOST_FILE_UNBIND;
    /** Set in {@link #setVringAddr}'s flags to log used-ring writes ({@code 1 << VHOST_VRING_F_LOG}). */
    public static final int VRING_FLAG_LOG = 1 << LinuxConstants.VHOST_VRING_F_LOG;
    /**
     * Regions one mem table may hold here; the kernel's default limit (vhost's max_mem_regions
     * module parameter) is also 64.
     */
    public static final int MAX_MEM_REGIONS = 64;

    private static final long STATE_NUM = Structs.offset(Structs.VHOST_VRING_STATE, "num");
    private static final long FILE_FD = Structs.offset(Structs.VHOST_VRING_FILE, "fd");
    private static final long ADDR_FLAGS = Structs.offset(Structs.VHOST_VRING_ADDR, "flags");
    private static final long ADDR_DESC = Structs.offset(Structs.VHOST_VRING_ADDR, "desc_user_addr");
    private static final long ADDR_USED = Structs.offset(Structs.VHOST_VRING_ADDR, "used_user_addr");
    private static final long ADDR_AVAIL = Structs.offset(Structs.VHOST_VRING_ADDR, "avail_user_addr");
    private static final long ADDR_LOG = Structs.offset(Structs.VHOST_VRING_ADDR, "log_guest_addr");
    private static final long MEM_HEADER = Structs.VHOST_MEMORY.byteSize();
    private static final long REGION_SIZE = Structs.VHOST_MEMORY_REGION.byteSize();
    private static final long REGION_GPA = Structs.offset(Structs.VHOST_MEMORY_REGION, "guest_phys_addr");
    private static final long REGION_SIZE_FIELD = Structs.offset(Structs.VHOST_MEMORY_REGION, "memory_size");
    private static final long REGION_UADDR = Structs.offset(Structs.VHOST_MEMORY_REGION, "userspace_addr");
    private static final long REGION_FLAGS = Structs.offset(Structs.VHOST_MEMORY_REGION, "flags_padding");

    /** One region of a mem table: guest-physical range and where this process maps it. */
    public record MemoryRegion(long guestPhysAddr, long memorySize, long userspaceAddr) {}

    private final FileDescriptor fd;
    private final Arena arena;
    private final MemorySegment u64;
    private final MemorySegment int32;
    private final MemorySegment state;
    private final MemorySegment file;
    private final MemorySegment addr;
    private final MemorySegment memory;
    private volatile IoctlObserver observer;

    private VhostNet(FileDescriptor fd) {
        this.fd = fd;
        // automatic: the segments stay valid after close, so a late call fails on the closed
        // descriptor (DescriptorClosedException) rather than on a freed segment
        this.arena = Arena.ofAuto();
        this.u64 = arena.allocate(JAVA_LONG);
        this.int32 = arena.allocate(JAVA_INT);
        this.state = arena.allocate(Structs.VHOST_VRING_STATE);
        this.file = arena.allocate(Structs.VHOST_VRING_FILE);
        this.addr = arena.allocate(Structs.VHOST_VRING_ADDR);
        this.memory = arena.allocate(MEM_HEADER + MAX_MEM_REGIONS * REGION_SIZE, 8);
    }

    /** Opens {@value #DEVICE}. */
    public static VhostNet open() throws NativeCallException {
        return open(DEVICE);
    }

    /** Opens a vhost-net node at another path (a container's /dev, say). */
    public static VhostNet open(String path) throws NativeCallException {
        return new VhostNet(FileDescriptor.openReadWrite(path));
    }

    /** The descriptor of the device. */
    public FileDescriptor fd() {
        return fd;
    }

    /**
     * Sets the hook every ioctl of this handle passes through; null (the default) removes it.
     * See {@link IoctlObserver}.
     */
    public void setObserver(IoctlObserver observer) {
        this.observer = observer;
    }

    private int ioctl(IoctlRequest request, MemorySegment argument) throws NativeCallException {
        return Ioctls.call(fd, request, argument, observer);
    }

    /** VHOST_GET_FEATURES: the features this vhost-net offers (decode with {@link VirtioFeature}). */
    public synchronized long getFeatures() throws NativeCallException {
        ioctl(IoctlRequest.VHOST_GET_FEATURES, u64);
        return u64.get(JAVA_LONG, 0);
    }

    /** VHOST_SET_FEATURES: the features acked, plus LOG_ALL while dirty logging. */
    public synchronized void setFeatures(long features) throws NativeCallException {
        u64.set(JAVA_LONG, 0, features);
        ioctl(IoctlRequest.VHOST_SET_FEATURES, u64);
    }

    /** VHOST_SET_OWNER: binds the device to this process (and starts its worker). EBUSY when already owned. */
    public synchronized void setOwner() throws NativeCallException {
        ioctl(IoctlRequest.VHOST_SET_OWNER, MemorySegment.NULL);
    }

    /** VHOST_RESET_OWNER: drops owner, mem table, rings and backends. */
    public synchronized void resetOwner() throws NativeCallException {
        ioctl(IoctlRequest.VHOST_RESET_OWNER, MemorySegment.NULL);
    }

    /** VHOST_SET_MEM_TABLE from memfd guest memory. */
    public synchronized void setMemTable(MemfdGuestMemory guestMemory) throws NativeCallException {
        List<MemfdRegion> regions = guestMemory.memfdRegions();
        checkRegionCount(regions.size());
        for (int i = 0; i < regions.size(); i++) {
            MemfdRegion r = regions.get(i);
            putRegion(i, r.guestAddress(), r.size(), r.userspaceAddress());
        }
        memory.set(JAVA_INT, 0, regions.size());
        memory.set(JAVA_INT, 4, 0);
        ioctl(IoctlRequest.VHOST_SET_MEM_TABLE, memory); // the kernel reads nregions entries
    }

    /** VHOST_SET_MEM_TABLE from explicit regions. */
    public synchronized void setMemTable(List<MemoryRegion> regions) throws NativeCallException {
        checkRegionCount(regions.size());
        for (int i = 0; i < regions.size(); i++) {
            MemoryRegion r = regions.get(i);
            putRegion(i, r.guestPhysAddr(), r.memorySize(), r.userspaceAddr());
        }
        memory.set(JAVA_INT, 0, regions.size());
        memory.set(JAVA_INT, 4, 0);
        ioctl(IoctlRequest.VHOST_SET_MEM_TABLE, memory); // the kernel reads nregions entries
    }

    private void checkRegionCount(int count) {
        if (count > MAX_MEM_REGIONS) {
            throw new IllegalArgumentException(count + " memory regions; vhost takes at most " + MAX_MEM_REGIONS);
        }
    }

    private void putRegion(int index, long gpa, long size, long uaddr) {
        long at = MEM_HEADER + index * REGION_SIZE;
        memory.set(JAVA_LONG, at + REGION_GPA, gpa);
        memory.set(JAVA_LONG, at + REGION_SIZE_FIELD, size);
        memory.set(JAVA_LONG, at + REGION_UADDR, uaddr);
        memory.set(JAVA_LONG, at + REGION_FLAGS, 0);
    }

    /** VHOST_SET_LOG_BASE: userspace address of the dirty log bitmap (one bit per 4 KiB page). */
    public synchronized void setLogBase(long userspaceAddress) throws NativeCallException {
        u64.set(JAVA_LONG, 0, userspaceAddress);
        ioctl(IoctlRequest.VHOST_SET_LOG_BASE, u64);
    }

    /** VHOST_SET_LOG_FD: an eventfd the kernel signals after logging; null unbinds. */
    public synchronized void setLogFd(FileDescriptor eventFd) throws NativeCallException {
        int n = acquire(eventFd);
        try {
            int32.set(JAVA_INT, 0, n);
            ioctl(IoctlRequest.VHOST_SET_LOG_FD, int32);
        } finally {
            release(eventFd);
        }
    }

    /** VHOST_SET_VRING_NUM: ring size, a power of two up to 32768; EINVAL otherwise, EBUSY while a backend is bound. */
    public synchronized void setVringNum(int index, int num) throws NativeCallException {
        putState(index, num);
        ioctl(IoctlRequest.VHOST_SET_VRING_NUM, state);
    }

    /**
     * VHOST_SET_VRING_ADDR: userspace addresses of the descriptor table, available and used
     * rings (16-, 2- and 4-byte aligned), {@code flags} {@link #VRING_FLAG_LOG} with the used
     * ring's guest-physical address in {@code logGuestAddr} to log used-ring writes.
     */
    public synchronized void setVringAddr(int index, int flags, long descUserAddr, long usedUserAddr,
                                          long availUserAddr, long logGuestAddr) throws NativeCallException {
        addr.set(JAVA_INT, 0, index);
        addr.set(JAVA_INT, ADDR_FLAGS, flags);
        addr.set(JAVA_LONG, ADDR_DESC, descUserAddr);
        addr.set(JAVA_LONG, ADDR_USED, usedUserAddr);
        addr.set(JAVA_LONG, ADDR_AVAIL, availUserAddr);
        addr.set(JAVA_LONG, ADDR_LOG, logGuestAddr);
        ioctl(IoctlRequest.VHOST_SET_VRING_ADDR, addr);
    }

    /** VHOST_SET_VRING_BASE: the next available index to process (split ring: last_avail_idx). */
    public synchronized void setVringBase(int index, int base) throws NativeCallException {
        putState(index, base);
        ioctl(IoctlRequest.VHOST_SET_VRING_BASE, state);
    }

    /**
     * VHOST_GET_VRING_BASE: the ring's last available index. The kernel writes the answer into
     * the argument struct; it is read back from the segment after the call.
     */
    public synchronized int getVringBase(int index) throws NativeCallException {
        putState(index, 0);
        ioctl(IoctlRequest.VHOST_GET_VRING_BASE, state);
        return state.get(JAVA_INT, STATE_NUM);
    }

    /** VHOST_SET_VRING_ENDIAN (legacy cross-endian rings): 0 little, 1 big. */
    public synchronized void setVringEndian(int index, int endian) throws NativeCallException {
        putState(index, endian);
        ioctl(IoctlRequest.VHOST_SET_VRING_ENDIAN, state);
    }

    /** VHOST_GET_VRING_ENDIAN; ENOIOCTLCMD-style errors when the kernel lacks cross-endian support. */
    public synchronized int getVringEndian(int index) throws NativeCallException {
        putState(index, 0);
        ioctl(IoctlRequest.VHOST_GET_VRING_ENDIAN, state);
        return state.get(JAVA_INT, STATE_NUM);
    }

    /** VHOST_SET_VRING_KICK: the eventfd the guest's notifications arrive on; null unbinds. */
    public synchronized void setVringKick(int index, FileDescriptor eventFd) throws NativeCallException {
        setFile(IoctlRequest.VHOST_SET_VRING_KICK, index, eventFd);
    }

    /** VHOST_SET_VRING_CALL: the eventfd the kernel signals to interrupt the guest; null unbinds. */
    public synchronized void setVringCall(int index, FileDescriptor eventFd) throws NativeCallException {
        setFile(IoctlRequest.VHOST_SET_VRING_CALL, index, eventFd);
    }

    /** VHOST_SET_VRING_ERR: the eventfd the kernel signals on a ring error; null unbinds. */
    public synchronized void setVringErr(int index, FileDescriptor eventFd) throws NativeCallException {
        setFile(IoctlRequest.VHOST_SET_VRING_ERR, index, eventFd);
    }

    /** VHOST_SET_VRING_BUSYLOOP_TIMEOUT in microseconds (0: no busy polling). */
    public synchronized void setVringBusyloopTimeout(int index, int timeoutMicros) throws NativeCallException {
        putState(index, timeoutMicros);
        ioctl(IoctlRequest.VHOST_SET_VRING_BUSYLOOP_TIMEOUT, state);
    }

    /** VHOST_GET_VRING_BUSYLOOP_TIMEOUT in microseconds, read back from the argument. */
    public synchronized int getVringBusyloopTimeout(int index) throws NativeCallException {
        putState(index, 0);
        ioctl(IoctlRequest.VHOST_GET_VRING_BUSYLOOP_TIMEOUT, state);
        return state.get(JAVA_INT, STATE_NUM);
    }

    /** VHOST_SET_BACKEND_FEATURES (decode with {@link VhostBackendFeature}). */
    public synchronized void setBackendFeatures(long features) throws NativeCallException {
        u64.set(JAVA_LONG, 0, features);
        ioctl(IoctlRequest.VHOST_SET_BACKEND_FEATURES, u64);
    }

    /** VHOST_GET_BACKEND_FEATURES. */
    public synchronized long getBackendFeatures() throws NativeCallException {
        ioctl(IoctlRequest.VHOST_GET_BACKEND_FEATURES, u64);
        return u64.get(JAVA_LONG, 0);
    }

    /**
     * VHOST_NET_SET_BACKEND: binds a queue to a TAP queue fd (or a raw packet socket); the
     * kernel starts processing the ring. ENOTSOCK for an fd that is neither.
     */
    public synchronized void setBackend(int index, FileDescriptor tapOrSocket) throws NativeCallException {
        if (tapOrSocket == null) {
            throw new IllegalArgumentException("use clearBackend to unbind queue " + index);
        }
        setFile(IoctlRequest.VHOST_NET_SET_BACKEND, index, tapOrSocket);
    }

    /** VHOST_NET_SET_BACKEND with -1: stops the queue; its state can then be read and changed. */
    public synchronized void clearBackend(int index) throws NativeCallException {
        setFile(IoctlRequest.VHOST_NET_SET_BACKEND, index, null);
    }

    private void putState(int index, int num) {
        state.set(JAVA_INT, 0, index);
        state.set(JAVA_INT, STATE_NUM, num);
    }

    private void setFile(IoctlRequest request, int index, FileDescriptor target) throws NativeCallException {
        int n = acquire(target);
        try {
            file.set(JAVA_INT, 0, index);
            file.set(JAVA_INT, FILE_FD, n);
            ioctl(request, file);
        } finally {
            release(target);
        }
    }

    /** Holds {@code target} open for the ioctl (the kernel takes its own reference); -1 for null. */
    private static int acquire(FileDescriptor target) {
        return target == null ? FILE_UNBIND : target.acquire();
    }

    private static void release(FileDescriptor target) {
        if (target != null) {
            target.release();
        }
    }

    /** Closes the device: the kernel stops every queue and drops its references. Idempotent. */
    @Override
    public synchronized void close() {
        fd.close();
    }

    @Override
    public String toString() {
        return "VhostNet " + fd;
    }
}

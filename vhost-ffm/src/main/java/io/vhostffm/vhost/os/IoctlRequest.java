package io.vhostffm.vhost.os;

import io.vhostffm.vhost.internal.Structs;
import java.util.HashMap;
import java.util.Map;

/**
 * Every ioctl request the library makes, named exactly as in the kernel headers, with its
 * number computed the way {@code _IO/_IOR/_IOW/_IOWR} compute it ({@code dir << 30 | size << 16 |
 * type << 8 | nr}). The name in error messages comes from here ({@link #byNumber}). The ABI test
 * compares every constant's number with the header macro's.
 */
public enum IoctlRequest {
    // <linux/vhost.h>
    VHOST_GET_FEATURES(ior(0xAF, 0x00, 8), Argument.POINTER),
    VHOST_SET_FEATURES(iow(0xAF, 0x00, 8), Argument.POINTER),
    VHOST_SET_OWNER(io(0xAF, 0x01), Argument.NONE),
    VHOST_RESET_OWNER(io(0xAF, 0x02), Argument.NONE),
    VHOST_SET_MEM_TABLE(iow(0xAF, 0x03, Structs.VHOST_MEMORY.byteSize()), Argument.POINTER),
    VHOST_SET_LOG_BASE(iow(0xAF, 0x04, 8), Argument.POINTER),
    VHOST_SET_LOG_FD(iow(0xAF, 0x07, 4), Argument.POINTER),
    VHOST_SET_VRING_NUM(iow(0xAF, 0x10, Structs.VHOST_VRING_STATE.byteSize()), Argument.POINTER),
    VHOST_SET_VRING_ADDR(iow(0xAF, 0x11, Structs.VHOST_VRING_ADDR.byteSize()), Argument.POINTER),
    VHOST_SET_VRING_BASE(iow(0xAF, 0x12, Structs.VHOST_VRING_STATE.byteSize()), Argument.POINTER),
    VHOST_GET_VRING_BASE(iowr(0xAF, 0x12, Structs.VHOST_VRING_STATE.byteSize()), Argument.POINTER),
    VHOST_SET_VRING_ENDIAN(iow(0xAF, 0x13, Structs.VHOST_VRING_STATE.byteSize()), Argument.POINTER),
    /** The header declares it _IOW although the kernel writes the answer back. */
    VHOST_GET_VRING_ENDIAN(iow(0xAF, 0x14, Structs.VHOST_VRING_STATE.byteSize()), Argument.POINTER),
    VHOST_SET_VRING_KICK(iow(0xAF, 0x20, Structs.VHOST_VRING_FILE.byteSize()), Argument.POINTER),
    VHOST_SET_VRING_CALL(iow(0xAF, 0x21, Structs.VHOST_VRING_FILE.byteSize()), Argument.POINTER),
    VHOST_SET_VRING_ERR(iow(0xAF, 0x22, Structs.VHOST_VRING_FILE.byteSize()), Argument.POINTER),
    VHOST_SET_VRING_BUSYLOOP_TIMEOUT(iow(0xAF, 0x23, Structs.VHOST_VRING_STATE.byteSize()), Argument.POINTER),
    /** Declared _IOW in the header as well; the kernel writes the answer back. */
    VHOST_GET_VRING_BUSYLOOP_TIMEOUT(iow(0xAF, 0x24, Structs.VHOST_VRING_STATE.byteSize()), Argument.POINTER),
    VHOST_SET_BACKEND_FEATURES(iow(0xAF, 0x25, 8), Argument.POINTER),
    VHOST_GET_BACKEND_FEATURES(ior(0xAF, 0x26, 8), Argument.POINTER),
    VHOST_NET_SET_BACKEND(iow(0xAF, 0x30, Structs.VHOST_VRING_FILE.byteSize()), Argument.POINTER),

    // <linux/if_tun.h>: several are declared with an int size but take a struct ifreq pointer.
    TUNSETIFF(iow('T', 202, 4), Argument.POINTER),
    TUNSETPERSIST(iow('T', 203, 4), Argument.VALUE),
    TUNGETFEATURES(ior('T', 207, 4), Argument.POINTER),
    TUNSETOFFLOAD(iow('T', 208, 4), Argument.VALUE),
    TUNGETIFF(ior('T', 210, 4), Argument.POINTER),
    TUNGETSNDBUF(ior('T', 211, 4), Argument.POINTER),
    TUNSETSNDBUF(iow('T', 212, 4), Argument.POINTER),
    TUNGETVNETHDRSZ(ior('T', 215, 4), Argument.POINTER),
    TUNSETVNETHDRSZ(iow('T', 216, 4), Argument.POINTER),
    TUNSETQUEUE(iow('T', 217, 4), Argument.POINTER),

    // <linux/sockios.h>: on an AF_INET socket, with a struct ifreq.
    SIOCGIFFLAGS(0x8913, Argument.POINTER),
    SIOCSIFFLAGS(0x8914, Argument.POINTER),
    SIOCGIFMTU(0x8921, Argument.POINTER);

    /** How the third ioctl argument is passed. */
    public enum Argument {
        /** Unused; 0 is passed. */
        NONE,
        /** An integer by value. */
        VALUE,
        /** A pointer to a struct or an integer. */
        POINTER
    }

    private static final int IOC_NONE = 0;
    private static final int IOC_WRITE = 1;
    private static final int IOC_READ = 2;

    private final long number;
    private final Argument argument;

    IoctlRequest(long number, Argument argument) {
        this.number = number;
        this.argument = argument;
    }

    /** The request number passed to ioctl(2). */
    public long number() {
        return number;
    }

    /** How the argument is passed. */
    public Argument argument() {
        return argument;
    }

    private static final Map<Long, IoctlRequest> BY_NUMBER = new HashMap<>();

    static {
        for (IoctlRequest r : values()) {
            IoctlRequest clash = BY_NUMBER.put(r.number, r);
            if (clash != null) {
                throw new ExceptionInInitializerError(r + " and " + clash + " share number 0x" + Long.toHexString(r.number));
            }
        }
    }

    /** The request with this number, or null. */
    public static IoctlRequest byNumber(long number) {
        return BY_NUMBER.get(number);
    }

    /** The header name of a request number, or its hex form when it is none of ours. */
    public static String nameOf(long number) {
        IoctlRequest r = byNumber(number);
        return r != null ? r.name() : "0x" + Long.toHexString(number);
    }

    private static long ioc(int dir, int type, int nr, long size) {
        if (size < 0 || size >= (1 << 14)) {
            throw new IllegalArgumentException("ioctl size out of range: " + size);
        }
        return ((long) dir << 30) | (size << 16) | ((long) type << 8) | nr;
    }

    private static long io(int type, int nr) {
        return ioc(IOC_NONE, type, nr, 0);
    }

    private static long ior(int type, int nr, long size) {
        return ioc(IOC_READ, type, nr, size);
    }

    private static long iow(int type, int nr, long size) {
        return ioc(IOC_WRITE, type, nr, size);
    }

    private static long iowr(int type, int nr, long size) {
        return ioc(IOC_READ | IOC_WRITE, type, nr, size);
    }
}

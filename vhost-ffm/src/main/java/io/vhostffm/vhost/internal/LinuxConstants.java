package io.vhostffm.vhost.internal;

/**
 * The plain integer constants the library passes to libc and the kernel, each field named
 * exactly as its C macro. The ABI test reads every {@code public static final} field of this
 * class by reflection and compares it with the macro's value from the system headers, so a
 * constant added here cannot go unchecked.
 */
public final class LinuxConstants {
    private LinuxConstants() {}

    // <fcntl.h>
    public static final int O_RDONLY = 0;
    public static final int O_WRONLY = 1;
    public static final int O_RDWR = 2;
    public static final int O_NONBLOCK = 0x800;
    public static final int O_CLOEXEC = 0x80000;
    public static final int F_GETFD = 1;
    public static final int F_SETFD = 2;
    public static final int F_GETFL = 3;
    public static final int F_SETFL = 4;
    public static final int F_DUPFD_CLOEXEC = 1030;
    public static final int FD_CLOEXEC = 1;
    public static final int F_ADD_SEALS = 1033;
    public static final int F_GET_SEALS = 1034;
    public static final int F_SEAL_SEAL = 1;
    public static final int F_SEAL_SHRINK = 2;
    public static final int F_SEAL_GROW = 4;
    public static final int SEEK_END = 2;

    // <sys/eventfd.h>
    public static final int EFD_SEMAPHORE = 1;
    public static final int EFD_CLOEXEC = 0x80000;
    public static final int EFD_NONBLOCK = 0x800;

    // <sys/mman.h>
    public static final int MFD_CLOEXEC = 1;
    public static final int MFD_ALLOW_SEALING = 2;
    public static final int PROT_READ = 1;
    public static final int PROT_WRITE = 2;
    public static final int MAP_SHARED = 1;

    public static final int MAP_POPULATE = 0x8000;

    // <sched.h>
    public static final int SCHED_FIFO = 1;
    public static final int SCHED_RR = 2;
    /** ORed into a policy: children of the thread start under the normal policy. */
    public static final int SCHED_RESET_ON_FORK = 0x40000000;

    // <sys/syscall.h>: the C names, as the ABI test compares each field with the macro of its name
    public static final int SYS_io_uring_setup = 425;
    public static final int SYS_io_uring_enter = 426;

    // <linux/io_uring.h>
    public static final long IORING_OFF_SQ_RING = 0L;
    public static final long IORING_OFF_CQ_RING = 0x8000000L;
    public static final long IORING_OFF_SQES = 0x10000000L;
    public static final int IORING_FEAT_SINGLE_MMAP = 1;
    public static final int IORING_ENTER_GETEVENTS = 1;
    public static final byte IORING_OP_READV = 1;
    public static final byte IORING_OP_WRITEV = 2;
    public static final byte IOSQE_IO_LINK = 4;
    // <linux/fs.h>
    public static final int RWF_NOWAIT = 8;

    // <sys/socket.h>, <sys/un.h>
    public static final int AF_UNIX = 1;
    public static final int AF_INET = 2;
    public static final int SOCK_STREAM = 1;
    public static final int SOCK_DGRAM = 2;
    public static final int SOCK_SEQPACKET = 5;
    public static final int SOCK_CLOEXEC = 0x80000;
    public static final int SOL_SOCKET = 1;
    public static final int AF_PACKET = 17;
    public static final int SOCK_RAW = 3;
    public static final int SO_RCVBUF = 8;
    public static final int SO_RCVBUFFORCE = 33;
    public static final int MSG_DONTWAIT = 0x40;
    /** shutdown(2): both directions. */
    public static final int SHUT_RDWR = 2;
    public static final int SO_TYPE = 3;
    public static final int SO_DOMAIN = 39;
    /** getsockopt: the {@code struct ucred} of the process that connected (or listened). */
    public static final int SO_PEERCRED = 17;
    public static final int SCM_RIGHTS = 1;
    public static final int MSG_TRUNC = 0x20;
    public static final int MSG_CTRUNC = 0x8;
    public static final int MSG_NOSIGNAL = 0x4000;
    public static final int MSG_CMSG_CLOEXEC = 0x40000000;

    // <poll.h>
    public static final short POLLIN = 0x1;
    public static final short POLLOUT = 0x4;
    public static final short POLLERR = 0x8;
    public static final short POLLHUP = 0x10;
    public static final short POLLNVAL = 0x20;

    // <net/if.h>
    public static final int IFNAMSIZ = 16;
    public static final int IFF_UP = 0x1;
    public static final int IFF_RUNNING = 0x40;

    // <linux/vhost.h>, <linux/vhost_types.h>
    public static final int VHOST_VIRTIO = 0xAF;
    public static final int VHOST_FILE_UNBIND = -1;
    public static final int VHOST_PAGE_SIZE = 0x1000;
    public static final int VHOST_VRING_F_LOG = 0;
    public static final int VHOST_VRING_LITTLE_ENDIAN = 0;
    public static final int VHOST_VRING_BIG_ENDIAN = 1;
    /** Same bit as VIRTIO_F_ANY_LAYOUT; vhost-net's own name for it. */
    public static final int VHOST_NET_F_VIRTIO_NET_HDR = 27;

    // <linux/virtio_ring.h>
    public static final int VRING_DESC_F_NEXT = 1;
    public static final int VRING_DESC_F_WRITE = 2;
    public static final int VRING_DESC_F_INDIRECT = 4;
    public static final int VRING_USED_F_NO_NOTIFY = 1;
    public static final int VRING_AVAIL_F_NO_INTERRUPT = 1;

    // <linux/if_ether.h>, <linux/if_packet.h>
    /** Every protocol; goes into sockaddr_ll and socket() in network byte order. */
    public static final int ETH_P_ALL = 0x0003;
    public static final int PACKET_HOST = 0;
    public static final int PACKET_OUTGOING = 4;
    /** getsockopt level of AF_PACKET sockets ({@code <linux/socket.h>}). */
    public static final int SOL_PACKET = 263;
    /** struct tpacket_stats {tp_packets, tp_drops} since the last read, which resets them. */
    public static final int PACKET_STATISTICS = 6;

    // <linux/if_tun.h>
    public static final int TUN_TYPE_MASK = 0x000f;
}

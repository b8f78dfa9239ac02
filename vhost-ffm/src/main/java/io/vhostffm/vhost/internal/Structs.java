package io.vhostffm.vhost.internal;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.StructLayout;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.List;

/**
 * Every C struct the library passes to the kernel, as a {@link MemoryLayout} named after the C
 * struct, with members named after the C fields (x86-64 Linux ABI). {@link #ALL} lists them so
 * the ABI test compares each size and field offset with what gcc computes from the system
 * headers; a struct added here is checked without touching the test.
 */
public final class Structs {
    private Structs() {}

    // --- <linux/vhost_types.h> ---

    /** {@code struct vhost_vring_state}: a queue index and a number (size, base, endianness...). */
    public static final StructLayout VHOST_VRING_STATE = MemoryLayout.structLayout(
            JAVA_INT.withName("index"),
            JAVA_INT.withName("num")).withName("vhost_vring_state");

    /** {@code struct vhost_vring_file}: a queue index and an fd (-1 unbinds). */
    public static final StructLayout VHOST_VRING_FILE = MemoryLayout.structLayout(
            JAVA_INT.withName("index"),
            JAVA_INT.withName("fd")).withName("vhost_vring_file");

    /** {@code struct vhost_vring_addr}: userspace addresses of one ring's parts. */
    public static final StructLayout VHOST_VRING_ADDR = MemoryLayout.structLayout(
            JAVA_INT.withName("index"),
            JAVA_INT.withName("flags"),
            JAVA_LONG.withName("desc_user_addr"),
            JAVA_LONG.withName("used_user_addr"),
            JAVA_LONG.withName("avail_user_addr"),
            JAVA_LONG.withName("log_guest_addr")).withName("vhost_vring_addr");

    /** {@code struct vhost_memory_region}: one guest-physical range and where it is mapped. */
    public static final StructLayout VHOST_MEMORY_REGION = MemoryLayout.structLayout(
            JAVA_LONG.withName("guest_phys_addr"),
            JAVA_LONG.withName("memory_size"),
            JAVA_LONG.withName("userspace_addr"),
            JAVA_LONG.withName("flags_padding")).withName("vhost_memory_region");

    /** {@code struct vhost_memory}: the header; {@code regions} is a flexible array after it. */
    public static final StructLayout VHOST_MEMORY = MemoryLayout.structLayout(
            JAVA_INT.withName("nregions"),
            JAVA_INT.withName("padding"),
            MemoryLayout.sequenceLayout(0, VHOST_MEMORY_REGION).withName("regions")).withName("vhost_memory");

    // --- libc / socket structs ---

    /** {@code struct pollfd}. */
    public static final StructLayout POLLFD = MemoryLayout.structLayout(
            JAVA_INT.withName("fd"),
            JAVA_SHORT.withName("events"),
            JAVA_SHORT.withName("revents")).withName("pollfd");

    /** {@code struct iovec}. */
    public static final StructLayout IOVEC = MemoryLayout.structLayout(
            ADDRESS.withName("iov_base"),
            JAVA_LONG.withName("iov_len")).withName("iovec");

    /** {@code struct msghdr}. */
    public static final StructLayout MSGHDR = MemoryLayout.structLayout(
            ADDRESS.withName("msg_name"),
            JAVA_INT.withName("msg_namelen"),
            MemoryLayout.paddingLayout(4),
            ADDRESS.withName("msg_iov"),
            JAVA_LONG.withName("msg_iovlen"),
            ADDRESS.withName("msg_control"),
            JAVA_LONG.withName("msg_controllen"),
            JAVA_INT.withName("msg_flags"),
            MemoryLayout.paddingLayout(4)).withName("msghdr");

    /** {@code struct cmsghdr}; the data (here: fds) follows at {@code CMSG_DATA}, i.e. its size. */
    public static final StructLayout CMSGHDR = MemoryLayout.structLayout(
            JAVA_LONG.withName("cmsg_len"),
            JAVA_INT.withName("cmsg_level"),
            JAVA_INT.withName("cmsg_type")).withName("cmsghdr");

    /** {@code struct sockaddr_un}. */
    public static final StructLayout SOCKADDR_UN = MemoryLayout.structLayout(
            JAVA_SHORT.withName("sun_family"),
            MemoryLayout.sequenceLayout(108, JAVA_BYTE).withName("sun_path")).withName("sockaddr_un");

    /**
     * {@code struct ifreq} from {@code <net/if.h>}: the name, then a 24-byte union of which we
     * use {@code ifr_flags} (TUNSETIFF, TUNSETQUEUE, SIOCSIFFLAGS) and {@code ifr_mtu}
     * (SIOCGIFMTU). Other union members are
     * covered by the 8-aligned filler, which gives the union the size and alignment of C's.
     */
    public static final StructLayout IFREQ = MemoryLayout.structLayout(
            MemoryLayout.sequenceLayout(16, JAVA_BYTE).withName("ifr_name"),
            MemoryLayout.unionLayout(
                    JAVA_SHORT.withName("ifr_flags"),
                    JAVA_INT.withName("ifr_ifindex"),
                    JAVA_INT.withName("ifr_mtu"),
                    MemoryLayout.sequenceLayout(3, JAVA_LONG)).withName("ifr_ifru")).withName("ifreq");

    /** {@code struct sockaddr_ll} ({@code <linux/if_packet.h>}): an AF_PACKET address. */
    public static final StructLayout SOCKADDR_LL = MemoryLayout.structLayout(
            JAVA_SHORT.withName("sll_family"),
            JAVA_SHORT.withName("sll_protocol"),
            JAVA_INT.withName("sll_ifindex"),
            JAVA_SHORT.withName("sll_hatype"),
            JAVA_BYTE.withName("sll_pkttype"),
            JAVA_BYTE.withName("sll_halen"),
            MemoryLayout.sequenceLayout(8, JAVA_BYTE).withName("sll_addr")).withName("sockaddr_ll");

    /** {@code struct ucred} ({@code <sys/socket.h>}, _GNU_SOURCE): what SO_PEERCRED reports. */
    public static final StructLayout UCRED = MemoryLayout.structLayout(
            JAVA_INT.withName("pid"),
            JAVA_INT.withName("uid"),
            JAVA_INT.withName("gid")).withName("ucred");

    // --- <linux/io_uring.h> ---

    /**
     * {@code struct io_sqring_offsets}: where the submission ring's fields are in its mapping. The
     * last 8 bytes are {@code resv2} in older headers, {@code user_addr} in newer: not named here.
     */
    public static final StructLayout IO_SQRING_OFFSETS = MemoryLayout.structLayout(
            JAVA_INT.withName("head"),
            JAVA_INT.withName("tail"),
            JAVA_INT.withName("ring_mask"),
            JAVA_INT.withName("ring_entries"),
            JAVA_INT.withName("flags"),
            JAVA_INT.withName("dropped"),
            JAVA_INT.withName("array"),
            JAVA_INT.withName("resv1"),
            MemoryLayout.paddingLayout(8)).withName("io_sqring_offsets");

    /** {@code struct io_cqring_offsets}: where the completion ring's fields are in its mapping. */
    public static final StructLayout IO_CQRING_OFFSETS = MemoryLayout.structLayout(
            JAVA_INT.withName("head"),
            JAVA_INT.withName("tail"),
            JAVA_INT.withName("ring_mask"),
            JAVA_INT.withName("ring_entries"),
            JAVA_INT.withName("overflow"),
            JAVA_INT.withName("cqes"),
            JAVA_INT.withName("flags"),
            JAVA_INT.withName("resv1"),
            MemoryLayout.paddingLayout(8)).withName("io_cqring_offsets");

    /** {@code struct io_uring_params}: what io_uring_setup takes and fills in. */
    public static final StructLayout IO_URING_PARAMS = MemoryLayout.structLayout(
            JAVA_INT.withName("sq_entries"),
            JAVA_INT.withName("cq_entries"),
            JAVA_INT.withName("flags"),
            JAVA_INT.withName("sq_thread_cpu"),
            JAVA_INT.withName("sq_thread_idle"),
            JAVA_INT.withName("features"),
            JAVA_INT.withName("wq_fd"),
            MemoryLayout.sequenceLayout(3, JAVA_INT).withName("resv"),
            // as bytes: a nested group's members would be checked as the outer struct's own (the
            // ABI test's rule for anonymous unions); the two structs are checked on their own
            MemoryLayout.sequenceLayout(IO_SQRING_OFFSETS.byteSize(), JAVA_BYTE).withName("sq_off"),
            MemoryLayout.sequenceLayout(IO_CQRING_OFFSETS.byteSize(), JAVA_BYTE).withName("cq_off"))
            .withName("io_uring_params");

    /**
     * {@code struct io_uring_sqe}: one submission entry. Its unions are named by the member this
     * library writes ({@code off}, {@code addr}, {@code rw_flags}, {@code buf_index},
     * {@code splice_fd_in}, {@code addr3}); C reaches each through its anonymous union.
     */
    public static final StructLayout IO_URING_SQE = MemoryLayout.structLayout(
            JAVA_BYTE.withName("opcode"),
            JAVA_BYTE.withName("flags"),
            JAVA_SHORT.withName("ioprio"),
            JAVA_INT.withName("fd"),
            JAVA_LONG.withName("off"),
            JAVA_LONG.withName("addr"),
            JAVA_INT.withName("len"),
            JAVA_INT.withName("rw_flags"),
            JAVA_LONG.withName("user_data"),
            JAVA_SHORT.withName("buf_index"),
            JAVA_SHORT.withName("personality"),
            JAVA_INT.withName("splice_fd_in"),
            JAVA_LONG.withName("addr3"),
            MemoryLayout.paddingLayout(8)).withName("io_uring_sqe");

    /** {@code struct io_uring_cqe}: one completion entry (without IORING_SETUP_CQE32's extra 16 bytes). */
    public static final StructLayout IO_URING_CQE = MemoryLayout.structLayout(
            JAVA_LONG.withName("user_data"),
            JAVA_INT.withName("res"),
            JAVA_INT.withName("flags")).withName("io_uring_cqe");

    /** Every layout above: the ABI test checks each one's size and every named field. */
    public static final List<StructLayout> ALL = List.of(
            VHOST_VRING_STATE, VHOST_VRING_FILE, VHOST_VRING_ADDR, VHOST_MEMORY_REGION, VHOST_MEMORY,
            POLLFD, IOVEC, MSGHDR, CMSGHDR, SOCKADDR_UN, IFREQ, SOCKADDR_LL, UCRED,
            IO_SQRING_OFFSETS, IO_CQRING_OFFSETS, IO_URING_PARAMS, IO_URING_SQE, IO_URING_CQE);

    /** A VarHandle for a top-level field, taking only the segment (base offset 0). */
    public static VarHandle field(StructLayout layout, String name) {
        return MethodHandles.insertCoordinates(
                layout.varHandle(MemoryLayout.PathElement.groupElement(name)), 1, 0L);
    }

    /** Offset of a top-level field. */
    public static long offset(StructLayout layout, String name) {
        return layout.byteOffset(MemoryLayout.PathElement.groupElement(name));
    }
}

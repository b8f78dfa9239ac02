package io.vhostffm.vhost.vhostuser;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * Encodes and decodes vhost-user messages in both directions, and checks every received one
 * before a field of it is used: the header's version and flags, the payload size the request
 * calls for, the number of descriptors, and each field's range. A message that fails a check is a
 * {@link VhostUserProtocolException} naming the request and the field; nothing in it was acted on.
 *
 * <p>Stateless; the order of requests is the backend's to check.
 */
public final class VhostUserCodec {
    /** Regions one SET_MEM_TABLE may carry (VHOST_MEMORY_BASELINE_NREGIONS). */
    public static final int MAX_MEMORY_REGIONS = 8;
    /** Bytes of one memory region in SET_MEM_TABLE. */
    public static final int MEMORY_REGION_SIZE = 32;
    /** Bytes before the regions: u32 count, u32 padding. */
    public static final int MEMORY_TABLE_HEADER = 8;
    /** Largest ring index SET_VRING_KICK/CALL/ERR can name (8 bits). */
    public static final int MAX_VRING_INDEX = 0xff;

    private static final int KNOWN_FLAGS = VhostUserMessage.VERSION_MASK | VhostUserMessage.REPLY
            | VhostUserMessage.NEED_REPLY;

    private VhostUserCodec() {}

    // ---------------------------------------------------------------------------------------
    // Checks common to every received message.

    /**
     * Checks a received header: version 1, no unknown flag bits, a payload size within bounds,
     * and whether it is a reply as expected.
     *
     * @param expectReply true on the frontend side (answers), false on the backend side (requests)
     */
    public static void checkHeader(int code, int flags, int size, boolean expectReply) {
        String name = nameOf(code);
        if ((flags & VhostUserMessage.VERSION_MASK) != VhostUserMessage.VERSION) {
            throw new VhostUserProtocolException(name, "flags", String.format(
                    "version %d, only version 1 is spoken (flags 0x%x)", flags & VhostUserMessage.VERSION_MASK, flags));
        }
        if ((flags & ~KNOWN_FLAGS) != 0) {
            throw new VhostUserProtocolException(name, "flags", String.format("unknown bits 0x%x", flags & ~KNOWN_FLAGS));
        }
        boolean reply = (flags & VhostUserMessage.REPLY) != 0;
        if (reply != expectReply) {
            throw new VhostUserProtocolException(name, "flags", reply ? "a reply where a request was expected"
                    : "a request where a reply was expected");
        }
        if (size < 0 || size > VhostUserMessage.MAX_PAYLOAD) {
            throw new VhostUserProtocolException(name, "size", Integer.toUnsignedString(size) + " bytes; at most "
                    + VhostUserMessage.MAX_PAYLOAD + " are accepted");
        }
    }

    /**
     * Checks a received request against what its request number calls for: a known request, the
     * payload size of its shape, no more descriptors than it may carry.
     *
     * @return the request
     */
    public static VhostUserRequest checkRequest(VhostUserMessage m) {
        VhostUserRequest request = m.request();
        if (request == null) {
            throw new VhostUserProtocolException(m.requestName(), "request", "unknown request number");
        }
        if (m.fdCount() > request.maxFds()) {
            throw new VhostUserProtocolException(request.toString(), "fds",
                    m.fdCount() + " descriptors; this request carries at most " + request.maxFds());
        }
        switch (request.payload()) {
            case NONE -> expectSize(m, 0);
            case U64, VRING_FD -> expectSize(m, 8);
            case VRING_STATE -> expectSize(m, 8);
            case VRING_ADDRESS -> expectSize(m, 40);
            case LOG -> expectSize(m, 16);
            case MEMORY_TABLE -> {
                if (m.size() < MEMORY_TABLE_HEADER) {
                    throw new VhostUserProtocolException(request.toString(), "size",
                            m.size() + " bytes, shorter than the region count and padding (8)");
                }
            }
            case UNSUPPORTED -> throw new VhostUserProtocolException(request.toString(), "request",
                    "not served by this backend (it offers no protocol feature that brings it)");
        }
        return request;
    }

    /**
     * Checks a received reply (its header passed {@link #checkHeader} with {@code expectReply})
     * against the request it answers: the same request number, no descriptors (no reply a net
     * frontend asks for carries one), and the 8 bytes every such reply has (a u64, or the vring
     * state of GET_VRING_BASE). Decode it then with {@link #u64(VhostUserMessage)} or
     * {@link #vringState(VhostUserMessage)}.
     *
     * @param asked the request sent: one that answers, or one sent with need_reply (REPLY_ACK)
     */
    public static void checkReply(VhostUserMessage m, VhostUserRequest asked) {
        String name = m.requestName();
        if (!m.isReply()) {
            throw new VhostUserProtocolException(name, "flags", "a request where a reply was expected");
        }
        if (m.code() != asked.code()) {
            throw new VhostUserProtocolException(name, "request", "a reply to " + name + " where one to " + asked
                    + " was awaited");
        }
        if (asked.payload() == VhostUserRequest.Payload.UNSUPPORTED) {
            throw new VhostUserProtocolException(name, "request", "not asked by this implementation");
        }
        if (m.fdCount() != 0) {
            throw new VhostUserProtocolException(name, "fds", m.fdCount() + " descriptors; this reply carries none");
        }
        expectSize(m, 8);
    }

    // ---------------------------------------------------------------------------------------
    // Decoders (each assumes checkRequest passed, and checks its own fields).

    /** The u64 of SET_FEATURES, SET_PROTOCOL_FEATURES, SET_STATUS, NET_SET_MTU, and of u64 replies. */
    public static long u64(VhostUserMessage m) {
        expectSize(m, 8);
        return m.payloadBuffer().getLong(0);
    }

    /** The vring state of SET_VRING_NUM/BASE/ENABLE and GET_VRING_BASE (request and reply). */
    public static VringState vringState(VhostUserMessage m) {
        expectSize(m, 8);
        ByteBuffer b = m.payloadBuffer();
        int index = b.getInt(0);
        if (index < 0 || index > MAX_VRING_INDEX) {
            throw new VhostUserProtocolException(m.requestName(), "index", Integer.toUnsignedString(index)
                    + " is beyond any ring (at most " + MAX_VRING_INDEX + ")");
        }
        return new VringState(index, Integer.toUnsignedLong(b.getInt(4)));
    }

    /** SET_VRING_ADDR: the index in range, only the LOG flag. */
    public static VringAddress vringAddress(VhostUserMessage m) {
        expectSize(m, 40);
        ByteBuffer b = m.payloadBuffer();
        int index = b.getInt(0);
        int flags = b.getInt(4);
        if (index < 0 || index > MAX_VRING_INDEX) {
            throw new VhostUserProtocolException(m.requestName(), "index", Integer.toUnsignedString(index)
                    + " is beyond any ring (at most " + MAX_VRING_INDEX + ")");
        }
        if ((flags & ~VringAddress.LOG) != 0) {
            throw new VhostUserProtocolException(m.requestName(), "flags", String.format(
                    "unknown bits 0x%x (only VHOST_VRING_F_LOG 0x1)", flags & ~VringAddress.LOG));
        }
        return new VringAddress(index, flags, b.getLong(8), b.getLong(16), b.getLong(24), b.getLong(32));
    }

    /** SET_VRING_KICK/CALL/ERR: the ring, the no-fd flag, and a descriptor exactly when the flag is clear. */
    public static VringFd vringFd(VhostUserMessage m) {
        long value = u64(m);
        if ((value & ~(VringFd.INDEX_MASK | VringFd.NOFD_MASK)) != 0) {
            throw new VhostUserProtocolException(m.requestName(), "payload", String.format(
                    "0x%x has bits beyond the ring index (0-7) and the no-fd flag (8)", value));
        }
        boolean noFd = (value & VringFd.NOFD_MASK) != 0;
        int expected = noFd ? 0 : 1;
        if (m.fdCount() != expected) {
            throw new VhostUserProtocolException(m.requestName(), "fds", m.fdCount() + " descriptors with the no-fd flag "
                    + (noFd ? "set" : "clear") + "; expected " + expected);
        }
        return new VringFd((int) (value & VringFd.INDEX_MASK), noFd);
    }

    /**
     * SET_MEM_TABLE: 1 to 8 regions, zero padding, one descriptor per region, the size the count
     * calls for (or the full 8-region table some frontends always send), and regions that are
     * non-empty, do not wrap, and overlap neither in guest-physical nor in frontend-virtual space.
     */
    public static List<MemoryRegion> memoryTable(VhostUserMessage m) {
        String name = m.requestName();
        ByteBuffer b = m.payloadBuffer();
        if (m.size() < MEMORY_TABLE_HEADER) {
            throw new VhostUserProtocolException(name, "size", m.size() + " bytes, shorter than 8");
        }
        int count = b.getInt(0);
        int padding = b.getInt(4);
        if (count < 1 || count > MAX_MEMORY_REGIONS) {
            throw new VhostUserProtocolException(name, "nregions", Integer.toUnsignedString(count)
                    + "; must be 1 to " + MAX_MEMORY_REGIONS);
        }
        int exact = MEMORY_TABLE_HEADER + MEMORY_REGION_SIZE * count;
        int full = MEMORY_TABLE_HEADER + MEMORY_REGION_SIZE * MAX_MEMORY_REGIONS;
        if (m.size() != exact && m.size() != full) {
            throw new VhostUserProtocolException(name, "size", m.size() + " bytes for " + count
                    + " regions; expected " + exact + " (or " + full + ")");
        }
        if (padding != 0) {
            // Every frontend zeroes it; a byte that means nothing must not vary (one encoding per table).
            throw new VhostUserProtocolException(name, "padding", String.format("0x%x; must be 0", padding));
        }
        if (m.fdCount() != count) {
            throw new VhostUserProtocolException(name, "fds", m.fdCount() + " descriptors for " + count
                    + " regions; one per region is required");
        }
        List<MemoryRegion> regions = new ArrayList<>(count);
        for (int i = 0; i < count; i++) {
            int at = MEMORY_TABLE_HEADER + MEMORY_REGION_SIZE * i;
            MemoryRegion r = new MemoryRegion(b.getLong(at), b.getLong(at + 8), b.getLong(at + 16), b.getLong(at + 24));
            String field = "regions[" + i + "]";
            if (r.size() <= 0) {
                throw new VhostUserProtocolException(name, field + ".memory_size", Long.toUnsignedString(r.size())
                        + " bytes; must be positive (and below 2^63)");
            }
            checkNoWrap(name, field + ".guest_phys_addr", r.guestAddress(), r.size());
            checkNoWrap(name, field + ".userspace_addr", r.userspaceAddress(), r.size());
            checkNoWrap(name, field + ".mmap_offset", r.mmapOffset(), r.size());
            for (int j = 0; j < i; j++) {
                MemoryRegion o = regions.get(j);
                if (overlap(r.guestAddress(), r.size(), o.guestAddress(), o.size())) {
                    throw new VhostUserProtocolException(name, field + ".guest_phys_addr", String.format(
                            "[0x%x, +0x%x) overlaps regions[%d] [0x%x, +0x%x)", r.guestAddress(), r.size(), j,
                            o.guestAddress(), o.size()));
                }
                if (overlap(r.userspaceAddress(), r.size(), o.userspaceAddress(), o.size())) {
                    throw new VhostUserProtocolException(name, field + ".userspace_addr", String.format(
                            "[0x%x, +0x%x) overlaps regions[%d] [0x%x, +0x%x)", r.userspaceAddress(), r.size(), j,
                            o.userspaceAddress(), o.size()));
                }
            }
            regions.add(r);
        }
        return List.copyOf(regions);
    }

    /** SET_LOG_BASE: one descriptor, a positive size, an offset that does not wrap. */
    public static LogArea logArea(VhostUserMessage m) {
        expectSize(m, 16);
        ByteBuffer b = m.payloadBuffer();
        LogArea log = new LogArea(b.getLong(0), b.getLong(8));
        if (m.fdCount() != 1) {
            throw new VhostUserProtocolException(m.requestName(), "fds", m.fdCount() + " descriptors; the log needs exactly 1");
        }
        if (log.mmapSize() <= 0) {
            throw new VhostUserProtocolException(m.requestName(), "mmap_size", Long.toUnsignedString(log.mmapSize())
                    + "; must be positive (and below 2^63)");
        }
        checkNoWrap(m.requestName(), "mmap_offset", log.mmapOffset(), log.mmapSize());
        return log;
    }

    // ---------------------------------------------------------------------------------------
    // Encoders: payload bytes for either direction.

    /** A u64 payload. */
    public static byte[] u64(long value) {
        return buffer(8).putLong(value).array();
    }

    /** A vring state payload. */
    public static byte[] vringState(int index, long num) {
        return buffer(8).putInt(index).putInt((int) num).array();
    }

    /** A SET_VRING_ADDR payload. */
    public static byte[] vringAddress(VringAddress a) {
        return buffer(40).putInt(a.index()).putInt(a.flags()).putLong(a.descUser()).putLong(a.usedUser())
                .putLong(a.availUser()).putLong(a.logGuestAddr()).array();
    }

    /** A SET_VRING_KICK/CALL/ERR payload. */
    public static byte[] vringFd(int index, boolean noFd) {
        return u64((index & VringFd.INDEX_MASK) | (noFd ? VringFd.NOFD_MASK : 0));
    }

    /** A SET_MEM_TABLE payload with exactly the regions given. */
    public static byte[] memoryTable(List<MemoryRegion> regions) {
        ByteBuffer b = buffer(MEMORY_TABLE_HEADER + MEMORY_REGION_SIZE * regions.size());
        b.putInt(regions.size()).putInt(0);
        for (MemoryRegion r : regions) {
            b.putLong(r.guestAddress()).putLong(r.size()).putLong(r.userspaceAddress()).putLong(r.mmapOffset());
        }
        return b.array();
    }

    /** A SET_LOG_BASE payload. */
    public static byte[] logArea(LogArea log) {
        return buffer(16).putLong(log.mmapSize()).putLong(log.mmapOffset()).array();
    }

    // ---------------------------------------------------------------------------------------

    private static ByteBuffer buffer(int size) {
        return ByteBuffer.allocate(size).order(ByteOrder.LITTLE_ENDIAN);
    }

    private static void expectSize(VhostUserMessage m, int size) {
        if (m.size() != size) {
            throw new VhostUserProtocolException(m.requestName(), "size", m.size() + " bytes; this request carries " + size);
        }
    }

    /** {@code [start, start + size)} must end below 2^64 (size is positive here). */
    private static void checkNoWrap(String name, String field, long start, long size) {
        if (Long.compareUnsigned(start, -size) >= 0) {
            throw new VhostUserProtocolException(name, field, String.format("0x%x + size 0x%x reaches past 2^64", start, size));
        }
    }

    private static boolean overlap(long a, long aSize, long b, long bSize) {
        // unsigned: a < b + bSize && b < a + aSize (neither wraps, checked before)
        return Long.compareUnsigned(a, b + bSize) < 0 && Long.compareUnsigned(b, a + aSize) < 0;
    }

    private static String nameOf(int code) {
        VhostUserRequest r = VhostUserRequest.forCode(code);
        return r != null ? r.toString() : "request " + Integer.toUnsignedString(code);
    }
}

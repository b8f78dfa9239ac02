package io.vhostffm.vhost.vhostuser;

/**
 * The requests a vhost-user frontend sends its backend (QEMU's {@code docs/interop/vhost-user.rst},
 * "Front-end message types"), with what each carries: its payload's shape, how many file
 * descriptors may come with it, and whether the backend always answers.
 *
 * <p>Only the requests a virtio-net device needs are served; the others are named so that a log
 * line and an error say {@code SET_CONFIG(25)} rather than a bare number.
 */
public enum VhostUserRequest {
    GET_FEATURES(1, Payload.NONE, 0, true),
    SET_FEATURES(2, Payload.U64, 0, false),
    SET_OWNER(3, Payload.NONE, 0, false),
    RESET_OWNER(4, Payload.NONE, 0, false),
    SET_MEM_TABLE(5, Payload.MEMORY_TABLE, VhostUserCodec.MAX_MEMORY_REGIONS, false),
    SET_LOG_BASE(6, Payload.LOG, 1, false),
    SET_LOG_FD(7, Payload.NONE, 1, false),
    SET_VRING_NUM(8, Payload.VRING_STATE, 0, false),
    SET_VRING_ADDR(9, Payload.VRING_ADDRESS, 0, false),
    SET_VRING_BASE(10, Payload.VRING_STATE, 0, false),
    GET_VRING_BASE(11, Payload.VRING_STATE, 0, true),
    SET_VRING_KICK(12, Payload.VRING_FD, 1, false),
    SET_VRING_CALL(13, Payload.VRING_FD, 1, false),
    SET_VRING_ERR(14, Payload.VRING_FD, 1, false),
    GET_PROTOCOL_FEATURES(15, Payload.NONE, 0, true),
    SET_PROTOCOL_FEATURES(16, Payload.U64, 0, false),
    GET_QUEUE_NUM(17, Payload.NONE, 0, true),
    SET_VRING_ENABLE(18, Payload.VRING_STATE, 0, false),
    SEND_RARP(19, Payload.U64, 0, false),
    NET_SET_MTU(20, Payload.U64, 0, false),
    SET_BACKEND_REQ_FD(21, Payload.NONE, 1, false),
    IOTLB_MSG(22, Payload.UNSUPPORTED, 0, false),
    SET_VRING_ENDIAN(23, Payload.UNSUPPORTED, 0, false),
    GET_CONFIG(24, Payload.UNSUPPORTED, 0, true),
    SET_CONFIG(25, Payload.UNSUPPORTED, 0, false),
    CREATE_CRYPTO_SESSION(26, Payload.UNSUPPORTED, 0, true),
    CLOSE_CRYPTO_SESSION(27, Payload.UNSUPPORTED, 0, false),
    POSTCOPY_ADVISE(28, Payload.UNSUPPORTED, 0, true),
    POSTCOPY_LISTEN(29, Payload.UNSUPPORTED, 0, false),
    POSTCOPY_END(30, Payload.UNSUPPORTED, 0, true),
    GET_INFLIGHT_FD(31, Payload.UNSUPPORTED, 0, true),
    SET_INFLIGHT_FD(32, Payload.UNSUPPORTED, 1, false),
    GPU_SET_SOCKET(33, Payload.UNSUPPORTED, 1, false),
    RESET_DEVICE(34, Payload.NONE, 0, false),
    VRING_KICK(35, Payload.UNSUPPORTED, 0, false),
    GET_MAX_MEM_SLOTS(36, Payload.UNSUPPORTED, 0, true),
    ADD_MEM_REG(37, Payload.UNSUPPORTED, 1, false),
    REM_MEM_REG(38, Payload.UNSUPPORTED, 1, false),
    SET_STATUS(39, Payload.U64, 0, false),
    GET_STATUS(40, Payload.NONE, 0, true);

    /** The shape of a request's payload (the reply's shape is the same for the requests that answer). */
    public enum Payload {
        /** No payload (size 0). */
        NONE,
        /** One little-endian u64. */
        U64,
        /** {@code struct vhost_vring_state}: u32 index, u32 num. */
        VRING_STATE,
        /** {@code struct vhost_vring_addr}: index, flags, then four u64 addresses. */
        VRING_ADDRESS,
        /** u64 whose low 8 bits name the ring and bit 8 says no descriptor came. */
        VRING_FD,
        /** u32 region count, u32 padding, then up to 8 regions of four u64. */
        MEMORY_TABLE,
        /** {@code VhostUserLog}: u64 mmap size, u64 mmap offset. */
        LOG,
        /** Not served by this implementation: the request is refused by name. */
        UNSUPPORTED
    }

    private static final VhostUserRequest[] BY_CODE = new VhostUserRequest[64];

    static {
        for (VhostUserRequest r : values()) {
            BY_CODE[r.code] = r;
        }
    }

    private final int code;
    private final Payload payload;
    private final int maxFds;
    private final boolean answers;

    VhostUserRequest(int code, Payload payload, int maxFds, boolean answers) {
        this.code = code;
        this.payload = payload;
        this.maxFds = maxFds;
        this.answers = answers;
    }

    /** The request's number on the wire. */
    public int code() {
        return code;
    }

    /** The payload's shape. */
    public Payload payload() {
        return payload;
    }

    /** The most file descriptors that may come with this request. */
    public int maxFds() {
        return maxFds;
    }

    /** Whether the backend always replies (GET_*); others reply only when need_reply asks, under REPLY_ACK. */
    public boolean answers() {
        return answers;
    }

    /** The request with this number, or null when the protocol names none. */
    public static VhostUserRequest forCode(int code) {
        return code > 0 && code < BY_CODE.length ? BY_CODE[code] : null;
    }

    @Override
    public String toString() {
        return name() + "(" + code + ")";
    }
}

package io.vhostffm.vhost.vhostuser;

import java.util.ArrayList;
import java.util.List;

/**
 * The vhost-user protocol feature bits (GET/SET_PROTOCOL_FEATURES), numbered as QEMU's
 * {@code docs/interop/vhost-user.rst} numbers them.
 */
public enum VhostUserProtocolFeature {
    MQ(0),
    LOG_SHMFD(1),
    RARP(2),
    REPLY_ACK(3),
    NET_MTU(4),
    BACKEND_REQ(5),
    CROSS_ENDIAN(6),
    CRYPTO_SESSION(7),
    PAGEFAULT(8),
    CONFIG(9),
    BACKEND_SEND_FD(10),
    HOST_NOTIFIER(11),
    INFLIGHT_SHMFD(12),
    RESET_DEVICE(13),
    INBAND_NOTIFICATIONS(14),
    CONFIGURE_MEM_SLOTS(15),
    STATUS(16),
    XEN_MMAP(17),
    SHARED_OBJECT(18),
    DEVICE_STATE(19);

    /**
     * VHOST_USER_F_PROTOCOL_FEATURES: bit 30 of the <em>device</em> feature word (GET_FEATURES),
     * saying that GET/SET_PROTOCOL_FEATURES exist. Once acked, rings start disabled.
     */
    public static final long PROTOCOL_FEATURES_BIT = 1L << 30;

    private final int bit;

    VhostUserProtocolFeature(int bit) {
        this.bit = bit;
    }

    /** The bit number. */
    public int bit() {
        return bit;
    }

    /** {@code 1L << bit()}. */
    public long mask() {
        return 1L << bit;
    }

    /** Whether {@code features} has this bit. */
    public boolean in(long features) {
        return (features & mask()) != 0;
    }

    /** The OR of the given features' masks. */
    public static long maskOf(VhostUserProtocolFeature... features) {
        long mask = 0;
        for (VhostUserProtocolFeature f : features) {
            mask |= f.mask();
        }
        return mask;
    }

    /** The name of bit {@code bit}, found by the bit each constant carries, not by its position. */
    private static String named(int bit) {
        for (VhostUserProtocolFeature f : values()) {
            if (f.bit == bit) {
                return f.name();
            }
        }
        return "bit " + bit;
    }

    /** The set bits by name, lowest first ({@code MQ|REPLY_ACK|STATUS}); unnamed ones as {@code bit N}. */
    public static String describe(long features) {
        if (features == 0) {
            return "none";
        }
        List<String> names = new ArrayList<>();
        for (int bit = 0; bit < 64; bit++) {
            if ((features & (1L << bit)) != 0) {
                names.add(named(bit));
            }
        }
        return String.join("|", names);
    }
}

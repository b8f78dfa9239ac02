package io.vhostffm.testkit;

/**
 * How a {@link FakeGuest} lays a transmit chain out: the virtio-net header and the frame as one
 * image, cut into device-readable pieces with 64-byte gaps between them in guest memory (a device
 * that assumes contiguity reads the gap), in the ring or through an indirect table.
 */
public enum TxShape {
    /** One descriptor: header and frame together. */
    SINGLE(false),
    /** Two descriptors: the header, then the frame. */
    HEADER_APART(false),
    /** The header, then the frame in up to three pieces of varied sizes. */
    PIECES(false),
    /** Three or four pieces cut anywhere, even inside the header. */
    CUT_ANYWHERE(false),
    /** {@link #PIECES} through an indirect table. */
    INDIRECT_PIECES(true),
    /** {@link #CUT_ANYWHERE} through an indirect table. */
    INDIRECT_CUT_ANYWHERE(true);

    private final boolean indirect;

    TxShape(boolean indirect) {
        this.indirect = indirect;
    }

    /** Whether the chain goes through an indirect table (VIRTIO_F_INDIRECT_DESC). */
    public boolean indirect() {
        return indirect;
    }

    /** The shape of frame number {@code n} when a test cycles through all of them. */
    public static TxShape cycle(long n) {
        TxShape[] all = values();
        return all[(int) Math.floorMod(n, (long) all.length)];
    }
}

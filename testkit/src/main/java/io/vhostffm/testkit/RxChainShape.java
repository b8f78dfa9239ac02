package io.vhostffm.testkit;

/** How a {@link FakeGuest} lays out its receive chains. */
public enum RxChainShape {
    /** One device-writable buffer per chain. */
    SINGLE,
    /** Two buffers per chain: 7 bytes (the header split), then the rest, 64 bytes apart. */
    SPLIT_HEADER,
    /** Alternately {@link #SINGLE} and {@link #SPLIT_HEADER}. */
    ALTERNATING
}

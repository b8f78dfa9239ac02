package io.vhostffm.vring;

import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/** The unaligned little-endian layouts of {@link GuestMemory}'s value helpers. */
final class GuestValues {
    static final ValueLayout.OfShort LE16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfInt LE32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfLong LE64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private GuestValues() {
    }
}

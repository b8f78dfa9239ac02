package io.vhostffm.testkit;

import java.util.List;

/**
 * One frame a {@link FakeGuest} received, reassembled from its receive buffers.
 *
 * @param pair the queue pair whose receive queue it arrived on
 * @param header the 12-byte virtio-net header the device wrote
 * @param frame the bytes after the header
 * @param buffers the guest buffers the device wrote, in order, with the bytes written to each
 */
public record RxFrame(int pair, byte[] header, byte[] frame, List<GuestArea> buffers) {
    /** {@code num_buffers} of the header (the used chains the frame spans, with mergeable buffers). */
    public int numBuffers() {
        return (header[10] & 0xff) | (header[11] & 0xff) << 8;
    }
}

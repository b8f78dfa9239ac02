package io.vhostffm.vring;

/**
 * Where a virtqueue's three parts lie in guest memory: what a driver writes to the transport's
 * queue registers ({@code queue_desc}, {@code queue_driver}, {@code queue_device}), computed by
 * {@link SplitRingLayout#place} or {@link PackedRing#place} so nobody writes the sizes by hand.
 *
 * @param descTable the descriptor table (split) or descriptor ring (packed)
 * @param driverArea the available ring (split) or the driver event suppression structure (packed)
 * @param deviceArea the used ring (split) or the device event suppression structure (packed)
 * @param end the first guest address after the last part: where the next queue may start
 */
public record RingAddresses(long descTable, long driverArea, long deviceArea, long end) {
}

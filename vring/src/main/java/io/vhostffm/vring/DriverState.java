package io.vhostffm.vring;

/**
 * The private state of a {@link DriverQueue} (what a guest kernel keeps outside the rings), as
 * plain data so a test guest survives a migration of its device.
 *
 * @param size                     queue size
 * @param descTableAddress         descriptor table (split) or ring (packed)
 * @param driverAreaAddress        available ring (split) or driver event suppression (packed)
 * @param deviceAreaAddress        used ring (split) or device event suppression (packed)
 * @param eventIdx                 VIRTIO_F_EVENT_IDX in use
 * @param packed                   packed ring
 * @param availIdx                 the driver's next available index (split: free-running 16-bit;
 *                                 packed: ring position)
 * @param availWrapCounter         packed: the driver's wrap counter
 * @param lastUsedIdx              the next used element the driver will collect
 * @param usedWrapCounter          packed: the wrap counter expected on the next used element
 * @param freeHead                 head of the free descriptor list (split) or free buffer id list (packed)
 * @param freeCount                free descriptors
 * @param addedSinceKickCheck      chains added since the last {@link DriverQueue#needsKick()}
 * @param usedNotificationsEnabled whether the driver asked for used-buffer notifications
 * @param descriptorsPerId         packed: for each buffer id, the ring descriptors its chain in
 *                                 flight occupies (0 = id free); split: empty, the split driver
 *                                 finds chains through the descriptor table itself. Copied in and
 *                                 out, so the record stays plain data.
 */
public record DriverState(
        int size,
        long descTableAddress,
        long driverAreaAddress,
        long deviceAreaAddress,
        boolean eventIdx,
        boolean packed,
        int availIdx,
        boolean availWrapCounter,
        int lastUsedIdx,
        boolean usedWrapCounter,
        int freeHead,
        int freeCount,
        int addedSinceKickCheck,
        boolean usedNotificationsEnabled,
        int[] descriptorsPerId) {

    /** Copies the array, so later changes to the caller's array do not reach the record. */
    public DriverState {
        descriptorsPerId = descriptorsPerId == null ? new int[0] : descriptorsPerId.clone();
    }

    /** A copy of the per-id descriptor counts. */
    @Override
    public int[] descriptorsPerId() {
        return descriptorsPerId.clone();
    }
}

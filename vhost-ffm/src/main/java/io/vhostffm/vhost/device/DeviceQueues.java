package io.vhostffm.vhost.device;

import io.vhostffm.vring.DeviceQueue;
import io.vhostffm.vring.GuestMemory;
import io.vhostffm.vring.QueueState;
import io.vhostffm.vring.RestoreMode;
import io.vhostffm.vring.SplitDeviceQueue;
import io.vhostffm.vring.VirtqueueException;

/**
 * Opens the device side of a virtqueue in the format its state names: the one place that picks
 * between split and packed, for the control queue and the userspace datapath.
 */
public final class DeviceQueues {
    private DeviceQueues() {}

    /**
     * The device side of queue {@code index} over {@code memory}, restored from {@code state}.
     *
     * @throws VirtqueueException when the state does not hold up (naming the field)
     * @throws UnsupportedOperationException for a packed state while vring has no packed device
     *     side in this build
     */
    public static DeviceQueue open(int index, GuestMemory memory, QueueState state, RestoreMode mode) {
        if (state.packed()) {
            throw new UnsupportedOperationException("virtqueue " + index
                    + ": packed rings are not available in this build of the device (vring's packed device side is missing)");
        }
        return new SplitDeviceQueue(index, memory, state, mode);
    }
}

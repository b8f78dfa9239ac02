package io.vhostffm.vhost.device;

import io.vhostffm.vring.DeviceQueue;
import io.vhostffm.vring.GuestMemory;
import io.vhostffm.vring.PackedDeviceQueue;
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
     * @return a {@link PackedDeviceQueue} when the geometry is packed (VIRTIO_F_RING_PACKED was
     *     negotiated), else a {@link SplitDeviceQueue}
     * @throws VirtqueueException when the state does not hold up (naming the field)
     */
    public static DeviceQueue open(int index, GuestMemory memory, QueueState state, RestoreMode mode) {
        return state.geometry().packed()
                ? new PackedDeviceQueue(index, memory, state, mode)
                : new SplitDeviceQueue(index, memory, state, mode);
    }
}

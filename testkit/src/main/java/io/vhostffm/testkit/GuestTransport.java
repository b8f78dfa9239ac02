package io.vhostffm.testkit;

import io.vhostffm.vhost.device.NetDeviceRuntime;
import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.virtio.net.VirtioNetDevice;

/**
 * What a {@link FakeGuest} reaches its device through, as a guest reaches a PCI or MMIO device:
 * the device model's registers (status, features), the queue registers, a doorbell per queue
 * (kick) and an interrupt per queue (call).
 */
public interface GuestTransport {

    /** The device model: status and feature registers, config space, last error. */
    VirtioNetDevice model();

    /**
     * Writes virtqueue {@code queue}'s registers: size and the guest addresses of its three parts.
     * Called between FEATURES_OK and DRIVER_OK.
     */
    void configureQueue(int queue, int size, long descAddress, long driverAreaAddress, long deviceAreaAddress);

    /** Rings virtqueue {@code queue}'s doorbell (an available-buffer notification). */
    void kick(int queue) throws NativeCallException;

    /** The eventfd the device signals for a used-buffer notification of virtqueue {@code queue}. */
    EventFd call(int queue);

    /** The transport of a device run by a {@link NetDeviceRuntime}: its model, queue registers and eventfds. */
    static GuestTransport of(NetDeviceRuntime runtime) {
        return new GuestTransport() {
            @Override
            public VirtioNetDevice model() {
                return runtime.model();
            }

            @Override
            public void configureQueue(int queue, int size, long desc, long driverArea, long deviceArea) {
                runtime.configureQueue(queue, size, desc, driverArea, deviceArea);
            }

            @Override
            public void kick(int queue) throws NativeCallException {
                runtime.kick(queue).signal();
            }

            @Override
            public EventFd call(int queue) {
                return runtime.call(queue);
            }
        };
    }
}

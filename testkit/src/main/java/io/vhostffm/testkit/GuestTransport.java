package io.vhostffm.testkit;

import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.virtio.VirtioDevice;
import java.util.Optional;

/**
 * What a {@link FakeGuest} reaches its device through, as a guest driver reaches a virtio-pci or
 * virtio-mmio device: the status and feature registers, the queue registers, a doorbell per
 * queue (kick) and an interrupt per queue (call).
 *
 * <p>{@link #of(VirtioDevice)} goes through the transport-facing {@link VirtioDevice} registers
 * exactly as a hypervisor's transport forwards a guest's accesses (feature words by select, one
 * register per queue field, queue enable, queue notify), so every test driven by the fake guest
 * exercises that contract. {@link EventFdTransport} serves a device model with no runtime.
 */
public interface GuestTransport {

    /** The device status register. */
    int status();

    /** Writes the device status register; returns the status the device kept. */
    int writeStatus(int status);

    /** The 64 feature bits the device offers. */
    long deviceFeatures();

    /** Writes the 64 feature bits the driver accepts. */
    void writeDriverFeatures(long features);

    /** Why the device last refused something or needs a reset, if it did. */
    Optional<String> lastError();

    /**
     * Writes virtqueue {@code queue}'s registers (size and the guest addresses of its three
     * parts) and enables it. Called between FEATURES_OK and DRIVER_OK.
     */
    void configureQueue(int queue, int size, long descAddress, long driverAreaAddress, long deviceAreaAddress);

    /** Rings virtqueue {@code queue}'s doorbell (an available-buffer notification). */
    void kick(int queue) throws NativeCallException;

    /** The eventfd the device signals for a used-buffer notification of virtqueue {@code queue}. */
    EventFd call(int queue);

    /** The transport of {@code device}, through its registers. */
    static GuestTransport of(VirtioDevice device) {
        return new GuestTransport() {
            @Override
            public int status() {
                return device.status();
            }

            @Override
            public int writeStatus(int status) {
                return device.writeStatus(status);
            }

            @Override
            public long deviceFeatures() {
                return Integer.toUnsignedLong(device.deviceFeatures(0)) | (long) device.deviceFeatures(1) << 32;
            }

            @Override
            public void writeDriverFeatures(long features) {
                device.writeDriverFeatures(0, (int) features);
                device.writeDriverFeatures(1, (int) (features >>> 32));
            }

            @Override
            public Optional<String> lastError() {
                return device.lastError();
            }

            @Override
            public void configureQueue(int queue, int size, long desc, long driverArea, long deviceArea) {
                device.setQueueSize(queue, size);
                device.setQueueDescTable(queue, desc);
                device.setQueueDriverArea(queue, driverArea);
                device.setQueueDeviceArea(queue, deviceArea);
                device.enableQueue(queue);
            }

            @Override
            public void kick(int queue) {
                device.notifyQueue(queue);
            }

            @Override
            public EventFd call(int queue) {
                return device.call(queue);
            }
        };
    }
}

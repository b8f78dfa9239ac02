package io.vhostffm.vhost.virtio;

import io.vhostffm.vhost.os.EventFd;
import java.util.Optional;

/**
 * A virtio device as a transport (virtio-pci's common configuration, virtio-mmio's registers)
 * sees it: what a hypervisor's PCI or MMIO emulation forwards the driver's accesses to. Every
 * method is one register access or its effect; the transport keeps only the selectors
 * ({@code device_feature_select}, {@code queue_select}) and decodes widths.
 *
 * <h2>The driver's sequence (virtio 1.x 3.1.1), as calls</h2>
 * <pre>{@code
 * device.writeStatus(0);                                        // reset
 * device.writeStatus(ACKNOWLEDGE); device.writeStatus(ACKNOWLEDGE | DRIVER);
 * long offered = device.deviceFeatures(0) & 0xffffffffL | (long) device.deviceFeatures(1) << 32;
 * device.writeDriverFeatures(0, (int) accepted); device.writeDriverFeatures(1, (int) (accepted >>> 32));
 * device.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK);        // re-read: FEATURES_OK may be refused
 * for each queue q:                                              // queue_select = q
 *     device.setQueueSize(q, n);                                 // <= queueMaxSize(q)
 *     device.setQueueDescTable(q, desc); device.setQueueDriverArea(q, avail); device.setQueueDeviceArea(q, used);
 *     device.enableQueue(q);                                     // queue_enable = 1
 * device.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
 * }</pre>
 *
 * <h2>Rules the device enforces</h2>
 * <ul>
 *   <li>Queue registers (size, the three addresses, enable) are written only before DRIVER_OK and
 *       only while the queue is not enabled (virtio 1.x 4.1.4.3.2); afterwards they are read-only
 *       until a reset.</li>
 *   <li>A queue is used only once enabled: at DRIVER_OK the device serves the enabled queues.</li>
 *   <li>A refused write throws {@link VirtioTransportException} (the transport drops the write:
 *       a guest cannot crash the hypervisor), becomes {@link #lastError()}, and is told to every
 *       {@link VirtioDeviceListener}. Status and feature writes that break the rules are not
 *       exceptions: as the spec asks, the status simply stays as it was (read it back); they are
 *       recorded and told to the listeners the same way.</li>
 *   <li>Writing 0 to the status (or {@link #reset()}) brings everything back: status, features,
 *       queue registers (size to its maximum, addresses 0, disabled), the datapath stopped.</li>
 * </ul>
 *
 * <h2>Notifications and interrupts</h2>
 * Each queue has a kick eventfd ({@link #kick}: wire the notify register's ioeventfd to it, or
 * call {@link #notifyQueue} from a trapped notify write) and a call eventfd ({@link #call}: wire it
 * to the queue's interrupt, e.g. an irqfd for its MSI-X vector). {@link #configInterrupt()} is
 * signalled on a config change; {@link #configGeneration()} changes with it.
 */
public interface VirtioDevice {

    /** The virtio device ID (virtio 1.x section 5): 1 for a network device. */
    int deviceType();

    // ---- features

    /** Feature bits {@code 32*select .. 32*select+31} the device offers; 0 beyond the last word. */
    int deviceFeatures(int select);

    /** Feature bits {@code 32*select .. 32*select+31} the driver wrote; 0 beyond the last word. */
    int driverFeatures(int select);

    /**
     * The driver writes feature word {@code select}. Refused (status unchanged, false returned,
     * the reason in {@link #lastError()} and told to the listeners) once FEATURES_OK is set, or for
     * a word that does not exist.
     */
    boolean writeDriverFeatures(int select, int value);

    // ---- status

    /** The device status byte ({@link DeviceStatus}). */
    int status();

    /**
     * The driver writes the status byte; 0 resets the device. Returns the status after the write,
     * which the driver reads back (FEATURES_OK left clear means the features were refused).
     */
    int writeStatus(int value);

    /** Resets the device: as {@code writeStatus(0)}. */
    default void reset() {
        writeStatus(0);
    }

    // ---- config space

    /** Bytes of the device-specific configuration space. */
    int configSize();

    /**
     * Reads {@code length} bytes of configuration space at {@code offset}.
     *
     * @throws VirtioTransportException naming offset and length when outside {@link #configSize()}
     */
    byte[] readConfig(int offset, int length);

    /**
     * The driver writes configuration space at {@code offset}.
     *
     * @throws VirtioTransportException when the range is outside the space or read-only
     */
    void writeConfig(int offset, byte[] data);

    /** The {@code config_generation} register: changes whenever the device changes its config space. */
    int configGeneration();

    // ---- queues

    /** Virtqueues the device has ({@code num_queues}). */
    int queueCount();

    /** The largest size the driver may write to {@code queue}'s size register. */
    int queueMaxSize(int queue);

    /** {@code queue}'s size register: its maximum after a reset until the driver writes it. */
    int queueSize(int queue);

    /**
     * Writes {@code queue}'s size register.
     *
     * @throws VirtioTransportException when refused: see the class's rules; a size of 0 or above
     *     {@link #queueMaxSize}, or (split rings negotiated) not a power of two
     */
    void setQueueSize(int queue, int size);

    /** {@code queue_desc}: guest address of the descriptor table (split) or ring (packed). */
    long queueDescTable(int queue);

    /** Writes {@code queue_desc}; refused as {@link #setQueueSize}. */
    void setQueueDescTable(int queue, long guestAddress);

    /** {@code queue_driver}: the available ring (split) or driver event suppression (packed). */
    long queueDriverArea(int queue);

    /** Writes {@code queue_driver}; refused as {@link #setQueueSize}. */
    void setQueueDriverArea(int queue, long guestAddress);

    /** {@code queue_device}: the used ring (split) or device event suppression (packed). */
    long queueDeviceArea(int queue);

    /** Writes {@code queue_device}; refused as {@link #setQueueSize}. */
    void setQueueDeviceArea(int queue, long guestAddress);

    /** {@code queue_enable}: whether the driver enabled {@code queue}. */
    boolean queueEnabled(int queue);

    /**
     * {@code queue_enable = 1}: the queue's registers are final and the device will use it at
     * DRIVER_OK. Refused after DRIVER_OK; enabling an enabled queue changes nothing.
     */
    void enableQueue(int queue);

    /** The driver notified {@code queue} (a trapped notify register write): signals its kick. */
    void notifyQueue(int queue);

    /** {@code queue}'s kick eventfd: the driver's notifications arrive there (an ioeventfd). */
    EventFd kick(int queue);

    /** {@code queue}'s call eventfd: the device interrupts the driver with it (an irqfd). */
    EventFd call(int queue);

    /** Signalled when the config space changed under a running driver. */
    EventFd configInterrupt();

    // ---- errors and listeners

    /** The last refused access or error (NEEDS_RESET's cause), for logs and tests. */
    Optional<String> lastError();

    /** Adds a listener for refusals and DEVICE_NEEDS_RESET. */
    void addListener(VirtioDeviceListener listener);
}

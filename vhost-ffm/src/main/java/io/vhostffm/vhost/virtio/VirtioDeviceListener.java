package io.vhostffm.vhost.virtio;

/**
 * What a {@link VirtioDevice} tells the hypervisor besides its interrupts: refused driver or
 * transport accesses, and entering DEVICE_NEEDS_RESET. Called with the device's lock held, so an
 * implementation must return quickly and not call back into the device from another thread and
 * wait for it. Both methods have empty defaults.
 */
public interface VirtioDeviceListener {

    /**
     * The device refused an access and left its state unchanged: a status or feature write that
     * broke the rules, a queue register write after DRIVER_OK or to an enabled queue.
     *
     * @param reason what was refused and why, naming queue and register where there is one
     */
    default void refused(String reason) {}

    /**
     * The device entered DEVICE_NEEDS_RESET (bad guest input, a datapath that stopped without
     * being asked, a backend closed under it); a driver past DRIVER_OK also got a config interrupt.
     *
     * @param reason the cause, as {@link VirtioDevice#lastError()} has it
     */
    default void needsReset(String reason) {}
}

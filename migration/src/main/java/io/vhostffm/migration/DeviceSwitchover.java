package io.vhostffm.migration;

/**
 * The device's final step on the destination, called once the whole switchover message
 * arrived and validated, and after {@link DeviceStateSection#applyDelta} ran for each section
 * that changed at the switchover. It decides, from {@link Switchover}, between the quickstart
 * (no delta and early start succeeded: set every vring base from the final indices, bind the
 * backends, notify each queue once), finer updates, and a full reload.
 */
@FunctionalInterface
public interface DeviceSwitchover {

    /** Starts the device; an exception fails the migration (the source keeps the guest). */
    void switchover(Switchover switchover) throws Exception;
}

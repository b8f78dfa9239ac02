package io.vhostffm.programs.demo;

/**
 * The destination's word that its early load is done and the source may pause the guest (as
 * QEMU's switchover acknowledgement for devices with precopy state).
 *
 * @param prestarted whether the primary datapath prestarted
 */
public record EarlyLoaded(boolean prestarted) {}

package io.vhostffm.programs.demo;

import java.util.List;

/**
 * What the destination reports back after its switchover, next to the core acknowledgement: the
 * path it took and where its downtime went.
 *
 * @param path the {@link io.vhostffm.migration.net.SwitchoverPath} name
 * @param datapath the datapath now running, in plain words
 * @param fallbackReason why the fallback runs, or ""
 * @param earlyLoadNanos decode and load of the early state, prestart included
 * @param switchoverNanos from the first stop-and-copy frame to the device started
 * @param deviceStartNanos the part of it spent starting the device (quickstart, or the full path)
 * @param switchoverIoctls the vhost ioctls the switchover issued, in order
 * @param fullReloadReasons the changes that forced a full reload
 * @param fineChanges the changes applied without restarting vhost
 */
public record DestinationFigures(String path, String datapath, String fallbackReason, long earlyLoadNanos,
        long switchoverNanos, long deviceStartNanos, List<String> switchoverIoctls, List<String> fullReloadReasons,
        List<String> fineChanges) {}

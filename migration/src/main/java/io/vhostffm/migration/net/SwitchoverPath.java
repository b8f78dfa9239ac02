package io.vhostffm.migration.net;

/** How a destination started its device at the switchover. */
public enum SwitchoverPath {
    /** No delta: every vring base set from the final indices, backends bound, each queue notified. */
    QUICKSTART,
    /**
     * Deltas that do not concern vhost (MAC table, VLAN, rx mode, offloads, queue pairs, pending
     * tx) were applied to the running model finely, then the quickstart.
     */
    QUICKSTART_AFTER_FINE_DELTAS,
    /** A change nothing finer can apply (features, ring layout, status): early vhost stopped, classic start. */
    FULL_RELOAD,
    /** The primary backend failed in prestart, quickstart or start: the fallback (userspace) datapath runs. */
    FALLBACK,
    /** Early start disabled: a classic migration, everything at the switchover (for comparison). */
    CLASSIC,
    /** The driver had not set DRIVER_OK: nothing to start. */
    NOT_RUNNING
}

package io.vhostffm.migration.jfr;

import jdk.jfr.Category;
import jdk.jfr.Description;
import jdk.jfr.Event;
import jdk.jfr.Label;
import jdk.jfr.Name;
import jdk.jfr.StackTrace;

/** One phase of a migration, on the side that runs it: its duration is the phase's. */
@Name("io.vhostffm.MigrationPhase")
@Label("Migration phase")
@Category({"vhost-ffm", "Migration"})
@Description("A phase of an early live migration: setup, precopy delta, stop-and-copy, early load, switchover")
@StackTrace(false)
public final class MigrationPhaseEvent extends Event {
    /** The source's setup: manifest and full state. */
    public static final String SETUP = "source setup";
    /** One precopy delta check and send. */
    public static final String PRECOPY_DELTA = "source precopy delta";
    /** The stop-and-copy, guest paused. */
    public static final String STOP_AND_COPY = "source stop-and-copy";
    /** The destination's early load (decode, restore, prestart). */
    public static final String EARLY_LOAD = "destination early load";
    /** The destination's switchover, first switchover frame to the device started. */
    public static final String SWITCHOVER = "destination switchover";

    @Label("Phase")
    public String phase;
    @Label("Bytes")
    @jdk.jfr.DataAmount
    public long bytes;
}

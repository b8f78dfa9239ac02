package io.vhostffm.migration.jfr;

import jdk.jfr.Category;
import jdk.jfr.Description;
import jdk.jfr.Event;
import jdk.jfr.Label;
import jdk.jfr.Name;
import jdk.jfr.StackTrace;
import jdk.jfr.Timespan;

/**
 * One step of the destination's switchover (stream, destination apply, quickstart, first
 * notification, ...), committed when the step ends; its duration is the step's (from the end of
 * the step before, or from the first switchover frame).
 */
@Name("io.vhostffm.SwitchoverStep")
@Label("Switchover step")
@Category({"vhost-ffm", "Migration"})
@Description("A step of the destination's switchover, from the end of the step before")
@StackTrace(false)
public final class SwitchoverStepEvent extends Event {
    @Label("Step")
    public String step;
    @Label("Step duration")
    @Timespan(Timespan.NANOSECONDS)
    public long stepNanos;
}

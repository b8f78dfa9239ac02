package io.vhostffm.migration.jfr;

import jdk.jfr.Category;
import jdk.jfr.Description;
import jdk.jfr.Event;
import jdk.jfr.Label;
import jdk.jfr.Name;
import jdk.jfr.StackTrace;

/** One frame of the migration stream written or read; its duration the write or the read (waiting included). */
@Name("io.vhostffm.StreamFrame")
@Label("Migration stream frame")
@Category({"vhost-ffm", "Migration"})
@Description("A frame of the migration stream, written or read")
@StackTrace(false)
public final class StreamFrameEvent extends Event {
    @Label("Direction")
    public String direction;
    @Label("Section id")
    public int sectionId;
    @Label("Flags")
    public int flags;
    @Label("Payload bytes")
    @jdk.jfr.DataAmount
    public int payloadBytes;
}

package io.vhostffm.vhost.os;

import jdk.jfr.Category;
import jdk.jfr.Description;
import jdk.jfr.Event;
import jdk.jfr.Label;
import jdk.jfr.Name;
import jdk.jfr.StackTrace;

/**
 * A JDK Flight Recorder event for each ioctl(2) the library makes (vhost-net, TUN/TAP), its
 * duration the call's. Recorded by any recording that does not disable it: when none runs, the
 * event object is never committed and the JIT removes its allocation.
 */
@Name("io.vhostffm.Ioctl")
@Label("ioctl")
@Category({"vhost-ffm", "Native calls"})
@Description("One ioctl(2) on a vhost-net or TAP descriptor")
@StackTrace(false)
public final class IoctlEvent extends Event {
    @Label("Request")
    public String request;
    @Label("Descriptor")
    public int fd;
    @Label("Result")
    public int result;
    @Label("Errno")
    public int errno;
}

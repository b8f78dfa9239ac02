package io.vhostffm.programs.demo;

import io.vhostffm.vhost.os.TapDevice;
import io.vhostffm.vhost.device.NetBackend;
import io.vhostffm.vhost.device.userspace.UserspaceNetBackend;
import java.io.IOException;

/** Opens the userspace datapath on a TAP (not owned). */
final class Userspace {
    private Userspace() {}

    /** The userspace backend on {@code tap}. */
    static NetBackend open(TapDevice tap) throws IOException {
        return UserspaceNetBackend.open(tap);
    }
}

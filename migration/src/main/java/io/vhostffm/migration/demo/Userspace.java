package io.vhostffm.migration.demo;

import io.vhostffm.vhost.TapDevice;
import io.vhostffm.vhost.device.NetBackend;
import java.io.IOException;

/** Opens the userspace datapath on a TAP, where this build has one as a {@link NetBackend}. */
final class Userspace {
    private Userspace() {}

    /** The userspace backend on {@code tap}, or null when this build has none. */
    static NetBackend open(TapDevice tap) throws IOException {
        return null;
    }
}

package io.vhostffm.programs.demo;

import io.vhostffm.vhost.os.TapDevice;
import io.vhostffm.vhost.device.kernel.VhostNet;
import io.vhostffm.vhost.device.NetBackend;
import io.vhostffm.vhost.device.kernel.VhostNetBackend;
import io.vhostffm.vhost.device.BackendCapabilities;
import io.vhostffm.vhost.vhostuser.frontend.VhostUserFrontendBackend;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

/**
 * The backends of one device on one TAP: the primary (kernel vhost-net when {@code /dev/vhost-net}
 * opens, else the userspace datapath) and the fallback (the userspace datapath, when the primary
 * is the kernel's), and the features both carry, so the device can move between them whatever the
 * driver acknowledged.
 *
 * @param primary the backend the device starts on
 * @param fallback the backend a failed primary falls back to, or null
 * @param offerAgainst what the device may offer
 * @param description the datapath, in plain words
 */
public record Backends(NetBackend primary, NetBackend fallback, BackendCapabilities offerAgainst, String description)
        implements AutoCloseable {

    /** How a side of a migration opens its backends on the TAP it was given (or made). */
    @FunctionalInterface
    public interface Opener {
        /** The backends of one side on {@code tap} (not owned). */
        Backends open(TapDevice tap) throws IOException;
    }

    /** The default choice: {@link #open(TapDevice)}. */
    public static final Opener DEFAULT = Backends::open;

    /**
     * A vhost-user backend process (DPDK's {@code net_vhost}, listening on {@code socket}) as the
     * primary, the userspace datapath on {@code tap} as the fallback: each side of a migration
     * connects its own backend process, and the TAP still moves between the sides so the
     * destination has its fallback.
     *
     * @param replyDeadline how long each reply of the backend process may take
     */
    public static Opener vhostUser(Path socket, Duration replyDeadline) {
        return tap -> {
            NetBackend userspace = Userspace.open(tap);
            VhostUserFrontendBackend frontend;
            try {
                frontend = VhostUserFrontendBackend.connect(socket, replyDeadline, tap.queues().size());
            } catch (IOException | RuntimeException e) {
                userspace.close();
                throw e;
            }
            long both = frontend.capabilities().supportedFeatures() & userspace.capabilities().supportedFeatures();
            return new Backends(frontend, userspace, BackendCapabilities.of("vhost-user and userspace", both),
                    "vhost-user backend process on " + socket + ", userspace datapath as fallback");
        };
    }

    /**
     * The backend whose {@link NetBackend#transfer()} carries this side's endpoint to a
     * destination: the primary's, except for a vhost-user primary (each side connects its own
     * backend process), whose fallback's TAP moves instead.
     */
    public NetBackend endpoint() {
        return primary instanceof VhostUserFrontendBackend && fallback != null ? fallback : primary;
    }

    /** Opens the backends on {@code tap} (not owned). */
    public static Backends open(TapDevice tap) throws IOException {
        NetBackend userspace = Userspace.open(tap);
        if (kernelAvailable()) {
            VhostNetBackend kernel = VhostNetBackend.open(tap);
            if (userspace == null) {
                return new Backends(kernel, null, kernel.capabilities(),
                        "kernel vhost-net (/dev/vhost-net opened; no userspace fallback in this build)");
            }
            long both = kernel.capabilities().supportedFeatures() & userspace.capabilities().supportedFeatures();
            return new Backends(kernel, userspace, BackendCapabilities.of("kernel vhost-net and userspace", both),
                    "kernel vhost-net (/dev/vhost-net opened), userspace datapath as fallback");
        }
        if (userspace == null) {
            throw new IOException("no datapath: /dev/vhost-net does not open here and this build has no userspace datapath");
        }
        return new Backends(userspace, null, userspace.capabilities(),
                "userspace datapath (this host has no /dev/vhost-net: the kernel module vhost_net is missing)");
    }

    /** Whether {@code /dev/vhost-net} exists and opens read-write. */
    public static boolean kernelAvailable() {
        if (!Files.exists(Path.of(VhostNet.DEVICE))) {
            return false;
        }
        try (VhostNet v = VhostNet.open()) {
            return true;
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }

    /** Whether the primary is the kernel's vhost-net. */
    public boolean kernel() {
        return primary instanceof VhostNetBackend;
    }

    @Override
    public void close() {
        primary.close();
        if (fallback != null) {
            fallback.close();
        }
    }
}

package io.vhostffm.programs.probe;

import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.os.TapDevice;
import io.vhostffm.vhost.os.TunFlag;
import io.vhostffm.vhost.device.kernel.VhostBackendFeature;
import io.vhostffm.vhost.device.kernel.VhostNet;
import io.vhostffm.vhost.virtio.VirtioFeature;
import java.io.IOException;
import java.io.PrintStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.zip.GZIPInputStream;

/**
 * What this host offers vhost-ffm, in words: /dev/vhost-net and its features, TUN and its
 * features, memfd, the JDK. Launched by {@code bin/probe}. Always exits 0: a missing piece is
 * a finding, not a failure.
 */
public final class Probe {
    private Probe() {}

    public static void main(String[] args) {
        PrintStream out = System.out;
        out.println("vhost-ffm probe");
        out.println("  JDK:        " + System.getProperty("java.vm.vendor") + " " + Runtime.version()
                + " at " + System.getProperty("java.home"));
        out.println("  kernel:     " + System.getProperty("os.name") + " " + System.getProperty("os.version")
                + " (" + System.getProperty("os.arch") + ")");
        vhostNet(out);
        tun(out);
        memfd(out);
    }

    private static void vhostNet(PrintStream out) {
        if (!Files.exists(Path.of(VhostNet.DEVICE))) {
            out.println("  vhost-net:  absent: " + whyNoVhostNet());
            return;
        }
        try (VhostNet vhost = VhostNet.open()) {
            out.println("  vhost-net:  present: " + VhostNet.DEVICE + " opens");
            long features = vhost.getFeatures();
            out.println("    features offered: " + VirtioFeature.describe(features));
            if (!VirtioFeature.RING_PACKED.in(features)) {
                out.println("    no RING_PACKED: packed-ring devices run on the userspace datapath");
            }
            long backend = vhost.getBackendFeatures();
            out.println("    backend features: 0x" + Long.toHexString(backend) + " " + VhostBackendFeature.names(backend));
            vhost.setOwner();
            out.println("    SET_OWNER: works (this process may own a vhost-net device)");
        } catch (NativeCallException e) {
            out.println("  vhost-net:  present but unusable: " + e.getMessage()
                    + ("EACCES".equals(e.errnoSymbol()) ? " (run as root or grant access to " + VhostNet.DEVICE + ")" : ""));
        }
    }

    /** Why /dev/vhost-net is missing, as precisely as the host lets us tell. */
    private static String whyNoVhostNet() {
        String release = System.getProperty("os.version");
        if (Files.isDirectory(Path.of("/sys/module/vhost_net"))) {
            return "the vhost_net module is loaded but " + VhostNet.DEVICE + " is missing (no devtmpfs/udev to make the node? it is misc device 10:238)";
        }
        String config = kernelConfigLine(release, "CONFIG_VHOST_NET");
        if (config != null && config.startsWith("# CONFIG_VHOST_NET is not set")) {
            return "this kernel has no vhost-net (CONFIG_VHOST_NET is not set in its config)";
        }
        for (String ext : List.of("", ".xz", ".zst", ".gz")) {
            if (Files.exists(Path.of("/lib/modules", release, "kernel/drivers/vhost/vhost_net.ko" + ext))) {
                return "the vhost_net module exists but is not loaded (modprobe vhost_net as root)";
            }
        }
        if (config != null && config.equals("CONFIG_VHOST_NET=m")) {
            return "vhost-net is built as a module (CONFIG_VHOST_NET=m) that is neither loaded nor installed here";
        }
        return "this kernel has no vhost-net (CONFIG_VHOST_NET not set or module not loaded)";
    }

    private static String kernelConfigLine(String release, String option) {
        try {
            List<String> lines;
            Path boot = Path.of("/boot/config-" + release);
            if (Files.isReadable(boot)) {
                lines = Files.readAllLines(boot);
            } else if (Files.isReadable(Path.of("/proc/config.gz"))) {
                try (GZIPInputStream in = new GZIPInputStream(Files.newInputStream(Path.of("/proc/config.gz")))) {
                    lines = new String(in.readAllBytes()).lines().toList();
                }
            } else {
                return null;
            }
            for (String line : lines) {
                if (line.startsWith(option + "=") || line.startsWith("# " + option + " is not set")) {
                    return line;
                }
            }
            return null;
        } catch (IOException e) {
            return null;
        }
    }

    private static void tun(PrintStream out) {
        if (!Files.exists(Path.of(TapDevice.TUN_DEVICE))) {
            out.println("  TUN/TAP:    absent: no " + TapDevice.TUN_DEVICE + " (CONFIG_TUN not set, tun module not loaded, or no device node)");
            return;
        }
        try {
            out.println("  TUN/TAP:    present: " + TapDevice.TUN_DEVICE + ", features " + TunFlag.names(TunFlag.encode(TapDevice.supportedFlags())));
        } catch (NativeCallException e) {
            out.println("  TUN/TAP:    present but unusable: " + e.getMessage());
            return;
        }
        try (TapDevice tap = TapDevice.create("vffprobe%d")) {
            out.println("    creating a TAP works (made and removed " + tap.name() + " with " + tap.flags() + ")");
        } catch (NativeCallException e) {
            out.println("    creating a TAP fails: " + e.getMessage()
                    + ("EPERM".equals(e.errnoSymbol()) ? " (needs CAP_NET_ADMIN: run as root)" : ""));
        }
    }

    private static void memfd(PrintStream out) {
        try (MemfdGuestMemory memory = MemfdGuestMemory.create("probe",
                List.of(new MemfdGuestMemory.RegionSpec(0, 2 << 20)))) {
            MemorySegment bytes = memory.slice(0x1000, 8);
            bytes.set(ValueLayout.JAVA_LONG, 0, 0x5eed);
            boolean readBack = memory.memfdRegions().get(0).segment().get(ValueLayout.JAVA_LONG, 0x1000) == 0x5eed;
            out.println("  memfd:      works (memfd_create, seal, mmap MAP_SHARED of 2 MiB" + (readBack ? ", read back" : ", READ BACK FAILED") + ")");
        } catch (NativeCallException e) {
            out.println("  memfd:      does not work: " + e.getMessage());
        }
    }
}

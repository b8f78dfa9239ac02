package io.vhostffm.vhost.os;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.EnumSet;
import java.util.Set;
import org.junit.jupiter.api.Test;
import io.vhostffm.vhost.virtio.net.VirtioNetHeader;

/** Real TAP devices through /dev/net/tun (needs CAP_NET_ADMIN: these machines run tests as root). */
class TapDeviceTest {

    private static boolean exists(String name) {
        return Files.exists(Path.of("/sys/class/net", name));
    }

    private static int sysfsFlags(String name) throws Exception {
        return Integer.decode(Files.readString(Path.of("/sys/class/net", name, "flags")).trim());
    }

    private static int sysfsMtu(String name) throws Exception {
        return Integer.parseInt(Files.readString(Path.of("/sys/class/net", name, "mtu")).trim());
    }

    private static byte[] readAll(Process p) {
        try {
            return p.getInputStream().readAllBytes();
        } catch (java.io.IOException e) {
            return e.toString().getBytes();
        }
    }

    @Test
    void createsAVhostReadyTapAndRemovesItOnClose() throws Exception {
        String name;
        try (TapDevice tap = TapDevice.create("vfft%d")) {
            name = tap.name();
            assertTrue(name.matches("vfft\\d+"), name);
            assertTrue(exists(name), "/sys/class/net/" + name);
            assertEquals(EnumSet.of(TunFlag.TAP, TunFlag.NO_PI, TunFlag.VNET_HDR), tap.flags());
            assertTrue(tap.queue(0).toString().startsWith("tap " + name + " queue 0 (fd "));

            tap.setVnetHeaderSize(VirtioNetHeader.SIZE);
            assertEquals(VirtioNetHeader.SIZE, tap.vnetHeaderSize());
            tap.setSendBuffer(1 << 20);
            assertEquals(1 << 20, tap.sendBuffer());
            tap.setOffload(EnumSet.of(TunOffload.CSUM, TunOffload.TSO4, TunOffload.TSO6));
            tap.setOffload(EnumSet.noneOf(TunOffload.class));

            assertFalse(tap.isLinkUp());
            tap.setLinkUp(true);
            assertTrue(tap.isLinkUp());
            assertEquals(0x1, sysfsFlags(name) & 0x1, "IFF_UP in sysfs");
            tap.setLinkUp(false);
            assertEquals(0, sysfsFlags(name) & 0x1);

            assertEquals(sysfsMtu(name), tap.mtu(), "SIOCGIFMTU against sysfs");
            // changed behind its back (ip link): the kernel's value, not one kept at creation
            Process ip = new ProcessBuilder("ip", "link", "set", "dev", name, "mtu", "1400").redirectErrorStream(true).start();
            assertTrue(ip.waitFor(30, java.util.concurrent.TimeUnit.SECONDS), "ip link set mtu");
            assertEquals(0, ip.exitValue(), () -> "ip link set mtu: " + new String(readAll(ip)));
            assertEquals(1400, tap.mtu());
            assertEquals(1400, sysfsMtu(name));
        }
        assertFalse(exists(name), "closing the last queue removes a non-persistent TAP");
    }

    @Test
    void setQueueAttachedAsksTheKernelAndAnswersWithoutAnException() throws Exception {
        try (TapDevice tap = TapDevice.create("vffmq%d", 3, TapDevice.VHOST_FLAGS)) {
            assertFalse(tap.setQueueAttached(1, true), "a new queue is attached already");
            assertTrue(tap.setQueueAttached(1, false));
            assertFalse(tap.setQueueAttached(1, false), "detached already");
            // the state is the kernel's, not a cache: a change made behind its back is seen
            tap.attachQueue(1);
            assertFalse(tap.setQueueAttached(1, true));
            assertTrue(tap.setQueueAttached(1, false));
            assertThrows(NativeCallException.class, () -> tap.detachQueue(1));
            assertTrue(tap.setQueueAttached(1, true));
        }
        try (TapDevice single = TapDevice.create("vffms%d")) {
            assertFalse(single.setQueueAttached(0, true));
            assertThrows(IllegalArgumentException.class, () -> single.setQueueAttached(0, false));
        }
    }

    @Test
    void multiQueueTapAttachesAndDetachesQueues() throws Exception {
        String name;
        try (TapDevice tap = TapDevice.create("vffmq%d", 4, TapDevice.VHOST_FLAGS)) {
            name = tap.name();
            assertEquals(4, tap.queues().size());
            assertTrue(tap.flags().contains(TunFlag.MULTI_QUEUE));
            tap.detachQueue(2);
            NativeCallException again = assertThrows(NativeCallException.class, () -> tap.detachQueue(2));
            assertEquals("TUNSETQUEUE", again.request());
            assertEquals("EINVAL", again.errnoSymbol());
            assertTrue(again.getMessage().startsWith("ioctl(TUNSETQUEUE) on tap " + name + " queue 2 (fd "), again.getMessage());
            tap.attachQueue(2);
            tap.queue(3).close();
            assertTrue(exists(name), "the device lives while a queue is open");
        }
        assertFalse(exists(name));
    }

    @Test
    void tunFeaturesAreDecodedByName() throws Exception {
        Set<TunFlag> supported = TapDevice.supportedFlags();
        assertTrue(supported.containsAll(EnumSet.of(TunFlag.TAP, TunFlag.NO_PI, TunFlag.VNET_HDR, TunFlag.MULTI_QUEUE)), supported.toString());
    }

    @Test
    void aBadNameIsRefusedBeforeAnyCall() {
        assertThrows(IllegalArgumentException.class, () -> TapDevice.create("name/with/slash"));
        assertThrows(IllegalArgumentException.class, () -> TapDevice.create("sixteen-chars-xx"));
    }

    @Test
    void tenThousandTapQueueDescriptorsOpenAndCloseWithoutLeak() throws Exception {
        var before = FdLinks.snapshot();
        try (TapDevice tap = TapDevice.create("vffleak%d", 2, TapDevice.VHOST_FLAGS)) {
            // each iteration opens /dev/net/tun and attaches a new queue to the same device
            for (int i = 0; i < 10_000; i++) {
                TapDevice.create(tap.name(), 1, EnumSet.of(TunFlag.TAP, TunFlag.NO_PI, TunFlag.VNET_HDR, TunFlag.MULTI_QUEUE)).close();
            }
        }
        // and whole devices, created and removed
        for (int i = 0; i < 200; i++) {
            TapDevice.create("vffdev%d").close();
        }
        assertEquals(before, FdLinks.snapshot());
    }
}

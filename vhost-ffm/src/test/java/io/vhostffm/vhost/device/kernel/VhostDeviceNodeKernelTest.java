package io.vhostffm.vhost.device.kernel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.stream.Stream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The kernel's vhost-net device node, checked without FFM: it exists, it is the misc character
 * device the kernel registered, and it opens read-write. Runs in the kernel suite (bin/kernel-bench),
 * never on a host without vhost-net, where it fails by design rather than skipping.
 */
@Tag("kernel")
class VhostDeviceNodeKernelTest {
    private static final Path DEVICE = Path.of("/dev/vhost-net");
    /** Where the misc driver publishes the "major:minor" of the node it registered. */
    private static final Path SYSFS_DEV = Path.of("/sys/class/misc/vhost-net/dev");
    /** The misc character-device major (include/uapi/linux/major.h: MISC_MAJOR). */
    private static final int MISC_MAJOR = 10;
    /** S_IFMT and S_IFCHR from <sys/stat.h>. */
    private static final int S_IFMT = 0170000;
    private static final int S_IFCHR = 0020000;

    @Test
    void deviceNodeIsTheMiscCharacterDeviceTheKernelRegistered() throws IOException {
        assertCharacterDevice(DEVICE);
        assertTrue(Files.isReadable(SYSFS_DEV),
                SYSFS_DEV + " does not exist: vhost-net is not registered as a misc device");

        long rdev = (Long) Files.getAttribute(DEVICE, "unix:rdev", LinkOption.NOFOLLOW_LINKS);
        String registered = Files.readString(SYSFS_DEV).strip();
        String node = major(rdev) + ":" + minor(rdev);
        assertEquals(registered, node,
                DEVICE + " has st_rdev " + node + " but the kernel registered vhost-net as " + registered);
        assertEquals(MISC_MAJOR, major(rdev), DEVICE + " is not a misc device (major " + major(rdev) + ")");
    }

    @Test
    void deviceOpensReadWriteAndCloses() throws IOException {
        assertCharacterDevice(DEVICE); // a regular file of that name would open too
        long before = openDescriptorsOn(DEVICE);
        // Opening /dev/vhost-net makes the kernel allocate a vhost_net device; closing frees it.
        try (FileChannel channel = FileChannel.open(DEVICE, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            assertTrue(channel.isOpen(), DEVICE + " did not stay open");
            assertEquals(before + 1, openDescriptorsOn(DEVICE),
                    "/proc/self/fd does not show the descriptor just opened on " + DEVICE);
        }
        assertEquals(before, openDescriptorsOn(DEVICE), "closing the channel left a descriptor on " + DEVICE);
    }

    private static void assertCharacterDevice(Path device) throws IOException {
        assertTrue(Files.exists(device, LinkOption.NOFOLLOW_LINKS),
                device + " does not exist: this kernel has no vhost-net (CONFIG_VHOST_NET unset"
                        + " or the vhost_net module not loaded)");
        assertTrue(FileSystems.getDefault().supportedFileAttributeViews().contains("unix"),
                "this JDK has no \"unix\" file attribute view to read st_mode and st_rdev");
        int mode = (Integer) Files.getAttribute(device, "unix:mode", LinkOption.NOFOLLOW_LINKS);
        assertEquals(S_IFCHR, mode & S_IFMT,
                device + " is not a character device: st_mode=0" + Integer.toOctalString(mode));
    }

    /** How many of this process's descriptors (/proc/self/fd) refer to {@code target}. */
    private static long openDescriptorsOn(Path target) throws IOException {
        try (Stream<Path> fds = Files.list(Path.of("/proc/self/fd"))) {
            return fds.filter(fd -> {
                try {
                    return Files.readSymbolicLink(fd).equals(target);
                } catch (IOException closedMeanwhile) { // e.g. the descriptor Files.list itself uses
                    return false;
                }
            }).count();
        }
    }

    /** gnu_dev_major from glibc's <sys/sysmacros.h>: the 64-bit dev_t split the kernel uses. */
    private static long major(long dev) {
        return ((dev >>> 8) & 0xfff) | ((dev >>> 32) & ~0xfffL);
    }

    /** gnu_dev_minor from glibc's <sys/sysmacros.h>. */
    private static long minor(long dev) {
        return (dev & 0xff) | ((dev >>> 12) & ~0xffL);
    }
}

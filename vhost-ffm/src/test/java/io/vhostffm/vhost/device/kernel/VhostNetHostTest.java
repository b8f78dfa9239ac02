package io.vhostffm.vhost.device.kernel;

import io.vhostffm.vhost.os.DescriptorClosedException;
import io.vhostffm.vhost.os.Errno;
import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.IoctlObserver;
import io.vhostffm.vhost.os.IoctlRequest;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.virtio.VirtioFeature;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * What of VhostNet can be checked without a vhost-net kernel: the error path and the ioctl
 * seam, on a node that refuses every vhost ioctl (/dev/null answers ENOTTY). The real device is
 * exercised by VhostNetKernelTest in the VM bench.
 */
class VhostNetHostTest {

    @Test
    void aFailedIoctlNamesTheRequestTheFileTheErrnoAndTheArguments() throws Exception {
        try (VhostNet vhost = VhostNet.open("/dev/null")) {
            NativeCallException e = assertThrows(NativeCallException.class, () -> vhost.setVringNum(1, 256));
            assertEquals("ioctl", e.call());
            assertEquals("VHOST_SET_VRING_NUM", e.request());
            assertEquals("ENOTTY", e.errnoSymbol());
            assertEquals("ioctl(VHOST_SET_VRING_NUM) on /dev/null (fd " + vhost.fd().number()
                    + ") [index 1, num 256]: ENOTTY (Inappropriate ioctl for device)", e.getMessage());

            NativeCallException owner = assertThrows(NativeCallException.class, vhost::setOwner);
            assertEquals("ioctl(VHOST_SET_OWNER) on /dev/null (fd " + vhost.fd().number()
                    + "): ENOTTY (Inappropriate ioctl for device)", owner.getMessage());

            NativeCallException addr = assertThrows(NativeCallException.class,
                    () -> vhost.setVringAddr(0, 0, 0x1000, 0x3000, 0x2000, 0));
            assertTrue(addr.getMessage().contains("[index 0, flags 0x0, desc 0x1000, used 0x3000, avail 0x2000, log 0x0]"),
                    addr.getMessage());
        }
    }

    @Test
    void absentDeviceSaysSo() {
        NativeCallException e = assertThrows(NativeCallException.class, () -> VhostNet.open("/nonexistent/vhost-net"));
        assertEquals("ENOENT", e.errnoSymbol());
    }

    @Test
    void everyIoctlPassesTheObserverWhichCanCountAndInject() throws Exception {
        try (VhostNet vhost = VhostNet.open("/dev/null"); EventFd kick = EventFd.create("eventfd kick")) {
            List<String> seen = new ArrayList<>();
            vhost.setObserver(new IoctlObserver() {
                @Override
                public void beforeIoctl(IoctlRequest request, MemorySegment argument) throws NativeCallException {
                    seen.add("before " + request);
                    if (request == IoctlRequest.VHOST_SET_VRING_KICK) {
                        assertEquals(kick.fd().number(), argument.get(ValueLayout.JAVA_INT, 4), "the argument as passed");
                        throw IoctlObserver.injectedFailure(request, vhost.fd(), Errno.number("EBUSY").orElseThrow());
                    }
                }

                @Override
                public void afterIoctl(IoctlRequest request, MemorySegment argument, int result, int errno) {
                    seen.add("after " + request + " " + result + " " + Errno.symbol(errno));
                }
            });
            assertThrows(NativeCallException.class, vhost::getFeatures);
            NativeCallException injected = assertThrows(NativeCallException.class, () -> vhost.setVringKick(0, kick.fd()));
            assertEquals("EBUSY", injected.errnoSymbol());
            assertTrue(injected.getMessage().contains("[injected by IoctlObserver]"), injected.getMessage());
            assertEquals(List.of("before VHOST_GET_FEATURES", "after VHOST_GET_FEATURES -1 ENOTTY",
                    "before VHOST_SET_VRING_KICK"), seen);

            vhost.setObserver(null);
            assertThrows(NativeCallException.class, vhost::getBackendFeatures);
            assertEquals(3, seen.size(), "no observer, no calls to it");
        }
    }

    @Test
    void ioctlNamesAreLookedUpFromTheirNumbers() {
        for (IoctlRequest r : IoctlRequest.values()) {
            assertSame(r, IoctlRequest.byNumber(r.number()));
        }
        assertEquals("VHOST_SET_VRING_NUM", IoctlRequest.nameOf(0x4008af10L));
        assertEquals("0x1234", IoctlRequest.nameOf(0x1234));
    }

    @Test
    void featuresDecodeByName() {
        long offered = 0x33d008000L; // what the bench kernel offers
        assertEquals(List.of("MRG_RXBUF", "NOTIFY_ON_EMPTY", "LOG_ALL", "ANY_LAYOUT", "INDIRECT_DESC", "EVENT_IDX",
                "VERSION_1", "ACCESS_PLATFORM"), VirtioFeature.names(offered));
        assertEquals("VIRTIO_F_RING_PACKED(34)", VirtioFeature.describe(VirtioFeature.RING_PACKED.mask()));
        assertEquals("VHOST_F_LOG_ALL(26)", VirtioFeature.describe(VirtioFeature.LOG_ALL.mask()));
        assertEquals("none", VirtioFeature.describe(0));
        assertEquals(List.of("bit 4"), VirtioFeature.names(1L << 4));
    }

    @Test
    void closedHandleRefusesCalls() throws Exception {
        VhostNet vhost = VhostNet.open("/dev/null");
        vhost.close();
        vhost.close();
        assertThrows(DescriptorClosedException.class, vhost::getFeatures);
        assertThrows(DescriptorClosedException.class, () -> vhost.setFeatures(1));
        assertThrows(DescriptorClosedException.class, () -> vhost.setVringNum(0, 256));
    }
}

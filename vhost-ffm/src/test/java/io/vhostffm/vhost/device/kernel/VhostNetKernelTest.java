package io.vhostffm.vhost.device.kernel;

import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.FileDescriptor;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.MemfdRegion;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.os.FdLinks;
import io.vhostffm.vhost.os.TapDevice;
import io.vhostffm.vhost.virtio.VirtioFeature;

import static java.lang.foreign.ValueLayout.JAVA_SHORT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.vhostffm.vhost.os.MemfdGuestMemory.RegionSpec;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import io.vhostffm.vhost.virtio.net.VirtioNetHeader;

/**
 * Against the real kernel vhost-net: needs /dev/vhost-net, so it runs in the VM of
 * bin/kernel-bench (or on any host where the device opens). Where the device is missing every
 * test FAILS, saying so: a kernel suite that passes without a kernel would prove nothing.
 *
 * <p>The sequence follows what drivers/vhost/vhost.c and net.c check: SET_OWNER before any
 * other state ioctl; NUM must be a power of two up to 32768; NUM and BASE are refused (EBUSY)
 * while a backend is bound; ADDR is checked for alignment only until a backend is bound;
 * NET_SET_BACKEND checks the ring addresses are accessible, then takes a tun/tap or raw
 * socket (anything else: ENOTSOCK), and reads used->idx from the ring.
 */
@Tag("kernel")
class VhostNetKernelTest {
    private static final int RING_SIZE = 256;
    /** Ring layout in guest memory: descriptor table, then avail, then used, each 4 KiB apart. */
    private static final long DESC_OFFSET = 0x0000;
    private static final long AVAIL_OFFSET = 0x1000;
    private static final long USED_OFFSET = 0x2000;
    /** Two regions with a hole: rx rings in the first, tx rings in the second. */
    private static final List<RegionSpec> TWO_REGIONS = List.of(
            new RegionSpec(0x0, 0x100000),
            new RegionSpec(0x100000000L, 0x100000));

    static VhostNet openVhostNet() throws NativeCallException {
        if (!Files.exists(Path.of(VhostNet.DEVICE))) {
            fail(VhostNet.DEVICE + " is absent: the kernel tests need a kernel with vhost-net;"
                    + " run them with bin/kernel-bench (a VM whose kernel has it)");
        }
        return VhostNet.open();
    }

    @Test
    void secondSetOwnerFailsWithEbusyNamingTheRequest() throws Exception {
        try (VhostNet vhost = openVhostNet()) {
            vhost.setOwner();
            NativeCallException e = assertThrows(NativeCallException.class, vhost::setOwner);
            assertEquals("VHOST_SET_OWNER", e.request());
            assertEquals("EBUSY", e.errnoSymbol());
            assertEquals("ioctl(VHOST_SET_OWNER) on /dev/vhost-net (fd " + vhost.fd().number()
                    + "): EBUSY (Device or resource busy)", e.getMessage());
        }
    }

    @Test
    void featuresAreDecodedByName() throws Exception {
        try (VhostNet vhost = openVhostNet()) {
            long offered = vhost.getFeatures();
            Set<VirtioFeature> named = VirtioFeature.decode(offered);
            System.out.println("vhost-net offers " + VirtioFeature.describe(offered));
            assertTrue(named.containsAll(EnumSet.of(VirtioFeature.VERSION_1, VirtioFeature.EVENT_IDX,
                    VirtioFeature.MRG_RXBUF, VirtioFeature.INDIRECT_DESC, VirtioFeature.LOG_ALL)), named.toString());
            assertFalse(named.contains(VirtioFeature.RING_PACKED), "kernel vhost-net has no packed rings");

            long backend = vhost.getBackendFeatures();
            assertTrue(VhostBackendFeature.decode(backend).contains(VhostBackendFeature.IOTLB_MSG_V2),
                    VhostBackendFeature.names(backend).toString());
            vhost.setOwner();
            vhost.setBackendFeatures(backend);
            vhost.setFeatures(offered & (VirtioFeature.VERSION_1.mask() | VirtioFeature.EVENT_IDX.mask()
                    | VirtioFeature.MRG_RXBUF.mask() | VirtioFeature.INDIRECT_DESC.mask()));
        }
    }

    @Test
    void programsBothQueuesBindsATapAndReadsTheBaseBack() throws Exception {
        Map<Integer, String> before = FdLinks.snapshot();
        // vhost is declared last so it is closed first, before the memory it points at goes away
        try (Arena logArena = Arena.ofConfined();
             MemfdGuestMemory memory = MemfdGuestMemory.create("kernel-test-ram", TWO_REGIONS);
             TapDevice tap = TapDevice.create("vffk%d", 1, TapDevice.VHOST_FLAGS);
             EventFd rxKick = EventFd.create("eventfd rx kick"); EventFd rxCall = EventFd.create("eventfd rx call");
             EventFd txKick = EventFd.create("eventfd tx kick"); EventFd txCall = EventFd.create("eventfd tx call");
             EventFd err = EventFd.create("eventfd vring err");
             EventFd logDone = EventFd.create("eventfd log");
             FileDescriptor devNull = FileDescriptor.openReadWrite("/dev/null");
             VhostNet vhost = openVhostNet()) {
            vhost.setOwner();
            long offered = vhost.getFeatures();
            long acked = offered & (VirtioFeature.VERSION_1.mask() | VirtioFeature.EVENT_IDX.mask()
                    | VirtioFeature.MRG_RXBUF.mask() | VirtioFeature.INDIRECT_DESC.mask());
            vhost.setFeatures(acked);
            vhost.setMemTable(memory);
            tap.setVnetHeaderSize(VirtioNetHeader.SIZE); // virtio_net_hdr_mrg_rxbuf, as VERSION_1 / MRG_RXBUF use

            // dirty logging as migration uses it: a bitmap with one bit per 4 KiB guest page up to
            // the end of the highest region, an eventfd, and LOG_ALL on while logging
            long guestEnd = TWO_REGIONS.get(1).guestAddress() + TWO_REGIONS.get(1).size();
            MemorySegment log = logArena.allocate((guestEnd / 4096 + 63) / 64 * 8, 8);
            vhost.setLogBase(log.address());
            vhost.setLogFd(logDone.fd());
            vhost.setFeatures(acked | VirtioFeature.LOG_ALL.mask());
            vhost.setFeatures(acked);
            vhost.setLogFd(null);

            int[] bases = {5, 77};
            EventFd[] kicks = {rxKick, txKick};
            EventFd[] calls = {rxCall, txCall};
            for (int q : new int[] {VhostNet.RX_QUEUE, VhostNet.TX_QUEUE}) {
                MemfdRegion region = memory.memfdRegions().get(q);
                long ring = region.userspaceAddress();
                // the guest's side as a restored guest leaves it: avail.idx and used.idx at the base,
                // so the kernel finds no new buffers once the backend is bound
                region.segment().set(JAVA_SHORT, AVAIL_OFFSET + 2, (short) bases[q]);
                region.segment().set(JAVA_SHORT, USED_OFFSET + 2, (short) bases[q]);

                vhost.setVringNum(q, RING_SIZE);
                vhost.setVringBase(q, bases[q]);
                vhost.setVringAddr(q, 0, ring + DESC_OFFSET, ring + USED_OFFSET, ring + AVAIL_OFFSET, 0);
                vhost.setVringKick(q, kicks[q].fd());
                vhost.setVringCall(q, calls[q].fd());
                vhost.setVringErr(q, err.fd());
                vhost.setVringBusyloopTimeout(q, 50);
                assertEquals(50, vhost.getVringBusyloopTimeout(q));
                vhost.setVringBusyloopTimeout(q, 0);
                assertEquals(bases[q], vhost.getVringBase(q), "GET_VRING_BASE answers what SET_VRING_BASE set");
            }

            NativeCallException notPowerOfTwo = assertThrows(NativeCallException.class,
                    () -> vhost.setVringNum(VhostNet.RX_QUEUE, 3));
            assertEquals("VHOST_SET_VRING_NUM", notPowerOfTwo.request());
            assertEquals("EINVAL", notPowerOfTwo.errnoSymbol());
            assertTrue(notPowerOfTwo.getMessage().contains("[index 0, num 3]: EINVAL (Invalid argument)"),
                    notPowerOfTwo.getMessage());

            NativeCallException notASocket = assertThrows(NativeCallException.class,
                    () -> vhost.setBackend(VhostNet.RX_QUEUE, devNull));
            assertEquals("VHOST_NET_SET_BACKEND", notASocket.request());
            assertEquals("ENOTSOCK", notASocket.errnoSymbol());

            for (int q : new int[] {VhostNet.RX_QUEUE, VhostNet.TX_QUEUE}) {
                vhost.setBackend(q, tap.queue(0));
            }
            NativeCallException busy = assertThrows(NativeCallException.class, () -> vhost.setVringBase(VhostNet.TX_QUEUE, 1));
            assertEquals("EBUSY", busy.errnoSymbol(), "BASE cannot move under a running ring");
            txKick.signal(); // the kernel looks at the tx ring, finds avail.idx == base: nothing to send

            for (int q : new int[] {VhostNet.RX_QUEUE, VhostNet.TX_QUEUE}) {
                vhost.clearBackend(q);
                assertEquals(bases[q], vhost.getVringBase(q), "stopped ring keeps its base");
            }
            assertEquals(0, err.consume(), "no ring error was reported");
            vhost.setVringNum(VhostNet.TX_QUEUE, RING_SIZE); // stopped: NUM is accepted again
        }
        assertEquals(before, FdLinks.snapshot(), "every descriptor closed");
    }

    @Test
    void resetOwnerLetsANewOwnerIn() throws Exception {
        try (VhostNet vhost = openVhostNet()) {
            vhost.setOwner();
            vhost.resetOwner();
            vhost.setOwner();
        }
    }

    /**
     * Closing a vhost-net fd waits for an RCU grace period in the kernel (vhost_net_release calls
     * synchronize_rcu), tens of milliseconds under the bench's emulated CPU: 10,000 closes in a
     * row took five minutes there. So each batch is closed from many threads at once, whose
     * waits share grace periods; it also exercises FileDescriptor's close from other threads.
     */
    @Test
    void tenThousandVhostNetDescriptorsOpenAndCloseWithoutLeak() throws Exception {
        openVhostNet().close();
        Map<Integer, String> before = FdLinks.snapshot();
        int batch = 250;
        ExecutorService closers = Executors.newFixedThreadPool(32);
        try {
            for (int done = 0; done < 10_000; done += batch) {
                List<Callable<Void>> closes = new ArrayList<>();
                for (int i = 0; i < batch; i++) {
                    VhostNet opened = VhostNet.open();
                    closes.add(() -> {
                        opened.close();
                        return null;
                    });
                }
                for (Future<Void> closed : closers.invokeAll(closes)) {
                    closed.get();
                }
            }
        } finally {
            closers.shutdownNow();
        }
        try (VhostNet owned = VhostNet.open()) {
            owned.setOwner();
        }
        assertEquals(before, FdLinks.snapshot());
    }
}

package io.vhostffm.vhost.virtio.net;

import io.vhostffm.vhost.virtio.VirtioFeature;

import static io.vhostffm.vhost.virtio.net.NetTestSupport.*;
import static org.junit.jupiter.api.Assertions.*;

import java.lang.foreign.MemoryLayout.PathElement;
import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.Test;

class ConfigSpaceTest {

    @Test
    void layoutHasTheSpecOffsets() {
        assertEquals(24, VirtioNetConfigSpace.SIZE);
        String[] names = {"mac", "status", "max_virtqueue_pairs", "mtu", "speed", "duplex", "rss_max_key_size",
            "rss_max_indirection_table_length", "supported_hash_types"};
        long[] offsets = {0, 6, 8, 10, 12, 16, 17, 18, 20};
        for (int i = 0; i < names.length; i++) {
            assertEquals(offsets[i], VirtioNetConfigSpace.LAYOUT.byteOffset(PathElement.groupElement(names[i])),
                    names[i]);
        }
    }

    @Test
    void bytesAreLittleEndianSpecFields() {
        VirtioNetOptions options = VirtioNetOptions.builder(DEVICE_MAC)
                .features(VirtioFeature.CTRL_VQ, VirtioFeature.MQ, VirtioFeature.RSS)
                .maxQueuePairs(8).mtu(9000).speed(10000, 1)
                .rssLimits(52, 256, RssState.HASH_TYPE_IPV4 | RssState.HASH_TYPE_TCPV6).build();
        VirtioNetDevice device = new VirtioNetDevice(options, USERSPACE, new RecordingListener());
        byte[] config = device.configSpace();
        assertEquals("525400123456" // mac
                + "0100"     // status LINK_UP
                + "0800"     // max_virtqueue_pairs 8
                + "2823"     // mtu 9000 = 0x2328
                + "10270000" // speed 10000 = 0x2710
                + "01"       // duplex full
                + "34"       // rss_max_key_size 52
                + "0001"     // rss_max_indirection_table_length 256
                + "11000000", // supported_hash_types 0x11
                HexFormat.of().formatHex(config));
        VirtioNetConfigSpace.Fields f = VirtioNetConfigSpace.decode(config);
        assertEquals(new VirtioNetConfigSpace.Fields(DEVICE_MAC, 1, 8, 9000, 10000, 1, 52, 256, 0x11), f);
    }

    @Test
    void driverReadsAnyRangeInsideAndNothingOutside() {
        VirtioNetDevice device = new VirtioNetDevice(options(VirtioFeature.VERSION_1.mask(), 3), KERNEL,
                new RecordingListener());
        assertArrayEquals(new byte[] {0x12, 0x34}, device.readConfig(3, 2));
        assertArrayEquals(new byte[] {3, 0}, device.readConfig(8, 2));
        assertEquals(0xff, device.readConfig(16, 1)[0] & 0xff, "duplex unknown by default");
        assertEquals(24, device.readConfig(0, 24).length);
        assertEquals(0, device.readConfig(24, 0).length);
        IndexOutOfBoundsException e = assertThrows(IndexOutOfBoundsException.class, () -> device.readConfig(22, 4));
        assertTrue(e.getMessage().contains("4 bytes at offset 22"), e.getMessage());
        assertThrows(IndexOutOfBoundsException.class, () -> device.readConfig(-1, 1));
        assertThrows(IndexOutOfBoundsException.class, () -> device.readConfig(Integer.MAX_VALUE, 2));
    }

    @Test
    void linkChangesShowAndNotifyOnlyARunningDriver() {
        RecordingListener listener = new RecordingListener();
        VirtioNetDevice idle = new VirtioNetDevice(options(NetTestSupport.ALL_CONTROL, 1), USERSPACE, listener);
        idle.setLinkUp(false);
        assertEquals(0, idle.readConfig(6, 1)[0]);
        assertTrue(listener.calls.isEmpty());
        RecordingListener runningListener = new RecordingListener();
        VirtioNetDevice device = running(runningListener);
        runningListener.calls.clear();
        device.setLinkUp(false);
        device.setLinkUp(false); // no change, no notification
        device.setLinkUp(true);
        assertEquals(List.of("configChanged", "configChanged"), runningListener.calls);
        assertEquals(VirtioNetConfigSpace.S_LINK_UP, device.readConfig(6, 1)[0]);
        // The link survives a reset (it is the host's), an announcement does not.
        assertTrue(device.requestAnnounce());
        assertEquals(VirtioNetConfigSpace.S_LINK_UP | VirtioNetConfigSpace.S_ANNOUNCE, device.netState().netStatus());
        device.writeStatus(0);
        assertEquals(VirtioNetConfigSpace.S_LINK_UP, device.netState().netStatus());
        device.setLinkUp(false);
        device.writeStatus(0);
        assertEquals(0, device.netState().netStatus());
    }

    @Test
    void optionsAreCheckedAgainstTheSpec() {
        assertThrows(IllegalArgumentException.class, () -> VirtioNetOptions.builder(new byte[5]).build());
        assertThrows(IllegalArgumentException.class, () -> VirtioNetOptions.builder(DEVICE_MAC).maxQueuePairs(0).build());
        assertThrows(IllegalArgumentException.class,
                () -> VirtioNetOptions.builder(DEVICE_MAC).maxQueuePairs(0x8001).build());
        assertThrows(IllegalArgumentException.class, () -> VirtioNetOptions.builder(DEVICE_MAC).mtu(67).build());
        assertThrows(IllegalArgumentException.class, () -> VirtioNetOptions.builder(DEVICE_MAC).speed(100, 2).build());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> VirtioNetOptions.builder(DEVICE_MAC)
                .features(VirtioFeature.CTRL_VQ, VirtioFeature.RSS).rssLimits(39, 128, 1).build());
        assertTrue(e.getMessage().contains("rssMaxKeySize = 39"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> VirtioNetOptions.builder(DEVICE_MAC)
                .features(VirtioFeature.CTRL_VQ, VirtioFeature.RSS).rssLimits(40, 64, 1).build());
        assertThrows(IllegalArgumentException.class,
                () -> VirtioNetOptions.builder(DEVICE_MAC).rssLimits(40, 100, 1).build(), "not a power of two");
        assertThrows(IllegalArgumentException.class,
                () -> VirtioNetOptions.builder(DEVICE_MAC).rssLimits(40, 128, 0x200).build());
    }
}

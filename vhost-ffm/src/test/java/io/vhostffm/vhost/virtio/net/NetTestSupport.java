package io.vhostffm.vhost.virtio.net;

import io.vhostffm.vhost.device.BackendCapabilities;
import io.vhostffm.vhost.virtio.DeviceStatus;

import io.vhostffm.vhost.virtio.VirtioFeature;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/** The fake driver side for device-model tests: commands as guest-memory segments, a recording backend. */
final class NetTestSupport {
    static final byte[] DEVICE_MAC = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

    /** Kernel vhost-net as the VM bench saw it: 0x33d008000 (no RING_PACKED), plus TAP offloads. */
    static final long KERNEL_VHOST_FEATURES = 0x33d008000L;
    static final long TAP_OFFLOADS = VirtioFeature.maskOf(VirtioFeature.CSUM, VirtioFeature.GUEST_CSUM,
            VirtioFeature.GUEST_TSO4, VirtioFeature.GUEST_TSO6, VirtioFeature.GUEST_ECN,
            VirtioFeature.GUEST_UFO, VirtioFeature.HOST_TSO4, VirtioFeature.HOST_TSO6,
            VirtioFeature.HOST_ECN, VirtioFeature.HOST_UFO);
    static final BackendCapabilities KERNEL =
            BackendCapabilities.of("kernel vhost-net", KERNEL_VHOST_FEATURES | TAP_OFFLOADS);
    static final BackendCapabilities USERSPACE = BackendCapabilities.of("userspace", VirtioFeature.knownMask());

    private NetTestSupport() {}

    /** Every control-plane feature, RSS and hash report, guest offloads: what the tests negotiate. */
    static final long ALL_CONTROL = VirtioFeature.maskOf(VirtioFeature.VERSION_1, VirtioFeature.MAC,
            VirtioFeature.STATUS, VirtioFeature.MTU, VirtioFeature.CTRL_VQ, VirtioFeature.CTRL_RX,
            VirtioFeature.CTRL_RX_EXTRA, VirtioFeature.CTRL_VLAN, VirtioFeature.GUEST_ANNOUNCE,
            VirtioFeature.MQ, VirtioFeature.CTRL_MAC_ADDR, VirtioFeature.CTRL_GUEST_OFFLOADS,
            VirtioFeature.RSS, VirtioFeature.HASH_REPORT, VirtioFeature.GUEST_CSUM,
            VirtioFeature.GUEST_TSO4, VirtioFeature.GUEST_TSO6, VirtioFeature.GUEST_ECN,
            VirtioFeature.GUEST_UFO, VirtioFeature.MRG_RXBUF, VirtioFeature.EVENT_IDX);

    static VirtioNetOptions options(long features, int maxPairs) {
        return VirtioNetOptions.builder(DEVICE_MAC).featureBits(features).maxQueuePairs(maxPairs).build();
    }

    /** A device on the userspace backend, driven to DRIVER_OK with {@code acked}. */
    static VirtioNetDevice running(long offered, long acked, int maxPairs, NetDeviceListener listener) {
        VirtioNetDevice device = new VirtioNetDevice(options(offered, maxPairs), USERSPACE, listener);
        device.writeStatus(DeviceStatus.ACKNOWLEDGE);
        device.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
        device.writeDriverFeatures(acked);
        int ok = DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK;
        assertEquals(ok, device.writeStatus(ok), () -> "FEATURES_OK refused: " + device.lastError());
        device.writeStatus(ok | DeviceStatus.DRIVER_OK);
        return device;
    }

    static VirtioNetDevice running(RecordingListener listener) {
        return running(ALL_CONTROL, ALL_CONTROL, 4, listener);
    }

    /** Little-endian command bytes. */
    static final class Cmd {
        private final ByteBuffer buf = ByteBuffer.allocate(4096).order(ByteOrder.LITTLE_ENDIAN);

        Cmd(int ctrlClass, int command) {
            buf.put((byte) ctrlClass).put((byte) command);
        }

        Cmd u8(int v) {
            buf.put((byte) v);
            return this;
        }

        Cmd le16(int v) {
            buf.putShort((short) v);
            return this;
        }

        Cmd le32(long v) {
            buf.putInt((int) v);
            return this;
        }

        Cmd le64(long v) {
            buf.putLong(v);
            return this;
        }

        Cmd bytes(byte[] b) {
            buf.put(b);
            return this;
        }

        byte[] toArray() {
            return Arrays.copyOf(buf.array(), buf.position());
        }

        /** The bytes in off-heap segments, as guest memory would hand them, split at {@code cuts}. */
        List<MemorySegment> segments(int... cuts) {
            return split(toArray(), cuts);
        }
    }

    static List<MemorySegment> split(byte[] bytes, int... cuts) {
        Arena arena = Arena.ofAuto();
        List<MemorySegment> out = new ArrayList<>();
        int from = 0;
        for (int cut : cuts) {
            out.add(copy(arena, bytes, from, cut));
            from = cut;
        }
        out.add(copy(arena, bytes, from, bytes.length));
        return out;
    }

    private static MemorySegment copy(Arena arena, byte[] bytes, int from, int to) {
        MemorySegment s = arena.allocate(Math.max(1, to - from)).asSlice(0, to - from);
        MemorySegment.copy(bytes, from, s, ValueLayout.JAVA_BYTE, 0, to - from);
        return s;
    }

    static byte[] macs(int count, int firstByte) {
        byte[] out = new byte[count * 6];
        for (int i = 0; i < count; i++) {
            out[i * 6] = (byte) firstByte;
            out[i * 6 + 4] = (byte) (i >> 8);
            out[i * 6 + 5] = (byte) i;
        }
        return out;
    }

    /** A backend that records what it is told and can be made to refuse. */
    static final class RecordingListener implements NetDeviceListener {
        final List<String> calls = new ArrayList<>();
        RxFilter filter;
        long offloads = -1;
        int tunFlags = -1;
        int pairs = -1;
        RssState rss;
        String refuse; // the call name to fail with IOException

        private void maybeRefuse(String call) throws IOException {
            if (call.equals(refuse)) {
                throw new IOException("injected failure in " + call);
            }
        }

        @Override
        public void guestOffloadsChanged(long guestOffloads, int tunOffloadFlags) throws IOException {
            calls.add("guestOffloadsChanged");
            maybeRefuse("guestOffloadsChanged");
            offloads = guestOffloads;
            tunFlags = tunOffloadFlags;
        }

        @Override
        public void queuePairsChanged(int activePairs) throws IOException {
            calls.add("queuePairsChanged");
            maybeRefuse("queuePairsChanged");
            pairs = activePairs;
        }

        @Override
        public void rxFilterChanged(RxFilter f) throws IOException {
            calls.add("rxFilterChanged");
            maybeRefuse("rxFilterChanged");
            filter = f;
        }

        @Override
        public void rssChanged(RssState r) throws IOException {
            calls.add("rssChanged");
            maybeRefuse("rssChanged");
            rss = r;
        }

        @Override
        public void configChanged() {
            calls.add("configChanged");
        }

        @Override
        public void driverOk(NetDeviceState state) throws IOException {
            calls.add("driverOk");
            maybeRefuse("driverOk");
        }

        @Override
        public void reset() {
            calls.add("reset");
        }

        @Override
        public void needsReset(String reason) {
            calls.add("needsReset");
        }
    }
}

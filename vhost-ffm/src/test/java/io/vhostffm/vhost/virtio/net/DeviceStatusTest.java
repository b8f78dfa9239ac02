package io.vhostffm.vhost.virtio.net;

import io.vhostffm.vhost.virtio.DeviceStatus;

import io.vhostffm.vhost.virtio.VirtioFeature;

import static io.vhostffm.vhost.virtio.DeviceStatus.*;
import static io.vhostffm.vhost.virtio.net.NetTestSupport.*;
import static org.junit.jupiter.api.Assertions.*;

import java.util.List;
import org.junit.jupiter.api.Test;
import io.vhostffm.vhost.os.TunOffload;

class DeviceStatusTest {
    private final RecordingListener listener = new RecordingListener();
    private final VirtioNetDevice device = new VirtioNetDevice(options(ALL_CONTROL, 4), USERSPACE, listener);

    private void toFeaturesOk() {
        device.writeStatus(ACKNOWLEDGE);
        device.writeStatus(ACKNOWLEDGE | DRIVER);
        device.writeDriverFeatures(ALL_CONTROL);
        assertEquals(ACKNOWLEDGE | DRIVER | FEATURES_OK, device.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK));
    }

    @Test
    void normalInitializationSequence() {
        assertEquals(0, device.status());
        toFeaturesOk();
        assertEquals(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK,
                device.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK));
        assertTrue(listener.calls.contains("driverOk"));
        assertEquals("ACKNOWLEDGE|DRIVER|FEATURES_OK|DRIVER_OK", DeviceStatus.describe(device.status()));
    }

    @Test
    void bitsMustComeInOrder() {
        assertEquals(0, device.writeStatus(DRIVER));
        assertTrue(device.lastError().orElseThrow().contains("DRIVER needs ACKNOWLEDGE"));
        device.writeStatus(ACKNOWLEDGE);
        assertEquals(ACKNOWLEDGE, device.writeStatus(ACKNOWLEDGE | FEATURES_OK));
        assertTrue(device.lastError().orElseThrow().contains("FEATURES_OK needs DRIVER"));
        device.writeStatus(ACKNOWLEDGE | DRIVER);
        assertEquals(ACKNOWLEDGE | DRIVER, device.writeStatus(ACKNOWLEDGE | DRIVER | DRIVER_OK));
        assertTrue(device.lastError().orElseThrow().contains("DRIVER_OK needs FEATURES_OK"));
        assertFalse(listener.calls.contains("driverOk"));
    }

    @Test
    void driverMayNotClearBitsOrSetUnknownOnes() {
        toFeaturesOk();
        assertEquals(ACKNOWLEDGE | DRIVER | FEATURES_OK, device.writeStatus(ACKNOWLEDGE | DRIVER));
        assertTrue(device.lastError().orElseThrow().contains("clears FEATURES_OK"));
        assertEquals(ACKNOWLEDGE | DRIVER | FEATURES_OK, device.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK | 16));
        assertTrue(device.lastError().orElseThrow().contains("not defined"));
    }

    @Test
    void resetClearsEverythingButTheLink() {
        RecordingListener l = new RecordingListener();
        VirtioNetDevice d = running(l);
        d.handleControl(new Cmd(VirtioNetCtrl.CLASS_RX, VirtioNetCtrl.RX_PROMISC).u8(0).segments());
        d.handleControl(new Cmd(VirtioNetCtrl.CLASS_MQ, VirtioNetCtrl.MQ_VQ_PAIRS_SET).le16(3).segments());
        assertEquals(3, d.netState().queuePairs());
        assertEquals(0, d.writeStatus(0));
        assertTrue(l.calls.contains("reset"));
        assertEquals(0, d.driverFeatures());
        assertEquals(1, d.netState().queuePairs());
        assertEquals(RxModeState.AFTER_RESET, d.netState().rxMode());
        assertEquals(VirtioNetConfigSpace.S_LINK_UP, d.netState().netStatus());
        // After a reset the same features negotiate again.
        d.writeStatus(ACKNOWLEDGE | DRIVER);
        d.writeDriverFeatures(ALL_CONTROL);
        assertEquals(ACKNOWLEDGE | DRIVER | FEATURES_OK, d.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK));
    }

    @Test
    void badGuestInputSetsNeedsResetAndNotifiesARunningDriver() {
        toFeaturesOk();
        device.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
        listener.calls.clear();
        device.reportBadGuestInput("queue 0: descriptor 3 address 0xdead0000 outside guest memory");
        assertEquals(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK | DEVICE_NEEDS_RESET, device.status());
        assertEquals(List.of("needsReset", "configChanged"), listener.calls);
        assertTrue(device.lastError().orElseThrow().contains("descriptor 3"));
        // The driver cannot clear NEEDS_RESET by writing status without it, nor set it itself.
        assertEquals(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK | DEVICE_NEEDS_RESET,
                device.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK));
        // Control commands are refused while the device needs a reset.
        assertFalse(device.handleControl(
                new Cmd(VirtioNetCtrl.CLASS_RX, VirtioNetCtrl.RX_PROMISC).u8(1).segments()).isOk());
        // Only a reset clears it.
        assertEquals(0, device.writeStatus(0));
        toFeaturesOk();
    }

    @Test
    void driverCannotSetNeedsReset() {
        device.writeStatus(ACKNOWLEDGE | DEVICE_NEEDS_RESET);
        assertEquals(ACKNOWLEDGE, device.status());
    }

    @Test
    void needsResetBeforeDriverOkSendsNoConfigNotification() {
        toFeaturesOk();
        listener.calls.clear();
        device.reportBadGuestInput("bad");
        assertEquals(List.of("needsReset"), listener.calls);
    }

    @Test
    void failedAllowsOnlyAReset() {
        device.writeStatus(ACKNOWLEDGE);
        assertEquals(ACKNOWLEDGE | FAILED, device.writeStatus(ACKNOWLEDGE | FAILED));
        assertEquals(ACKNOWLEDGE | FAILED, device.writeStatus(ACKNOWLEDGE | DRIVER | FAILED));
        assertTrue(device.lastError().orElseThrow().contains("FAILED is set"));
        assertFalse(device.writeDriverFeatures(ALL_CONTROL));
        assertEquals(0, device.writeStatus(0));
    }

    @Test
    void backendFailingToStartPutsDeviceInNeedsReset() {
        listener.refuse = "driverOk";
        toFeaturesOk();
        int status = device.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
        assertEquals(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK | DEVICE_NEEDS_RESET, status);
        assertTrue(device.lastError().orElseThrow().contains("injected failure in driverOk"));
    }

    @Test
    void backendRefusingOffloadsRefusesFeaturesOk() {
        listener.refuse = "guestOffloadsChanged";
        device.writeStatus(ACKNOWLEDGE | DRIVER);
        device.writeDriverFeatures(ALL_CONTROL);
        assertEquals(ACKNOWLEDGE | DRIVER, device.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK));
        assertTrue(device.lastError().orElseThrow().contains("backend refused"));
    }

    @Test
    void featuresOkSetsUpTheNegotiatedState() {
        toFeaturesOk();
        VirtioNetState net = device.netState();
        assertTrue(net.multiqueue());
        assertTrue(net.rss().populateHash());
        assertEquals(ALL_CONTROL & FeatureNegotiation.GUEST_OFFLOAD_FEATURES, net.guestOffloads());
        assertEquals(TunOffload.CSUM.value() | TunOffload.TSO4.value() | TunOffload.TSO6.value()
                | TunOffload.TSO_ECN.value() | TunOffload.UFO.value(), listener.tunFlags);
        // CTRL_VLAN negotiated: the table starts empty; without it every VLAN passes.
        assertFalse(net.vlanAllowed(5));
        VirtioNetDevice plain = running(VirtioFeature.VERSION_1.mask(), VirtioFeature.VERSION_1.mask(), 1,
                new RecordingListener());
        assertTrue(plain.netState().vlanAllowed(5));
        assertFalse(plain.netState().multiqueue());
    }

    @Test
    void aDeviceNeedingResetDoesNotStartItsDatapath() {
        toFeaturesOk();
        device.reportBadGuestInput("bad chain on queue 1");
        int status = device.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
        assertEquals(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK | DEVICE_NEEDS_RESET, status);
        assertFalse(listener.calls.contains("driverOk"));
    }

    @Test
    void observersHearStatusChangesOnly() {
        int[] count = {0};
        device.addChangeObserver(() -> count[0]++);
        device.writeStatus(ACKNOWLEDGE);
        device.writeStatus(ACKNOWLEDGE); // no change
        device.writeStatus(DRIVER_OK); // refused
        assertEquals(1, count[0]);
    }
}

package io.vhostffm.vhost.virtio.net;

import io.vhostffm.vhost.device.BackendCapabilities;
import io.vhostffm.vhost.virtio.DeviceStatus;

import io.vhostffm.vhost.virtio.VirtioFeature;

import static io.vhostffm.vhost.virtio.DeviceStatus.*;

import io.vhostffm.vhost.internal.RateLimitedWarnings;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.Arrays;

/**
 * The virtio-net device model both backends share: feature negotiation, the device status state
 * machine, the config space, the control queue, and the state migration carries. It owns no
 * queue and makes no native call; effects on a datapath go to a {@link NetDeviceListener}.
 *
 * <p>A driver's session, as a transport calls it:
 *
 * <pre>{@code
 * var device = new VirtioNetDevice(options, backend.capabilities(), backend);
 * device.writeStatus(ACKNOWLEDGE);
 * device.writeStatus(ACKNOWLEDGE | DRIVER);
 * device.writeDriverFeatures(device.deviceFeatures() & whatTheDriverKnows);
 * device.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK);   // refused if the features are not valid
 * if ((device.status() & FEATURES_OK) != 0) device.writeStatus(... | DRIVER_OK);
 * byte ack = device.handleControl(chainReadableSegments).ackByte();
 * }</pre>
 *
 * <p>Guest-facing methods never throw for bad guest input: a rejected status or feature write
 * leaves the status unchanged (readable through {@link #lastError()}), a bad control command gets
 * VIRTIO_NET_ERR. Methods are synchronized: vCPU threads and the control queue's handler may call
 * concurrently; the datapath reads {@link #rxFilter()} without a lock.
 */
public final class VirtioNetDevice {
    private static final System.Logger LOG = System.getLogger(VirtioNetDevice.class.getName());

    /**
     * Warnings a guest can cause as often as it resets the device (DEVICE_NEEDS_RESET, FAILED set
     * by the driver): rate-limited per device.
     */
    private final RateLimitedWarnings guestWarnings = new RateLimitedWarnings(LOG);

    private final VirtioNetOptions options;
    private final BackendCapabilities backend;
    private final FeatureNegotiation.Offer offer;
    private final NetDeviceListener listener;
    private final ControlCommandHandler control;
    private final StateValidator validator;
    private final List<Runnable> observers = new CopyOnWriteArrayList<>();

    private int status;
    private long driverFeatures;
    private VirtioNetState net;
    private volatile RxFilter rxFilter;
    private String lastError;
    /** Why DEVICE_NEEDS_RESET was entered: the first reason, kept until a reset or restore. */
    private String needsResetReason;

    /**
     * A device in reset state with the link up.
     *
     * @throws FeatureNegotiationException when the requested features cannot be offered on this
     *     backend, e.g. RING_PACKED on kernel vhost-net
     */
    public VirtioNetDevice(VirtioNetOptions options, BackendCapabilities backend, NetDeviceListener listener) {
        this.options = Objects.requireNonNull(options, "options");
        this.backend = Objects.requireNonNull(backend, "backend");
        this.listener = Objects.requireNonNull(listener, "listener");
        this.offer = FeatureNegotiation.offer(options.requestedFeatures(), backend);
        if (offer.dropped() != 0) {
            LOG.log(Level.INFO, "virtio-net: backend ''{0}'' lacks {1}; not offered", backend.name(),
                    VirtioFeature.describe(offer.dropped()));
        }
        this.control = new ControlCommandHandler(options);
        this.validator = new StateValidator(options, offer.offered(), backend.name());
        this.net = resetNetState(VirtioNetConfigSpace.S_LINK_UP);
        this.rxFilter = new RxFilter(net);
    }

    private VirtioNetState resetNetState(int linkStatus) {
        return new VirtioNetState(options.mac(), MacTableState.EMPTY, linkStatus & VirtioNetConfigSpace.S_LINK_UP,
                RxModeState.AFTER_RESET, new long[VirtioNetState.VLAN_WORDS], 0, false, 1, RssState.disabled(false));
    }

    /** The options the device was built with. */
    public VirtioNetOptions options() {
        return options;
    }

    /** The backend capabilities the offer was computed against. */
    public BackendCapabilities backend() {
        return backend;
    }

    // ---- features ----

    /** The features the device offers: requested, limited to the backend. */
    public long deviceFeatures() {
        return offer.offered();
    }

    /** Bits 32*select .. 32*select+31 of the offered features (0 beyond bit 63), as a transport reads them. */
    public int deviceFeatures(int select) {
        return select == 0 || select == 1 ? (int) (offer.offered() >>> (32 * select)) : 0;
    }

    /** Requested features the backend could not carry. */
    public long droppedFeatures() {
        return offer.dropped();
    }

    /** The features the driver has written (accepted for good once FEATURES_OK is set). */
    public synchronized long driverFeatures() {
        return driverFeatures;
    }

    /**
     * The driver writes the features it accepts. Checked only when it sets FEATURES_OK (virtio
     * 2.2); refused, and false returned, once FEATURES_OK is set or after FAILED.
     */
    public synchronized boolean writeDriverFeatures(long features) {
        if ((status & (FEATURES_OK | FAILED)) != 0) {
            reject("driver feature write " + VirtioFeature.describe(features) + " refused: status is "
                    + DeviceStatus.describe(status));
            return false;
        }
        driverFeatures = features;
        return true;
    }

    /** A transport's 32-bit write of feature word {@code select} (0 or 1). */
    public synchronized boolean writeDriverFeatures(int select, int value) {
        if (select != 0 && select != 1) {
            reject("driver feature write to word " + select + " refused: only words 0 and 1 exist");
            return false;
        }
        long shift = 32L * select;
        long updated = driverFeatures & ~(0xffff_ffffL << shift) | (Integer.toUnsignedLong(value) << shift);
        return writeDriverFeatures(updated);
    }

    // ---- status ----

    /** The device status byte. */
    public synchronized int status() {
        return status;
    }

    /**
     * The driver writes the status byte (virtio 2.1). Zero resets the device. Otherwise the
     * driver may only add bits, in order (ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK; FAILED at
     * any time), never clear one; DEVICE_NEEDS_RESET belongs to the device and is kept as it is.
     * FEATURES_OK is refused (left clear, as the spec asks) when the driver's features are not
     * valid. A write breaking these rules leaves the status unchanged.
     *
     * @return the status after the write
     */
    public synchronized int writeStatus(int value) {
        if (value == 0) {
            reset();
            return status;
        }
        if ((value & ~ALL_BITS) != 0) {
            return reject(String.format("status write 0x%x refused: bits 0x%x are not defined", value,
                    value & ~ALL_BITS));
        }
        int current = status & ~DEVICE_NEEDS_RESET;
        int wanted = value & ~DEVICE_NEEDS_RESET;
        if ((current & ~wanted) != 0) {
            return reject("status write " + DeviceStatus.describe(value) + " refused: it clears "
                    + DeviceStatus.describe(current & ~wanted) + "; only a reset (0) clears bits");
        }
        if ((current & FAILED) != 0 && wanted != current) {
            return reject("status write " + DeviceStatus.describe(value) + " refused: FAILED is set; reset first");
        }
        String order = orderViolation(wanted);
        if (order != null) {
            return reject("status write " + DeviceStatus.describe(value) + " refused: " + order);
        }
        int added = wanted & ~current;
        if ((added & FEATURES_OK) != 0 && !acceptFeatures()) {
            wanted &= ~(FEATURES_OK | DRIVER_OK);
            added &= ~(FEATURES_OK | DRIVER_OK);
        }
        int before = status;
        status = wanted | (status & DEVICE_NEEDS_RESET);
        // A device that already needs a reset does not start its datapath; the driver must reset.
        if ((added & DRIVER_OK) != 0 && (status & DEVICE_NEEDS_RESET) == 0) {
            try {
                listener.driverOk(snapshot());
            } catch (IOException | RuntimeException e) {
                enterNeedsReset("backend failed to start: " + e);
            }
        }
        if ((added & FAILED) != 0) {
            guestWarnings.warn("virtio-net: the driver set FAILED");
        }
        if (status != before) {
            changed();
        }
        return status;
    }

    private static String orderViolation(int bits) {
        if ((bits & DRIVER) != 0 && (bits & ACKNOWLEDGE) == 0) return "DRIVER needs ACKNOWLEDGE";
        if ((bits & FEATURES_OK) != 0 && (bits & DRIVER) == 0) return "FEATURES_OK needs DRIVER";
        if ((bits & DRIVER_OK) != 0 && (bits & FEATURES_OK) == 0) return "DRIVER_OK needs FEATURES_OK";
        return null;
    }

    /** FEATURES_OK: check the driver's features and set up what they decide; false if refused. */
    private boolean acceptFeatures() {
        Optional<String> invalid = FeatureNegotiation.checkDriverFeatures(offer.offered(), driverFeatures);
        if (invalid.isPresent()) {
            reject("FEATURES_OK refused: " + invalid.get());
            return false;
        }
        long acked = driverFeatures;
        // As QEMU: without CTRL_VLAN every VLAN passes; with it the driver adds the ones it wants.
        long[] vlans = new long[VirtioNetState.VLAN_WORDS];
        if (!VirtioFeature.CTRL_VLAN.in(acked)) {
            Arrays.fill(vlans, -1L);
        }
        boolean multiqueue = VirtioFeature.MQ.in(acked) || VirtioFeature.RSS.in(acked);
        VirtioNetState next = net.withVlanTable(vlans)
                .withGuestOffloads(acked & FeatureNegotiation.GUEST_OFFLOAD_FEATURES)
                .withQueues(multiqueue, 1)
                .withRss(RssState.disabled(VirtioFeature.HASH_REPORT.in(acked)));
        String failure = commit(next);
        if (failure != null) {
            reject("FEATURES_OK refused: " + failure);
            return false;
        }
        return true;
    }

    private void reset() {
        status = 0;
        needsResetReason = null;
        driverFeatures = 0;
        net = resetNetState(net.netStatus());
        rxFilter = new RxFilter(net);
        try {
            listener.reset();
        } catch (RuntimeException e) {
            LOG.log(Level.WARNING, "virtio-net: backend failed on reset", e);
        }
        changed();
    }

    /**
     * The datapath met bad guest input (a descriptor outside guest memory, a malformed chain):
     * the device goes to DEVICE_NEEDS_RESET, the backend is told to stop, and a driver past
     * DRIVER_OK gets a configuration change notification (virtio 2.1.2).
     */
    public synchronized void reportBadGuestInput(String reason) {
        enterNeedsReset(reason);
        changed();
    }

    private void enterNeedsReset(String reason) {
        lastError = "DEVICE_NEEDS_RESET: " + reason;
        guestWarnings.warn("virtio-net: " + lastError);
        if ((status & DEVICE_NEEDS_RESET) != 0) {
            return;
        }
        status |= DEVICE_NEEDS_RESET;
        needsResetReason = reason;
        try {
            listener.needsReset(reason);
        } catch (RuntimeException e) {
            LOG.log(Level.WARNING, "virtio-net: backend failed on needsReset", e);
        }
        if ((status & DRIVER_OK) != 0) {
            listener.configChanged();
        }
    }

    private int reject(String why) {
        lastError = why;
        LOG.log(Level.DEBUG, "virtio-net: {0}", why);
        try {
            listener.refused(why);
        } catch (RuntimeException e) {
            LOG.log(Level.WARNING, "virtio-net: listener failed on a refusal", e);
        }
        return status;
    }

    /**
     * A transport access the caller refused (a queue register write after DRIVER_OK, say):
     * recorded as {@link #lastError()} and told to the listener, as the device's own refusals are.
     */
    public synchronized void reportRefusal(String why) {
        reject(Objects.requireNonNull(why, "why"));
    }

    /** The last refused driver action or error, for logs and tests. */
    public synchronized Optional<String> lastError() {
        return Optional.ofNullable(lastError);
    }

    /**
     * Why the device is in DEVICE_NEEDS_RESET: the reason it entered it (the first, e.g. the
     * queue, index, address and rule of the bad guest input), which {@link #lastError()} no longer
     * shows once the driver did something else that was refused. Empty when not in that state.
     */
    public synchronized Optional<String> needsResetReason() {
        return Optional.ofNullable((status & DEVICE_NEEDS_RESET) != 0 ? needsResetReason : null);
    }

    // ---- config space ----

    /** The config space as the driver sees it now. */
    public synchronized byte[] configSpace() {
        return VirtioNetConfigSpace.encode(options, net.mac(), net.netStatus());
    }

    /**
     * The driver reads {@code length} bytes of config space at {@code offset}.
     *
     * @throws IndexOutOfBoundsException naming offset and length when outside the 24 bytes
     */
    public synchronized byte[] readConfig(int offset, int length) {
        return VirtioNetConfigSpace.read(configSpace(), offset, length);
    }

    /** The host sets the link up or down; a running driver is told (VIRTIO_NET_S_LINK_UP). */
    public synchronized void setLinkUp(boolean up) {
        int next = up ? net.netStatus() | VirtioNetConfigSpace.S_LINK_UP
                : net.netStatus() & ~VirtioNetConfigSpace.S_LINK_UP;
        if (next != net.netStatus()) {
            net = net.withNetStatus(next);
            notifyConfigIfRunning();
            changed();
        }
    }

    /**
     * The host asks the guest to announce itself (after migration): sets VIRTIO_NET_S_ANNOUNCE
     * and notifies the driver. Returns false, changing nothing, when GUEST_ANNOUNCE was not
     * negotiated or the driver is not running; the host then announces for the guest itself.
     */
    public synchronized boolean requestAnnounce() {
        if (!VirtioFeature.GUEST_ANNOUNCE.in(driverFeatures) || (status & FEATURES_OK) == 0
                || (status & DRIVER_OK) == 0) {
            return false;
        }
        net = net.withNetStatus(net.netStatus() | VirtioNetConfigSpace.S_ANNOUNCE);
        listener.configChanged();
        changed();
        return true;
    }

    private void notifyConfigIfRunning() {
        if ((status & DRIVER_OK) != 0) {
            listener.configChanged();
        }
    }

    // ---- control queue ----

    /**
     * Carries out one control command: {@code readable} are the device-readable buffers of the
     * chain (class, command, data), in order. The caller writes {@link ControlAck#ackByte()} into
     * the chain's device-writable byte. Never throws: anything wrong becomes VIRTIO_NET_ERR with
     * the reason in the answer (and in {@link #lastError()}).
     */
    public synchronized ControlAck handleControl(List<MemorySegment> readable) {
        ControlAck ack;
        try {
            ack = handleControlChecked(readable);
        } catch (RuntimeException e) {
            // A segment that is no longer alive, say; the guest gets ERR and the device goes on.
            ack = ControlAck.err("control command", "unexpected failure: " + e);
        }
        if (!ack.isOk()) {
            lastError = ack.command() + ": " + ack.reason();
            LOG.log(Level.DEBUG, "virtio-net: control command refused: {0}", lastError);
        }
        return ack;
    }

    private ControlAck handleControlChecked(List<MemorySegment> readable) {
        if (!VirtioFeature.CTRL_VQ.in(driverFeatures) || (status & FEATURES_OK) == 0) {
            return ControlAck.err("control command", "VIRTIO_NET_F_CTRL_VQ was not negotiated");
        }
        if ((status & DRIVER_OK) == 0 || (status & (DEVICE_NEEDS_RESET | FAILED)) != 0) {
            return ControlAck.err("control command", "device not running: status " + DeviceStatus.describe(status));
        }
        ControlCommandHandler.Outcome outcome = control.handle(net, driverFeatures, readable);
        if (!outcome.ack().isOk()) {
            return outcome.ack();
        }
        String failure = commit(outcome.state());
        if (failure != null) {
            return ControlAck.err(outcome.ack().command(), failure);
        }
        changed();
        return outcome.ack();
    }

    /** Effects of one state group on the backend, with the way back if a later one fails. */
    private interface Effect {
        void apply(VirtioNetState state, RxFilter filter) throws IOException;
    }

    /** The backend calls for every group of state that differs between two states, in a fixed order. */
    private List<Effect> effectsBetween(VirtioNetState old, VirtioNetState next) {
        List<Effect> effects = new ArrayList<>();
        if (!Arrays.equals(old.mac(), next.mac()) || !old.macTable().equals(next.macTable())
                || !old.rxMode().equals(next.rxMode()) || !Arrays.equals(old.vlanTable(), next.vlanTable())) {
            effects.add((s, f) -> listener.rxFilterChanged(f));
        }
        if (old.guestOffloads() != next.guestOffloads()) {
            effects.add((s, f) -> listener.guestOffloadsChanged(s.guestOffloads(),
                    TunOffloads.fromGuestOffloads(s.guestOffloads())));
        }
        if (!old.rss().equals(next.rss())) {
            effects.add((s, f) -> listener.rssChanged(s.rss()));
        }
        if (old.queuePairs() != next.queuePairs()) {
            effects.add((s, f) -> listener.queuePairsChanged(s.queuePairs()));
        }
        return effects;
    }

    /**
     * Tells the backend about every group that differs between the current state and {@code
     * next}, then makes {@code next} current. If the backend refuses one, the groups already told
     * are told the old values again (best effort) and the state stays; returns why, else null.
     */
    private String commit(VirtioNetState next) {
        VirtioNetState old = net;
        List<Effect> effects = effectsBetween(old, next);
        RxFilter nextFilter = effects.isEmpty() ? rxFilter : new RxFilter(next);
        for (int i = 0; i < effects.size(); i++) {
            try {
                effects.get(i).apply(next, nextFilter);
            } catch (IOException | RuntimeException e) {
                RxFilter oldFilter = rxFilter;
                for (int j = i - 1; j >= 0; j--) {
                    try {
                        effects.get(j).apply(old, oldFilter);
                    } catch (IOException | RuntimeException again) {
                        LOG.log(Level.WARNING, "virtio-net: backend failed to roll back", again);
                    }
                }
                return "backend refused the change: " + e;
            }
        }
        net = next;
        rxFilter = nextFilter;
        return null;
    }

    /** The receive filter now in force, for the userspace datapath; read without a lock. */
    public RxFilter rxFilter() {
        return rxFilter;
    }

    /** The virtio-net state now. */
    public synchronized VirtioNetState netState() {
        return net;
    }

    // ---- migration ----

    /**
     * Called after every committed change of device state (status, features, a control command,
     * link, announce, restore): migration's precopy sends the delta at once. Runs with the
     * device's lock held; {@link #snapshot()} may be called from it.
     */
    public void addChangeObserver(Runnable observer) {
        observers.add(Objects.requireNonNull(observer, "observer"));
    }

    private void changed() {
        for (Runnable o : observers) {
            try {
                o.run();
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, "virtio-net: change observer failed", e);
            }
        }
    }

    /** The device's whole state now, immutable. */
    public synchronized NetDeviceState snapshot() {
        return new NetDeviceState(new VirtioState(status, offer.offered(), driverFeatures, configSpace()), net);
    }

    /**
     * Loads a state taken by {@link #snapshot()}, on this or another host, after checking every
     * value against this device: a bad one is refused, naming its field, and nothing changes. The
     * device keeps its own offered features (the state's acknowledged ones must be among them).
     * The backend hears about each group of state that differs from the current one; the
     * datapath is not started (migration decides when).
     *
     * @throws InvalidDeviceStateException naming the first bad field; the device is unchanged
     * @throws IOException when the backend refused a change; the state is loaded regardless, so
     *     the caller can retry the backend or fall back to another datapath
     */
    public synchronized void restore(NetDeviceState state) throws InvalidDeviceStateException, IOException {
        Objects.requireNonNull(state, "state");
        validator.validate(state);
        VirtioNetState old = net;
        status = state.virtio().status();
        driverFeatures = state.virtio().ackedFeatures();
        lastError = null;
        needsResetReason = null;
        net = state.net();
        rxFilter = new RxFilter(net);
        // Unlike a control command, a restore is not rolled back: every group is tried, and the
        // first refusal is reported after the state is in place.
        IOException failure = null;
        for (Effect effect : effectsBetween(old, net)) {
            try {
                effect.apply(net, rxFilter);
            } catch (IOException | RuntimeException e) {
                if (failure == null) {
                    failure = new IOException("restore: backend refused the change: " + e, e);
                } else {
                    failure.addSuppressed(e);
                }
            }
        }
        changed();
        if (failure != null) {
            throw failure;
        }
    }
}

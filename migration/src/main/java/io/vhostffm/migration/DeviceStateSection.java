package io.vhostffm.migration;

import io.vhostffm.migration.schema.StateSchema;
import java.util.List;
import java.util.Objects;
import java.util.function.Supplier;

/**
 * One group of device state that migrates as a unit: the device code's side of the migration.
 * The state is an immutable record (primitives, arrays, Strings, enums, nested records, Lists);
 * its {@link StateSchema} encodes, snapshots and compares it, so the device never writes a
 * serializer or a comparison by hand.
 *
 * <p>The same implementation serves both ends. On the source, {@link MigrationSource} calls
 * {@link #capture()} at setup, on every precopy delta check and at stop-and-copy (after the
 * backend stopped). On the destination, {@link MigrationDestination} calls
 * {@link #loadEarly} once in the setup phase, then {@link #applyDelta} for every delta it
 * receives, naming exactly the fields that changed, so the device can change only those.
 *
 * <p>Keep runtime ring indices out of a section's record: they move at every packet, so a
 * section holding them would always differ at stop-and-copy. They travel in the
 * {@link FinalPositions} of the switchover instead.
 *
 * @param <R> the record type of the state
 */
public interface DeviceStateSection<R extends Record> {

    /** The section id on the stream: 0x0001..0xEFFF, unique within a device. */
    int id();

    /** A short name for messages and the manifest, e.g. {@code "virtio-net.mac-table"}. */
    String name();

    /** The record type; its components are the state's one description. */
    Class<R> stateType();

    /** The schema of {@link #stateType()}. */
    default StateSchema<R> schema() {
        return StateSchema.of(stateType());
    }

    /** Source: the current state. Called with the device in a consistent state (or stopped). */
    R capture();

    /**
     * Destination, setup phase (the guest still runs at the source): load the early state and
     * do what can be done ahead (prestart vhost without a backend). Ring indices may be
     * inconsistent and must be tolerated. A failure here is not fatal to the migration: it is
     * recorded and handed to {@link DeviceSwitchover}, which falls back (userspace datapath,
     * full load).
     */
    void loadEarly(R early) throws Exception;

    /**
     * Destination: a newer state of this section arrived.
     *
     * @param previous the state loaded or applied before
     * @param now the new state
     * @param changedFields the paths of the components that differ (see
     *        {@link StateSchema#changedFields}); never empty
     * @param atSwitchover false for a precopy delta (guest still running at the source; a
     *        failure is recorded, not fatal), true inside the switchover (a failure fails the
     *        migration and the source keeps the guest)
     */
    void applyDelta(R previous, R now, List<String> changedFields, boolean atSwitchover) throws Exception;

    /** Destination: what to do with the early state; see {@link DeviceStateSection#loadEarly}. */
    @FunctionalInterface
    interface EarlyLoad<R extends Record> {
        void loadEarly(R early) throws Exception;
    }

    /** Destination: what to do with a delta; see {@link DeviceStateSection#applyDelta}. */
    @FunctionalInterface
    interface DeltaApply<R extends Record> {
        void applyDelta(R previous, R now, List<String> changedFields, boolean atSwitchover) throws Exception;
    }

    /**
     * A source-side section: id, record type and a supplier of the live state. Its destination
     * methods throw {@link UnsupportedOperationException}.
     */
    static <R extends Record> DeviceStateSection<R> onSource(int id, String name, Class<R> type, Supplier<R> capture) {
        Objects.requireNonNull(capture, "capture");
        return new FunctionalSection<>(id, name, type, capture, null, null);
    }

    /**
     * A destination-side section: id, record type and what to do with the early state and with
     * each delta. Its {@link #capture()} throws {@link UnsupportedOperationException}.
     */
    static <R extends Record> DeviceStateSection<R> onDestination(int id, String name, Class<R> type,
            EarlyLoad<R> loadEarly, DeltaApply<R> applyDelta) {
        Objects.requireNonNull(loadEarly, "loadEarly");
        Objects.requireNonNull(applyDelta, "applyDelta");
        return new FunctionalSection<>(id, name, type, null, loadEarly, applyDelta);
    }
}

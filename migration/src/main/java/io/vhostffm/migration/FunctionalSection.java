package io.vhostffm.migration;

import java.util.List;
import java.util.Objects;
import java.util.function.Supplier;

/**
 * A {@link DeviceStateSection} made of functions, for one side of the migration; see
 * {@link DeviceStateSection#onSource} and {@link DeviceStateSection#onDestination}.
 */
record FunctionalSection<R extends Record>(int id, String name, Class<R> stateType, Supplier<R> capturer,
        DeviceStateSection.EarlyLoad<R> earlyLoad, DeviceStateSection.DeltaApply<R> deltaApply)
        implements DeviceStateSection<R> {

    FunctionalSection {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(stateType, "stateType");
    }

    @Override
    public R capture() {
        if (capturer == null) {
            throw new UnsupportedOperationException("section '" + name + "' was built for the destination");
        }
        return capturer.get();
    }

    @Override
    public void loadEarly(R early) throws Exception {
        if (earlyLoad == null) {
            throw new UnsupportedOperationException("section '" + name + "' was built for the source");
        }
        earlyLoad.loadEarly(early);
    }

    @Override
    public void applyDelta(R previous, R now, List<String> changedFields, boolean atSwitchover) throws Exception {
        if (deltaApply == null) {
            throw new UnsupportedOperationException("section '" + name + "' was built for the source");
        }
        deltaApply.applyDelta(previous, now, changedFields, atSwitchover);
    }
}

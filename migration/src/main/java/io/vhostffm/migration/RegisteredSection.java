package io.vhostffm.migration;

import io.vhostffm.migration.schema.StateDecodeException;
import io.vhostffm.migration.schema.StateSchema;
import io.vhostffm.migration.stream.StreamFormat;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Objects;
import java.util.Set;

/**
 * A {@link DeviceStateSection} with its schema and the last state sent (source) or received
 * (destination). Keeps the generic record type in one place so the protocol classes stay
 * untyped.
 */
final class RegisteredSection<R extends Record> {
    final DeviceStateSection<R> section;
    final StateSchema<R> schema;
    final int id;
    final String name;
    /** Source: the snapshot of what was last sent. Destination: the last state received. */
    R last;

    private RegisteredSection(DeviceStateSection<R> section) {
        this.section = section;
        this.schema = Objects.requireNonNull(section.schema(), "schema");
        this.id = section.id();
        this.name = Objects.requireNonNull(section.name(), "name");
        if (!StreamFormat.isDeviceSection(id)) {
            throw new IllegalArgumentException(String.format("section '%s': id 0x%x out of 0x0001..0xefff", name, id));
        }
        if (schema.recordType() != section.stateType()) {
            throw new IllegalArgumentException("section '" + name + "': schema is not of " + section.stateType());
        }
    }

    static List<RegisteredSection<?>> register(List<? extends DeviceStateSection<?>> sections) {
        if (sections.isEmpty()) {
            throw new IllegalArgumentException("no state section registered");
        }
        List<RegisteredSection<?>> out = new ArrayList<>();
        Set<Integer> ids = new HashSet<>();
        for (DeviceStateSection<?> s : sections) {
            RegisteredSection<?> r = new RegisteredSection<>(s);
            if (!ids.add(r.id)) {
                throw new IllegalArgumentException(String.format("section id 0x%04x registered twice", r.id));
            }
            out.add(r);
        }
        return List.copyOf(out);
    }

    /** Source: capture the live state. */
    R capture() {
        return Objects.requireNonNull(section.capture(), () -> "section '" + name + "' captured null");
    }

    /** Source: true when {@code live} differs from the snapshot last sent. */
    boolean changed(R live) {
        return !schema.unchanged(live, last);
    }

    byte[] encode(R value) {
        return schema.encode(value);
    }

    R decode(byte[] payload) throws StateDecodeException {
        return schema.decode(payload);
    }

    /** Source: remember what was sent, deep-copied so later changes to live arrays cannot leak in. */
    void remember(R sent) {
        last = schema.snapshot(sent);
    }

    @SuppressWarnings("unchecked")
    R cast(Record r) {
        return (R) r;
    }

    void loadEarly(Record early) throws Exception {
        section.loadEarly(cast(early));
    }

    void applyDelta(Record previous, Record now, List<String> changed, boolean atSwitchover) throws Exception {
        section.applyDelta(cast(previous), cast(now), changed, atSwitchover);
    }

    List<String> changedFields(Record before, Record after) {
        return schema.changedFields(cast(before), cast(after));
    }
}

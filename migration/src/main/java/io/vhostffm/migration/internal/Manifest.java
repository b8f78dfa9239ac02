package io.vhostffm.migration.internal;

import java.util.List;

/**
 * Payload of the MANIFEST section: the state sections the source will send, so the destination
 * can check, before any state, that both ends agree on ids and record shapes.
 *
 * @param sections one entry per section, in sending order
 */
public record Manifest(List<Entry> sections) {
    public Manifest {
        sections = List.copyOf(sections);
    }

    /**
     * @param id the section id
     * @param name the section name
     * @param fingerprint the {@code StateSchema} fingerprint of its record type
     */
    public record Entry(int id, String name, long fingerprint) {
    }
}

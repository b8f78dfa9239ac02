package io.vhostffm.migration;

import java.util.List;

/**
 * A delta the destination received for one section: the state before and after, and which
 * fields differ.
 *
 * @param sectionId the section id
 * @param name the section name
 * @param previous the state the destination had before
 * @param now the received state
 * @param changedFields paths of the differing fields, e.g. {@code macTable.entries}
 * @param atSwitchover true when received in the stop-and-copy message, false during precopy
 */
public record SectionDelta(int sectionId, String name, Record previous, Record now, List<String> changedFields,
        boolean atSwitchover) {
    public SectionDelta {
        changedFields = List.copyOf(changedFields);
    }
}

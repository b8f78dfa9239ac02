/**
 * The state schema: a Java record type is the one description of a piece of migratable state,
 * and {@link io.vhostffm.migration.schema.StateSchema} derives encoding, validated decoding,
 * deep snapshots and field-level comparison from its components.
 */
package io.vhostffm.migration.schema;

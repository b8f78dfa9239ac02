/** Payload records of the protocol's own control sections (manifest, acknowledgement). Not exported. */
package io.vhostffm.migration.internal;

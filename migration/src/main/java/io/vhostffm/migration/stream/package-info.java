/**
 * The migration stream's byte format: a versioned header, then self-delimiting frames (section
 * id, flags, length, payload, CRC32C), then an end marker; a writer and a reader that trusts
 * nothing it reads. The layout is in {@link io.vhostffm.migration.stream.StreamFormat}.
 */
package io.vhostffm.migration.stream;

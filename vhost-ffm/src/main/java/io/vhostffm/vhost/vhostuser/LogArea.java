package io.vhostffm.vhost.vhostuser;

/**
 * The payload of SET_LOG_BASE ({@code VhostUserLog}): the dirty log bitmap is the descriptor sent
 * with it, mapped {@code mmapSize} bytes from {@code mmapOffset}.
 *
 * @param mmapSize   bytes to map
 * @param mmapOffset where the bitmap starts in the file
 */
public record LogArea(long mmapSize, long mmapOffset) {}

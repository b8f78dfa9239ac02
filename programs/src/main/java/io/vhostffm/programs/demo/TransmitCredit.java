package io.vhostffm.programs.demo;

/**
 * The source's grant to the destination's guest ({@link TransmitCredits}): it may have
 * transmitted up to {@code transmitUpTo} frames in all (every pair, counted since it booted).
 * Absolute, so a later credit replaces an earlier one and none is ever added up.
 */
public record TransmitCredit(long transmitUpTo) {}

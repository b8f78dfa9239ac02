package io.vhostffm.migration;

/**
 * Where the time and the bytes of one migration went, per phase, in nanoseconds and bytes.
 * The source-side figures are measured by {@link MigrationSource}; the destination-side ones
 * arrive in its acknowledgement and are -1 until then.
 *
 * @param setupNanos source: capture, snapshot, encode and send the full state
 * @param setupBytes bytes of the setup message (stream header and manifest included)
 * @param precopyDeltaMessages precopy delta messages sent
 * @param precopyDeltaNanos source: total time of the precopy delta checks and sends
 * @param precopyDeltaBytes bytes of the precopy deltas
 * @param stopAndCopyNanos source: the whole stop-and-copy work (guest paused): backend stop,
 *        capture, compare, send
 * @param backendStopNanos the part of {@code stopAndCopyNanos} spent stopping the backend
 * @param stopAndCopyBytes bytes of the switchover message and end marker
 * @param switchoverDeltaSections sections sent at stop-and-copy; 0 means "no delta"
 * @param destinationEarlyLoadNanos destination: early load of the setup state, -1 if unknown
 * @param destinationSwitchoverNanos destination: switchover work, -1 if unknown
 * @param downtime the device downtime, pause to the destination's datapath ready, with its
 *        parts; null until a positive acknowledgement arrived
 */
public record MigrationReport(long setupNanos, long setupBytes, int precopyDeltaMessages, long precopyDeltaNanos,
        long precopyDeltaBytes, long stopAndCopyNanos, long backendStopNanos, long stopAndCopyBytes,
        int switchoverDeltaSections, long destinationEarlyLoadNanos, long destinationSwitchoverNanos,
        DeviceDowntime downtime) {

    /** True when the stop-and-copy sent only the final indices. */
    public boolean noDeltaAtSwitchover() {
        return switchoverDeltaSections == 0;
    }

    /** Total bytes the source sent. */
    public long totalBytes() {
        return setupBytes + precopyDeltaBytes + stopAndCopyBytes;
    }

    /** A copy with the destination's figures filled in. */
    public MigrationReport withDestination(long earlyLoadNanos, long switchoverNanos) {
        return new MigrationReport(setupNanos, setupBytes, precopyDeltaMessages, precopyDeltaNanos, precopyDeltaBytes,
                stopAndCopyNanos, backendStopNanos, stopAndCopyBytes, switchoverDeltaSections, earlyLoadNanos,
                switchoverNanos, downtime);
    }

    /** A small table, one phase a line. */
    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder("migration report\n");
        sb.append(String.format("  %-34s %14s %10s%n", "phase", "ns", "bytes"));
        sb.append(String.format("  %-34s %14d %10d%n", "source setup (full state)", setupNanos, setupBytes));
        sb.append(String.format("  %-34s %14d %10d%n", "source precopy deltas (" + precopyDeltaMessages + ")",
                precopyDeltaNanos, precopyDeltaBytes));
        sb.append(String.format("  %-34s %14d %10d%n", "source stop-and-copy ("
                + (noDeltaAtSwitchover() ? "no delta" : switchoverDeltaSections + " sections") + ")",
                stopAndCopyNanos, stopAndCopyBytes));
        sb.append(String.format("  %-34s %14d %10s%n", "  of which backend stop", backendStopNanos, ""));
        sb.append(String.format("  %-34s %14s %10s%n", "destination early load",
                destinationEarlyLoadNanos < 0 ? "unknown" : Long.toString(destinationEarlyLoadNanos), ""));
        sb.append(String.format("  %-34s %14s %10s%n", "destination switchover",
                destinationSwitchoverNanos < 0 ? "unknown" : Long.toString(destinationSwitchoverNanos), ""));
        sb.append(String.format("  %-34s %14s %10d", "total sent", "", totalBytes()));
        if (downtime != null) {
            sb.append(System.lineSeparator()).append(downtime.toString().stripTrailing());
        }
        return sb.toString();
    }
}

package io.vhostffm.migration;

import java.util.ArrayList;
import java.util.List;

/**
 * The device downtime of one migration: from the source's pause (the start of stop-and-copy)
 * to the destination's datapath ready on every queue, and its parts.
 *
 * <p>On one host both processes read the same CLOCK_MONOTONIC ({@link MonotonicClock}): the
 * total is one subtraction and the parts are consecutive: source stop and compare (backend stop,
 * compare, encode and write of any changed section), the stream (from the start of the source's
 * final write, the queue indices and the end marker, to the destination having read and
 * validated the message), then the destination's
 * steps (apply, quickstart, first notification, or whatever its device marked). Between hosts
 * the total is unknown (-1) and the parts are those each side measured on its own clock; the
 * stream part is then the destination's, from the first switchover frame's arrival.
 *
 * @param sameClock whether both sides' timestamps compare (same boot, same time namespace)
 * @param totalNanos pause to ready, or -1 when the clocks differ
 * @param parts the steps, in order, in ns
 */
public record DeviceDowntime(boolean sameClock, long totalNanos, List<Part> parts) {
    /** Source part's name. */
    public static final String SOURCE_STOP_AND_COMPARE = "source stop and compare";
    /** Stream part's name on one host. */
    public static final String STREAM = "stream";
    /** Stream part's name between hosts: only the destination's read of the message. */
    public static final String STREAM_DESTINATION_READ = "stream (destination read)";

    public DeviceDowntime {
        parts = List.copyOf(parts);
    }

    /**
     * One step.
     *
     * @param name what it is
     * @param nanos how long, in ns
     */
    public record Part(String name, long nanos) {}

    /**
     * Combines the source's timestamps with the destination's timeline.
     *
     * @param pausedAt the source's stop-and-copy start
     * @param sentAt when the source began its final switchover write (the queue indices)
     * @param sameClock whether the destination's timestamps compare with the source's
     * @param firstFrameAt the destination's first switchover frame
     * @param marks the destination's marks, the first being the stream's end
     */
    public static DeviceDowntime of(long pausedAt, long sentAt, boolean sameClock, long firstFrameAt,
            List<SwitchoverSteps.Mark> marks) {
        List<Part> parts = new ArrayList<>();
        parts.add(new Part(SOURCE_STOP_AND_COMPARE, sentAt - pausedAt));
        long previous = sameClock ? sentAt : firstFrameAt;
        for (int i = 0; i < marks.size(); i++) {
            SwitchoverSteps.Mark m = marks.get(i);
            String name = i == 0 && m.name().equals(SwitchoverSteps.STREAM)
                    ? (sameClock ? STREAM : STREAM_DESTINATION_READ) : m.name();
            parts.add(new Part(name, m.at() - previous));
            previous = m.at();
        }
        long total = sameClock && !marks.isEmpty() ? marks.get(marks.size() - 1).at() - pausedAt : -1;
        return new DeviceDowntime(sameClock, total, parts);
    }

    /** The part named {@code name}, in ns, or -1. */
    public long part(String name) {
        for (Part p : parts) {
            if (p.name().equals(name)) {
                return p.nanos();
            }
        }
        return -1;
    }

    /** A few lines: the total, then each part. */
    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format("  %-34s %14s%n", "device downtime (pause to ready)",
                totalNanos < 0 ? "unknown (two clocks)" : Long.toString(totalNanos)));
        for (Part p : parts) {
            sb.append(String.format("    %-32s %14d%n", p.name(), p.nanos()));
        }
        return sb.toString();
    }
}

package io.vhostffm.migration;

import io.vhostffm.migration.jfr.SwitchoverStepEvent;
import java.util.ArrayList;
import java.util.List;

/**
 * The timeline of one switchover on the destination: the moment the first switchover frame
 * arrived, then named marks ({@link MonotonicClock} timestamps), each the end of a step: the
 * core marks {@value #STREAM} when the whole switchover message was read and validated; the
 * device marks its own steps (e.g. apply, quickstart, first notification); the last mark is the
 * moment the datapath is ready on every queue. Marking allocates nothing (the names are
 * constants, the arrays sized up front), so it may sit on the downtime path.
 */
public final class SwitchoverSteps {
    /** The core's mark: the switchover message read and validated, end marker included. */
    public static final String STREAM = "stream";
    /** The core's mark when the device marked nothing: the device started. */
    public static final String DEVICE_START = "device start";

    private static final int MAX = 16;
    private final String[] names = new String[MAX];
    private final long[] at = new long[MAX];
    private int count;
    private long firstFrameAt = -1;
    private boolean rehearsal;

    /**
     * Steps of a rehearsal: marked through the same code, their flight-recorder events never
     * committed (a recording shows real switchovers only).
     */
    static SwitchoverSteps rehearsal() {
        SwitchoverSteps steps = new SwitchoverSteps();
        steps.rehearsal = true;
        return steps;
    }

    /** A named timestamp. */
    public record Mark(String name, long at) {}

    void firstFrame(long when) {
        firstFrameAt = when;
    }

    /** The first switchover frame's arrival, or -1. */
    public long firstFrameAt() {
        return firstFrameAt;
    }

    /** Marks the end of step {@code name} now. Ignored past 16 marks. */
    public void mark(String name) {
        markAt(name, MonotonicClock.now());
    }

    /** Marks the end of step {@code name} at {@code when} (a {@link MonotonicClock} timestamp). */
    public void markAt(String name, long when) {
        if (count < MAX) {
            names[count] = name;
            at[count] = when;
            count++;
        }
        SwitchoverStepEvent event = new SwitchoverStepEvent(); // scalar-replaced: no allocation without a recording
        if (!rehearsal && event.shouldCommit()) {
            event.step = name;
            event.stepNanos = when - (count >= 2 ? at[count - 2] : firstFrameAt);
            event.commit();
        }
    }

    /** Marks made so far. */
    public int count() {
        return count;
    }

    /** The marks, in order. */
    public List<Mark> marks() {
        List<Mark> list = new ArrayList<>(count);
        for (int i = 0; i < count; i++) {
            list.add(new Mark(names[i], at[i]));
        }
        return list;
    }
}

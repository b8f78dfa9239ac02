package io.vhostffm.migration;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

class DeviceDowntimeTest {
    private static final List<SwitchoverSteps.Mark> MARKS = List.of(new SwitchoverSteps.Mark(SwitchoverSteps.STREAM, 1_300),
            new SwitchoverSteps.Mark("destination apply", 1_350), new SwitchoverSteps.Mark("quickstart", 2_000),
            new SwitchoverSteps.Mark("first notification", 2_040));

    @Test
    void onOneClockThePartsAreConsecutiveAndAddUpToTheTotal() {
        DeviceDowntime d = DeviceDowntime.of(1_000, 1_100, true, 1_050, MARKS);
        assertEquals(1_040, d.totalNanos());
        assertEquals(List.of(new DeviceDowntime.Part(DeviceDowntime.SOURCE_STOP_AND_COMPARE, 100),
                new DeviceDowntime.Part(DeviceDowntime.STREAM, 200), new DeviceDowntime.Part("destination apply", 50),
                new DeviceDowntime.Part("quickstart", 650), new DeviceDowntime.Part("first notification", 40)), d.parts());
        assertEquals(d.totalNanos(), d.parts().stream().mapToLong(DeviceDowntime.Part::nanos).sum());
    }

    @Test
    void onTwoClocksTheTotalIsUnknownAndTheStreamIsTheDestinationsRead() {
        // The destination's clock is unrelated: its timestamps are far from the source's.
        List<SwitchoverSteps.Mark> marks = MARKS.stream()
                .map(m -> new SwitchoverSteps.Mark(m.name(), m.at() + 9_000_000)).toList();
        DeviceDowntime d = DeviceDowntime.of(1_000, 1_100, false, 1_050 + 9_000_000, marks);
        assertEquals(-1, d.totalNanos());
        assertEquals(100, d.part(DeviceDowntime.SOURCE_STOP_AND_COMPARE));
        assertEquals(250, d.part(DeviceDowntime.STREAM_DESTINATION_READ));
        assertEquals(-1, d.part(DeviceDowntime.STREAM));
        assertEquals(650, d.part("quickstart"));
        assertTrue(d.toString().contains("unknown (two clocks)"), d::toString);
    }

    @Test
    void stepsKeepTheirOrderAndTheFirstFrame() {
        SwitchoverSteps steps = new SwitchoverSteps();
        steps.firstFrame(5);
        steps.markAt("a", 7);
        steps.markAt("b", 11);
        assertEquals(5, steps.firstFrameAt());
        assertEquals(List.of(new SwitchoverSteps.Mark("a", 7), new SwitchoverSteps.Mark("b", 11)), steps.marks());
    }

    @Test
    void thisProcessSharesItsOwnClockButNotAnEmptyOrForeignOne() {
        assertTrue(MonotonicClock.sameAs(MonotonicClock.domain()), MonotonicClock.domain());
        assertFalse(MonotonicClock.sameAs(""));
        assertFalse(MonotonicClock.sameAs("another-boot time:[1]"));
    }
}

package io.vhostffm.vhost.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.System.Logger.Level;
import java.text.MessageFormat;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.ResourceBundle;
import org.junit.jupiter.api.Test;

class RateLimitedWarningsTest {
    /** What was logged, as "LEVEL message". */
    private static final class Recorder implements System.Logger {
        final List<String> lines = new ArrayList<>();

        @Override
        public String getName() {
            return "recorder";
        }

        @Override
        public boolean isLoggable(Level level) {
            return true;
        }

        @Override
        public void log(Level level, ResourceBundle bundle, String msg, Throwable thrown) {
            lines.add(level + " " + msg);
        }

        @Override
        public void log(Level level, ResourceBundle bundle, String format, Object... params) {
            lines.add(level + " " + (params == null ? format : MessageFormat.format(format, params)));
        }

        long count(Level level) {
            return lines.stream().filter(l -> l.startsWith(level + " ")).count();
        }
    }

    private long now = 1_000_000_000L;

    @Test
    void aBurstPassesThenTheRestGoesToDebugAndTheNextIntervalSaysHowManyWereHeldBack() {
        Recorder log = new Recorder();
        RateLimitedWarnings w = new RateLimitedWarnings(log, 3, Duration.ofSeconds(5), () -> now);
        for (int i = 0; i < 3; i++) {
            assertTrue(w.warn("bad chain " + i));
            now += 1_000_000;
        }
        for (int i = 3; i < 10; i++) {
            assertFalse(w.warn("bad chain " + i));
            now += 1_000_000;
        }
        assertEquals(List.of("WARNING bad chain 0", "WARNING bad chain 1", "WARNING bad chain 2", "DEBUG bad chain 3"),
                log.lines.subList(0, 4));
        assertEquals(3, log.count(Level.WARNING));
        assertEquals(7, log.count(Level.DEBUG), "every message still logged, past the burst at DEBUG");

        now += Duration.ofSeconds(5).toNanos();
        assertTrue(w.warn("bad chain 10"), "a new interval lets warnings through again");
        List<String> tail = log.lines.subList(log.lines.size() - 2, log.lines.size());
        assertTrue(tail.get(0).startsWith("WARNING 7 similar warning(s) logged at DEBUG only in the last "), tail.get(0));
        assertTrue(tail.get(0).endsWith("(at most 3 per 5000 ms)"), tail.get(0));
        assertEquals("WARNING bad chain 10", tail.get(1));
    }

    @Test
    void withinTheIntervalNothingIsReportedHeldBackAndAQuietIntervalReportsNothing() {
        Recorder log = new Recorder();
        RateLimitedWarnings w = new RateLimitedWarnings(log, 2, Duration.ofMillis(100), () -> now);
        assertTrue(w.warn("a"));
        now += Duration.ofMillis(99).toNanos();
        assertTrue(w.warn("b"));
        now += Duration.ofMillis(1).toNanos();
        assertTrue(w.warn("c"), "the interval starts at its first warning, not at the last");
        now += Duration.ofSeconds(10).toNanos();
        assertTrue(w.warn("d"));
        assertEquals(List.of("WARNING a", "WARNING b", "WARNING c", "WARNING d"), log.lines,
                "nothing was held back, so no count is logged");
    }

    @Test
    void messagesAreLoggedAsTheyAreNotAsFormats() {
        Recorder log = new Recorder();
        new RateLimitedWarnings(log, 1, Duration.ofSeconds(1), () -> now).warn("chain at head {0} loops");
        assertEquals(List.of("WARNING chain at head {0} loops"), log.lines);
    }

    @Test
    void aBurstBelowOneOrAnEmptyIntervalIsRefused() {
        Recorder log = new Recorder();
        assertThrows(IllegalArgumentException.class, () -> new RateLimitedWarnings(log, 0, Duration.ofSeconds(1), () -> now));
        assertThrows(IllegalArgumentException.class, () -> new RateLimitedWarnings(log, 1, Duration.ZERO, () -> now));
    }
}

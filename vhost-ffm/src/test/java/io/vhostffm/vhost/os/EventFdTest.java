package io.vhostffm.vhost.os;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class EventFdTest {

    @Test
    void signalsAddUpAndConsumeResets() throws Exception {
        try (EventFd event = EventFd.create("eventfd call")) {
            assertEquals(0, event.consume(), "empty: no blocking, 0");
            assertFalse(event.poll(0));
            event.signal();
            event.signal();
            event.add(40);
            assertTrue(event.poll(0));
            assertEquals(42, event.consume());
            assertEquals(0, event.consume());
            assertFalse(event.poll(10));
            assertTrue(event.fd().isNonBlocking());
            assertTrue(event.fd().isCloseOnExec());
        }
    }

    @Test
    void pollWakesOnASignalFromAnotherThread() throws Exception {
        try (EventFd event = EventFd.create("eventfd kick")) {
            CountDownLatch polling = new CountDownLatch(1);
            Thread signaller = Thread.ofPlatform().start(() -> {
                try {
                    assertTrue(polling.await(10, TimeUnit.SECONDS));
                    event.signal();
                } catch (Exception e) {
                    throw new AssertionError(e);
                }
            });
            polling.countDown(); // the signal comes only once this thread is (about to be) in poll
            assertTrue(event.poll(-1), "poll without timeout returns once signalled");
            signaller.join();
            assertEquals(1, event.consume());
        }
    }

    @Test
    void useAfterCloseIsAClearError() throws Exception {
        EventFd event = EventFd.create("eventfd kick");
        event.close();
        event.close();
        assertThrows(DescriptorClosedException.class, event::signal);
        assertThrows(DescriptorClosedException.class, event::consume);
    }

    @Test
    void overflowingTheCounterNamesTheCall() throws Exception {
        try (EventFd event = EventFd.create("eventfd call")) {
            event.add(0xfffffffffffffffeL); // the maximum the counter holds
            NativeCallException e = assertThrows(NativeCallException.class, event::signal);
            assertTrue(e.getMessage().startsWith("write on eventfd call (fd "), e.getMessage());
            assertTrue(e.getMessage().endsWith(": EAGAIN (Resource temporarily unavailable)"), e.getMessage());
        }
    }

    @Test
    void tenThousandEventFdsOpenAndCloseWithoutLeak() throws Exception {
        var before = FdLinks.snapshot();
        for (int i = 0; i < 10_000; i++) {
            EventFd event = EventFd.create();
            event.signal();
            event.close();
        }
        assertEquals(before, FdLinks.snapshot());
    }
}

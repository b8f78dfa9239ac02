package io.vhostffm.vhost.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

class ParkedThreadsTest {
    @Test
    void aReservedThreadIsAliveBeforeItsWorkAndRunsItOnce() throws Exception {
        ParkedThreads parked = ParkedThreads.start(2, "test");
        ParkedThreads.Reserved r = parked.reserve("worker 0");
        Thread t = r.thread();
        assertTrue(t.isAlive(), "started at start(), parked");
        assertEquals("worker 0", t.getName());
        AtomicReference<Thread> ranOn = new AtomicReference<>();
        CountDownLatch ran = new CountDownLatch(1);
        r.run(() -> {
            ranOn.set(Thread.currentThread());
            ran.countDown();
        });
        assertTrue(ran.await(10, TimeUnit.SECONDS));
        assertSame(t, ranOn.get());
        t.join(10_000);
        assertFalse(t.isAlive(), "one worker, then the thread ends");
        parked.release();
    }

    @Test
    void releaseEndsTheThreadsNobodyTookAndReservingPastTheCountStartsANewOne() throws Exception {
        ParkedThreads parked = ParkedThreads.start(3, "release-test");
        ParkedThreads.Reserved first = parked.reserve("release-test worker");
        CountDownLatch ran = new CountDownLatch(1);
        first.run(ran::countDown);
        assertTrue(ran.await(10, TimeUnit.SECONDS));
        parked.release(); // the two never reserved end
        for (Thread t : Thread.getAllStackTraces().keySet()) {
            if (t.getName().equals("release-test (parked)")) {
                t.join(10_000);
                assertFalse(t.isAlive(), t + " still parked after release()");
            }
        }
        first.thread().join(10_000);
        assertFalse(first.thread().isAlive());

        ParkedThreads one = ParkedThreads.start(1, "overflow-test");
        ParkedThreads.Reserved a = one.reserve("a");
        ParkedThreads.Reserved b = one.reserve("b"); // past the count: a new thread, started now
        assertTrue(b.thread().isAlive());
        assertFalse(a.thread() == b.thread());
        CountDownLatch both = new CountDownLatch(2);
        a.run(both::countDown);
        b.run(both::countDown);
        assertTrue(both.await(10, TimeUnit.SECONDS));
        one.release();
    }
}

package io.vhostffm.vhost.os;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class FileDescriptorTest {

    @Test
    void closeIsIdempotentAndUseAfterCloseIsAClearError() throws Exception {
        FileDescriptor fd = FileDescriptor.openReadOnly("/dev/null");
        int number = fd.number();
        assertTrue(Files.exists(Path.of("/proc/self/fd/" + number)));
        fd.close();
        fd.close();
        assertFalse(fd.isOpen());
        DescriptorClosedException e = assertThrows(DescriptorClosedException.class, fd::acquire);
        assertEquals("/dev/null (fd " + number + ") is closed", e.getMessage());
        assertThrows(DescriptorClosedException.class, fd::number);
        assertThrows(DescriptorClosedException.class, () -> fd.read(MemorySegment.ofArray(new byte[1])));
        assertTrue(fd.toString().endsWith("closed)"));
    }

    @Test
    void closeWaitsForTheCallInFlight() throws Exception {
        FileDescriptor fd = FileDescriptor.openReadOnly("/dev/null");
        int number = fd.acquire();
        fd.close();
        // still open for the call in flight: the number cannot be reused under it
        assertTrue(Files.exists(Path.of("/proc/self/fd/" + number)));
        assertThrows(DescriptorClosedException.class, fd::acquire);
        fd.release();
        assertNotEquals("/dev/null", FdLinks.snapshot().get(number), "the last release closes the descriptor");
    }

    @Test
    void manyThreadsClosingCloseExactlyOnce() throws Exception {
        var before = FdLinks.snapshot();
        for (int round = 0; round < 200; round++) {
            FileDescriptor fd = FileDescriptor.openReadOnly("/dev/null");
            int threads = 4;
            CountDownLatch start = new CountDownLatch(1);
            AtomicInteger failures = new AtomicInteger();
            List<Thread> all = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                all.add(Thread.ofPlatform().start(() -> {
                    try {
                        start.await();
                        fd.close();
                    } catch (Throwable e) {
                        failures.incrementAndGet();
                    }
                }));
            }
            start.countDown();
            for (Thread t : all) {
                t.join();
            }
            assertEquals(0, failures.get(), "a second close(2) would have failed with EBADF");
        }
        assertEquals(before, FdLinks.snapshot());
    }

    @Test
    void openFailureNamesCallPathAndErrno() {
        NativeCallException e = assertThrows(NativeCallException.class,
                () -> FileDescriptor.openReadWrite("/nonexistent/vhost-net"));
        assertEquals("open [/nonexistent/vhost-net]: ENOENT (No such file or directory)", e.getMessage());
        assertEquals("ENOENT", e.errnoSymbol());
        assertEquals(2, e.errno());
    }

    @Test
    void duplicateIsASeparateOwnerOfTheSameFile() throws Exception {
        try (EventFd event = EventFd.create("eventfd kick");
             FileDescriptor copy = event.fd().duplicate("eventfd kick copy")) {
            assertNotEquals(event.fd().number(), copy.number());
            assertTrue(copy.isCloseOnExec());
            event.signal();
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment counter = arena.allocate(8);
                assertEquals(8, copy.read(counter));
                assertEquals(1, counter.get(ValueLayout.JAVA_LONG, 0));
            }
        }
    }

    @Test
    void nonBlockingFlagRoundTrips() throws Exception {
        try (FileDescriptor fd = FileDescriptor.openReadOnly("/dev/null")) {
            assertFalse(fd.isNonBlocking());
            fd.setNonBlocking(true);
            assertTrue(fd.isNonBlocking());
            fd.setNonBlocking(false);
            assertFalse(fd.isNonBlocking());
        }
    }

    @Test
    void tenThousandOpenFilesOpenAndCloseWithoutLeak() throws Exception {
        var before = FdLinks.snapshot();
        for (int i = 0; i < 10_000; i++) {
            FileDescriptor fd = FileDescriptor.openReadOnly("/dev/null");
            fd.close();
        }
        assertEquals(before, FdLinks.snapshot());
    }
}

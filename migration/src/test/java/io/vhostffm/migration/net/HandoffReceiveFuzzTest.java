package io.vhostffm.migration.net;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import io.vhostffm.migration.MigrationException;
import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.FileDescriptor;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.UnixSocket;
import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Coverage-guided fuzzing of the receiving side of the local handoff: a real socket pair, the
 * fuzzer's bytes (with or without a well-formed "VFMH" header in front of them) and up to four
 * real descriptors of its choice (sealed memfds of one or two pages, eventfds) sent with
 * SCM_RIGHTS, the sender closed, then {@link LocalHandoff#receive}.
 *
 * <p>Invariants: receive returns, or throws a {@link MigrationException} or an {@link IOException}
 * (the peer closed early) with a message; after everything it returned is closed, this process has
 * exactly the descriptors it had before (counted in /proc/self/fd) and no more memfd mappings
 * (counted in /proc/self/maps) than before: a refused handoff closes every descriptor it received
 * and unmaps whatever it mapped.
 *
 * <p>Without {@code JAZZER_FUZZ=1} this runs the stored inputs under {@code HandoffReceiveFuzzTestInputs}.
 */
class HandoffReceiveFuzzTest {
    private static final int MAGIC = 0x56464d48; // "VFMH"

    @FuzzTest
    void handoffReceive(FuzzedDataProvider data) throws Exception {
        int fdCount = data.consumeInt(0, 4);
        int[] kinds = new int[fdCount];
        for (int i = 0; i < fdCount; i++) {
            kinds[i] = data.consumeInt(0, 2);
        }
        boolean framed = data.consumeBoolean();
        byte[] body = data.consumeRemainingAsBytes();
        byte[] message = body;
        if (framed) {
            message = ByteBuffer.allocate(8 + body.length).putInt(MAGIC).putInt(body.length).put(body).array();
        }

        int descriptorsBefore = openDescriptors();
        long mappingsBefore = memfdMappings();
        try (UnixSocket.Pair pair = UnixSocket.pair()) {
            sendAndClose(pair.first(), message, kinds);
            try {
                LocalHandoff.Received received = LocalHandoff.receive(pair.second());
                assertNotNull(received.memory());
                assertTrue(received.backend().fds().size() >= 1);
                received.memory().close();
                received.backend().fds().forEach(FileDescriptor::close);
            } catch (MigrationException | IOException e) {
                assertNotNull(e.getMessage());
            }
        }
        assertEquals(descriptorsBefore, openDescriptors(), "descriptors leaked by a handoff receive");
        assertEquals(mappingsBefore, memfdMappings(), "memfd mappings left by a handoff receive");
    }

    /** Sends {@code message} with descriptors of the given kinds (0, 1: a memfd of 1 or 2 pages; 2: an eventfd). */
    private static void sendAndClose(UnixSocket sender, byte[] message, int[] kinds) throws IOException {
        List<AutoCloseable> owners = new ArrayList<>();
        List<FileDescriptor> fds = new ArrayList<>();
        try {
            for (int kind : kinds) {
                if (kind == 2) {
                    EventFd e = EventFd.create("fuzz");
                    owners.add(e);
                    fds.add(e.fd());
                } else {
                    MemfdGuestMemory m = MemfdGuestMemory.create("fuzz-sent",
                            List.of(new MemfdGuestMemory.RegionSpec(0, (kind + 1) * MemfdGuestMemory.PAGE_SIZE)));
                    owners.add(m);
                    fds.add(m.memfdRegions().getFirst().fd());
                }
            }
            // Descriptors travel with at least one byte on a stream socket: none go with no bytes.
            sender.send(message, message.length == 0 ? List.of() : fds);
        } finally {
            for (AutoCloseable o : owners) {
                try {
                    o.close();
                } catch (Exception e) {
                    throw new AssertionError(e);
                }
            }
            sender.close();
        }
    }

    private static int openDescriptors() {
        String[] entries = new File("/proc/self/fd").list();
        return entries == null ? -1 : entries.length;
    }

    private static long memfdMappings() throws IOException {
        try (var lines = Files.lines(Path.of("/proc/self/maps"))) {
            return lines.filter(l -> l.contains("/memfd:")).count();
        }
    }
}

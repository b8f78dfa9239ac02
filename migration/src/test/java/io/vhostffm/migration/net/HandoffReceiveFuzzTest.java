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
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/**
 * Coverage-guided fuzzing of the receiving side of the local handoff: a real socket pair, the
 * fuzzer's bytes (with or without a well-formed "VFMH" header in front of them) and up to four
 * real descriptors of its choice (sealed memfds of one or two pages, eventfds) sent with
 * SCM_RIGHTS, the sender closed, then {@link LocalHandoff#receive}.
 *
 * <p>Invariants: receive returns, or throws a {@link MigrationException} or an {@link IOException}
 * (the peer closed early) with a message; after everything it returned is closed, this process has
 * exactly the descriptors it had before (counted in /proc/self/fd for every input) and no more
 * memfd mappings (counted in /proc/self/maps) than at the start of the run: a refused handoff
 * closes every descriptor it received and unmaps whatever it mapped.
 *
 * <p>What an input costs is mostly these checks, so they are made cheap without losing a leak:
 * the descriptors are counted with getdents64 ({@link ProcessFootprint}), after every input and,
 * when replaying the stored inputs, before each too (while fuzzing, the count after one input
 * is the count before the next); the walk over every mapping that counting memfd mappings takes
 * is made for every 64th input, for every input after which the address space's size (a counter
 * the kernel keeps) differs from before it, and at the end of the run. A mapping left behind grows the address space, so the input that leaves one is
 * the input that fails; only an unrelated unmapping of exactly the same size in the same input
 * could hide it until the next full count. The descriptors sent are made once per run (four of
 * each kind, so an input's descriptors are distinct files): SCM_RIGHTS gives the receiver
 * descriptors of its own for them, which it must close, and mappings of its own, which it must
 * unmap, whether the sender's file is new or not.
 *
 * <p>Without {@code JAZZER_FUZZ=1} this runs the stored inputs under {@code HandoffReceiveFuzzTestInputs}.
 */
class HandoffReceiveFuzzTest {
    private static final int MAGIC = 0x56464d48; // "VFMH"
    /** Every this many inputs the memfd mappings are counted whatever the address space's size says. */
    private static final int FULL_CHECK_EVERY = 64;

    private static ProcessFootprint footprint;

    /** Per kind (0, 1: a memfd of 1 or 2 pages; 2: an eventfd), four descriptors to send. */
    private static List<List<FileDescriptor>> sendable;
    private static List<AutoCloseable> owners;
    private static int memfdMappingsAtStart;
    private static long inputs;
    private static long mappingCounts;

    @BeforeAll
    static void open() throws Exception {
        owners = new ArrayList<>();
        sendable = new ArrayList<>();
        for (int kind = 0; kind < 3; kind++) {
            List<FileDescriptor> fds = new ArrayList<>();
            for (int i = 0; i < 4; i++) {
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
            sendable.add(List.copyOf(fds));
        }
        footprint = new ProcessFootprint();
        memfdMappingsAtStart = footprint.memfdMappings();
    }

    @AfterAll
    static void close() throws Exception {
        if (footprint != null) {
            System.err.printf("handoff-receive: %d inputs, memfd mappings counted after %d of them%n", inputs,
                    mappingCounts);
            assertEquals(memfdMappingsAtStart, footprint.memfdMappings(), "memfd mappings after the run");
            footprint.close();
        }
        if (owners != null) {
            for (AutoCloseable o : owners) {
                o.close();
            }
        }
    }

    /**
     * The descriptors open after this instance's last input, -1 before its first. JUnit makes an
     * instance per stored input it replays; the fuzzer runs every input it makes on one.
     */
    private int descriptorsAfterLast = -1;

    @FuzzTest
    void handoffReceive(FuzzedDataProvider data) throws Exception {
        int fdCount = data.consumeInt(0, 4);
        List<FileDescriptor> fds = new ArrayList<>();
        for (int i = 0; i < fdCount; i++) {
            fds.add(sendable.get(data.consumeInt(0, 2)).get(i));
        }
        boolean framed = data.consumeBoolean();
        byte[] body = data.consumeRemainingAsBytes();
        byte[] message = body;
        if (framed) {
            message = ByteBuffer.allocate(8 + body.length).putInt(MAGIC).putInt(body.length).put(body).array();
        }

        boolean fullCheck = ++inputs % FULL_CHECK_EVERY == 0;
        // While fuzzing, the count after the last input is the count before this one (libFuzzer,
        // on this thread, opens nothing it keeps between two inputs); a replay of the stored
        // inputs counts before each, as JUnit runs between them.
        int descriptorsBefore = descriptorsAfterLast >= 0 ? descriptorsAfterLast : footprint.descriptors();
        long pagesBefore = footprint.mappedPages();
        try (UnixSocket.Pair pair = UnixSocket.pair()) {
            // Descriptors travel with at least one byte on a stream socket: none go with no bytes.
            pair.first().send(message, message.length == 0 ? List.of() : fds);
            pair.first().close();
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
        descriptorsAfterLast = footprint.descriptors();
        assertEquals(descriptorsBefore, descriptorsAfterLast, "descriptors leaked by a handoff receive");
        if (fullCheck || footprint.mappedPages() != pagesBefore) {
            mappingCounts++;
            assertEquals(memfdMappingsAtStart, footprint.memfdMappings(), "memfd mappings left by a handoff receive");
        }
    }
}

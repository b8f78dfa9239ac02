package io.vhostffm.migration.net;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.migration.fixture.Fixtures;
import io.vhostffm.migration.fixture.Fixtures.FixtureSection;
import io.vhostffm.migration.fixture.Fixtures.VirtioState;
import io.vhostffm.migration.FinalPositions;
import io.vhostffm.migration.MigrationDestination;
import io.vhostffm.migration.MigrationException;
import io.vhostffm.migration.MigrationPeerException;
import io.vhostffm.migration.MigrationPeerException.Fault;
import io.vhostffm.migration.MigrationPhase;
import io.vhostffm.migration.MigrationSource;
import io.vhostffm.migration.MigrationStreamException;
import io.vhostffm.migration.stream.MigrationStreamReader;
import io.vhostffm.migration.stream.MigrationStreamWriter;
import io.vhostffm.vhost.device.BackendTransfer;
import io.vhostffm.vhost.device.DirtyLog;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.UnixSocket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The migration module names the failures of the peer and the connection itself: a hypervisor
 * that drives {@link MigrationSource}, {@link MigrationDestination}, {@link LocalHandoff} and
 * {@link RamPrecopy} over real UNIX sockets gets a {@link MigrationPeerException} naming the phase
 * and the fault for a peer that closed its end, vanished under a write, or stalled; never a raw
 * I/O exception.
 */
class PeerFailureTest {
    /** Short: the stalled cases wait this long, the event they wait for is the deadline itself. */
    private static final MigrationDeadlines SHORT = MigrationDeadlines.uniform(Duration.ofMillis(300));

    private static MigrationSource source(UnixSocketChannel channel) {
        return new MigrationSource(new MigrationStreamWriter(channel),
                List.of(new FixtureSection<>(1, "virtio", VirtioState.class, Fixtures.virtio())));
    }

    private static MigrationDestination destination(List<String> switchovers) {
        return new MigrationDestination(List.of(new FixtureSection<>(1, "virtio", VirtioState.class, Fixtures.virtio())),
                switchover -> switchovers.add("started"));
    }

    @Test
    void aSourceWhoseDestinationClosedFailsInSetupWithABrokenPipe() throws Exception {
        try (UnixSocket.Pair pair = UnixSocket.pair()) {
            pair.second().close();
            MigrationSource source = source(new UnixSocketChannel(pair.first(), SHORT));
            source.setPeer("the destination under test");
            MigrationPeerException e = assertThrows(MigrationPeerException.class, source::setup);
            assertEquals(MigrationPhase.SETUP, e.phase(), e.getMessage());
            assertEquals(Fault.BROKEN_PIPE, e.fault(), e.getMessage());
            assertEquals("the destination under test", e.peer());
            assertTrue(e.guestStaysAtSource());
        }
    }

    @Test
    void aSourceWhoseDestinationClosedAfterTheSetupFailsInStopAndCopy() throws Exception {
        try (UnixSocket.Pair pair = UnixSocket.pair()) {
            MigrationSource source = source(new UnixSocketChannel(pair.first(), SHORT));
            source.setup();
            pair.second().close();
            MigrationPeerException e = assertThrows(MigrationPeerException.class,
                    () -> source.stopAndCopy(() -> new FinalPositions(List.of())));
            assertEquals(MigrationPhase.STOP_AND_COPY, e.phase(), e.getMessage());
            assertTrue(e.fault() == Fault.BROKEN_PIPE || e.fault() == Fault.RESET, e.getMessage());
        }
    }

    @Test
    void aDestinationWhoseSourceClosedAfterTheSetupFailsInPrecopyAndStartsNothing() throws Exception {
        try (UnixSocket.Pair pair = UnixSocket.pair()) {
            source(new UnixSocketChannel(pair.first(), SHORT)).setup();
            pair.first().close(); // the source died during precopy
            List<String> switchovers = new ArrayList<>();
            MigrationDestination destination = destination(switchovers);
            MigrationPeerException e = assertThrows(MigrationPeerException.class,
                    () -> destination.receive(destination.reader(new UnixSocketChannel(pair.second(), SHORT))));
            assertEquals(MigrationPhase.PRECOPY, e.phase(), e.getMessage());
            assertEquals(Fault.CLOSED, e.fault(), e.getMessage());
            assertInstanceOf(MigrationStreamException.class, e.getCause(), "the truncation, with its offset");
            assertEquals(List.of(), switchovers);
        }
    }

    @Test
    void aDestinationWhoseSourceStalledTimesOutInPrecopy() throws Exception {
        try (UnixSocket.Pair pair = UnixSocket.pair()) {
            source(new UnixSocketChannel(pair.first(), SHORT)).setup(); // then silence: the source is stopped
            List<String> switchovers = new ArrayList<>();
            MigrationDestination destination = destination(switchovers);
            MigrationPeerException e = assertThrows(MigrationPeerException.class,
                    () -> destination.receive(destination.reader(new UnixSocketChannel(pair.second(), SHORT))));
            assertEquals(MigrationPhase.PRECOPY, e.phase(), e.getMessage());
            assertEquals(Fault.TIMEOUT, e.fault(), e.getMessage());
            assertEquals(List.of(), switchovers);
        }
    }

    @Test
    void aSourceWhoseDestinationClosesOrStallsBeforeItsAnswerFailsInTheAcknowledgement() throws Exception {
        for (boolean closes : new boolean[] {true, false}) {
            try (UnixSocket.Pair pair = UnixSocket.pair()) {
                UnixSocketChannel channel = new UnixSocketChannel(pair.first(), SHORT);
                MigrationSource source = source(channel);
                source.setup();
                source.stopAndCopy(() -> new FinalPositions(List.of()));
                if (closes) {
                    pair.second().close();
                }
                MigrationPeerException e = assertThrows(MigrationPeerException.class,
                        () -> source.awaitAcknowledgement(new MigrationStreamReader(channel, Map.of())));
                assertEquals(MigrationPhase.ACKNOWLEDGEMENT, e.phase(), e.getMessage());
                if (closes) {
                    // closed with the stream unread in its receive queue: the kernel resets the connection
                    assertTrue(e.fault() == Fault.RESET || e.fault() == Fault.CLOSED, e.getMessage());
                } else {
                    assertEquals(Fault.TIMEOUT, e.fault(), e.getMessage());
                }
                assertTrue(e.guestStaysAtSource());
            }
        }
    }

    @Test
    void aDestinationWhoseSourceVanishedCannotAcknowledge() throws Exception {
        try (UnixSocket.Pair pair = UnixSocket.pair()) {
            pair.first().close();
            MigrationPeerException e = assertThrows(MigrationPeerException.class,
                    () -> MigrationDestination.acknowledgeFailure(new MigrationStreamWriter(
                            new UnixSocketChannel(pair.second(), SHORT)), new MigrationException("no")));
            assertEquals(MigrationPhase.ACKNOWLEDGEMENT, e.phase(), e.getMessage());
            assertEquals(Fault.BROKEN_PIPE, e.fault(), e.getMessage());
        }
    }

    @Test
    void theHandoffNamesASourceThatClosedOrStalledAndADestinationThatVanished() throws Exception {
        try (UnixSocket.Pair pair = UnixSocket.pair()) {
            pair.first().close();
            MigrationPeerException e = assertThrows(MigrationPeerException.class,
                    () -> LocalHandoff.receive(pair.second(), SHORT.handoff()));
            assertEquals(MigrationPhase.HANDOFF, e.phase(), e.getMessage());
            assertEquals(Fault.CLOSED, e.fault(), e.getMessage());
        }
        try (UnixSocket.Pair pair = UnixSocket.pair()) {
            MigrationPeerException e = assertThrows(MigrationPeerException.class,
                    () -> LocalHandoff.receive(pair.second(), SHORT.handoff()));
            assertEquals(Fault.TIMEOUT, e.fault(), e.getMessage());
        }
        try (UnixSocket.Pair pair = UnixSocket.pair();
                MemfdGuestMemory memory = MemfdGuestMemory.create("guest",
                        List.of(new MemfdGuestMemory.RegionSpec(0, 1 << 20)))) {
            pair.second().close();
            BackendTransfer transfer = new BackendTransfer(BackendTransfer.KIND_TAP, "none", 12,
                    List.of(memory.memfdRegions().get(0).fd()));
            MigrationPeerException e = assertThrows(MigrationPeerException.class,
                    () -> LocalHandoff.send(pair.first(), memory, transfer));
            assertEquals(MigrationPhase.HANDOFF, e.phase(), e.getMessage());
            assertEquals(Fault.BROKEN_PIPE, e.fault(), e.getMessage());
        }
    }

    @Test
    void theRamPrecopyNamesASourceThatClosedAndADestinationThatVanished() throws Exception {
        try (UnixSocket.Pair pair = UnixSocket.pair();
                MemfdGuestMemory memory = MemfdGuestMemory.create("guest",
                        List.of(new MemfdGuestMemory.RegionSpec(0, 1 << 20)))) {
            pair.first().close();
            RamPrecopy.Destination ram = new RamPrecopy.Destination(memory, new UnixSocketChannel(pair.second(), SHORT));
            MigrationPeerException e = assertThrows(MigrationPeerException.class, ram::receiveAll);
            assertEquals(MigrationPhase.RAM_PRECOPY, e.phase(), e.getMessage());
            assertEquals(Fault.CLOSED, e.fault(), e.getMessage());
            assertFalse(e.getMessage().isBlank());
        }
        try (UnixSocket.Pair pair = UnixSocket.pair();
                MemfdGuestMemory memory = MemfdGuestMemory.create("guest",
                        List.of(new MemfdGuestMemory.RegionSpec(0, 1 << 20)));
                DirtyLog log = DirtyLog.covering(memory)) {
            pair.second().close();
            RamPrecopy.Source ram = new RamPrecopy.Source(memory, log, new UnixSocketChannel(pair.first(), SHORT));
            MigrationPeerException e = assertThrows(MigrationPeerException.class, ram::sendAll);
            assertEquals(MigrationPhase.RAM_PRECOPY, e.phase(), e.getMessage());
            assertEquals(Fault.BROKEN_PIPE, e.fault(), e.getMessage());
        }
    }
}

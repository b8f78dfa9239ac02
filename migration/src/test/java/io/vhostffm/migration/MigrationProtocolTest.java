package io.vhostffm.migration;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.vhostffm.migration.fixture.Fixtures;
import io.vhostffm.migration.fixture.Fixtures.FixtureSection;
import io.vhostffm.migration.fixture.Fixtures.MacTable;
import io.vhostffm.migration.fixture.Fixtures.NetState;
import io.vhostffm.migration.fixture.Fixtures.NetStateV2;
import io.vhostffm.migration.fixture.Fixtures.RxMode;
import io.vhostffm.migration.fixture.Fixtures.VirtioState;
import io.vhostffm.migration.schema.StateSchema;
import io.vhostffm.migration.stream.MigrationStreamReader;
import io.vhostffm.migration.stream.MigrationStreamWriter;
import io.vhostffm.migration.stream.StreamFormat;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.channels.Channels;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class MigrationProtocolTest {
    private static String compilerSettle;

    /**
     * Thousands of receptions here (every flipped byte, every truncation): the wait for the
     * rehearsals' compilations, which only matters for a downtime, is turned off.
     */
    @BeforeAll
    static void noCompilerSettle() {
        compilerSettle = System.setProperty(MigrationDestination.COMPILER_SETTLE_PROPERTY, "0");
    }

    @AfterAll
    static void restoreCompilerSettle() {
        if (compilerSettle == null) {
            System.clearProperty(MigrationDestination.COMPILER_SETTLE_PROPERTY);
        } else {
            System.setProperty(MigrationDestination.COMPILER_SETTLE_PROPERTY, compilerSettle);
        }
    }

    /** A source device: two sections, the state settable between phases. */
    static final class SourceDevice {
        final FixtureSection<VirtioState> virtio = new FixtureSection<>(1, "virtio", VirtioState.class,
                Fixtures.virtio());
        final FixtureSection<NetState> net = new FixtureSection<>(2, "net", NetState.class, Fixtures.net());
        final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        final MigrationSource source = new MigrationSource(MigrationStreamWriter.over(bytes), List.of(virtio, net));
    }

    /** A destination device that records its switchover. */
    static final class DestinationDevice {
        final FixtureSection<VirtioState> virtio = new FixtureSection<>(1, "virtio", VirtioState.class, null);
        final FixtureSection<NetState> net = new FixtureSection<>(2, "net", NetState.class, null);
        final List<Switchover> switchovers = new ArrayList<>();
        RuntimeException failSwitchover;
        final MigrationDestination destination = new MigrationDestination(List.of(virtio, net), s -> {
            if (failSwitchover != null) {
                throw failSwitchover;
            }
            switchovers.add(s);
        });

        ReceivedMigration receive(byte[] stream) throws MigrationException {
            return destination.receive(destination.reader(Channels.newChannel(new ByteArrayInputStream(stream))));
        }
    }

    static NetState withMacTable(NetState n, byte[] entries) {
        return new NetState(n.mac(), new MacTable(false, true, entries), n.status(), n.rxMode(), n.vlans(),
                n.guestOffloads(), n.multiqueue(), n.queuePairs(), n.rss(), n.pendingTx(), n.tap());
    }

    static NetState withRxMode(NetState n, RxMode mode) {
        return new NetState(n.mac(), n.macTable(), n.status(), mode, n.vlans(), n.guestOffloads(), n.multiqueue(),
                n.queuePairs(), n.rss(), n.pendingTx(), n.tap());
    }

    /** setup; a precopy delta on net; a switchover delta on net's rx mode. */
    static byte[] fullStreamWithDeltas() throws Exception {
        SourceDevice src = new SourceDevice();
        src.source.setup();
        src.net.set(withMacTable(Fixtures.net(), new byte[12]));
        src.source.sendPrecopyDelta();
        src.net.set(withRxMode(src.net.capture(), RxMode.PROMISC));
        src.source.stopAndCopy(() -> Fixtures.indices(1000));
        return src.bytes.toByteArray();
    }

    @Test
    void noDeltaSwitchoverCarriesOnlyTheIndices() throws Exception {
        SourceDevice src = new SourceDevice();
        src.source.setup();
        assertEquals(List.of(), src.source.sendPrecopyDelta(), "nothing changed, nothing sent");
        long afterSetup = src.bytes.size();
        List<Integer> sent = src.source.stopAndCopy(() -> Fixtures.indices(0xfffe));
        assertEquals(List.of(), sent);
        MigrationReport report = src.source.report();
        assertTrue(report.noDeltaAtSwitchover());
        assertEquals(src.bytes.size() - afterSetup, report.stopAndCopyBytes());
        assertEquals(src.bytes.size(), report.totalBytes());

        DestinationDevice dst = new DestinationDevice();
        ReceivedMigration received = dst.receive(src.bytes.toByteArray());
        assertTrue(StateSchema.of(VirtioState.class).unchanged(Fixtures.virtio(), dst.virtio.loaded));
        assertTrue(StateSchema.of(NetState.class).unchanged(Fixtures.net(), (NetState) received.earlyState().get(2)));
        assertEquals(List.of("early"), dst.net.log);
        assertEquals(List.of(), received.precopyDeltas());
        assertEquals(1, dst.switchovers.size());
        Switchover s = dst.switchovers.getFirst();
        assertSame(s, received.switchover());
        assertTrue(s.noDelta());
        assertTrue(s.quickstartPossible());
        assertEquals(Fixtures.indices(0xfffe), s.finalPositions());
        assertEquals(Map.of(), s.changedSinceEarly());
        assertEquals(src.bytes.size(), received.bytesReceived());
    }

    /**
     * The destination rehearses its switchover's read during the early load, through the
     * stream reader (each rehearsal reads a queue-indices frame and an end marker, as the
     * recording of the reader's frame events shows), as often as the property says and not at
     * all at 0; the real switchover after it is received as without.
     */
    @Test
    void theSwitchoverReadIsRehearsedDuringTheEarlyLoadAsOftenAsTheProperty() throws Exception {
        String was = System.getProperty(MigrationDestination.REHEARSALS_PROPERTY);
        try {
            for (int rehearsals : new int[] {3, 0}) {
                System.setProperty(MigrationDestination.REHEARSALS_PROPERTY, Integer.toString(rehearsals));
                SourceDevice src = new SourceDevice();
                src.source.setup();
                src.source.stopAndCopy(() -> Fixtures.indices(7));
                DestinationDevice dst = new DestinationDevice();
                java.nio.file.Path file = java.nio.file.Files.createTempFile("rehearsal", ".jfr");
                try (jdk.jfr.Recording recording = new jdk.jfr.Recording()) {
                    recording.enable("io.vhostffm.StreamFrame").withoutThreshold();
                    recording.enable("io.vhostffm.SwitchoverStep").withoutThreshold();
                    recording.start();
                    ReceivedMigration received = dst.receive(src.bytes.toByteArray());
                    recording.stop();
                    recording.dump(file);
                    assertEquals(Fixtures.indices(7), received.switchover().finalPositions());
                }
                long queueIndices = 0;
                long ends = 0;
                long streamSteps = 0;
                for (jdk.jfr.consumer.RecordedEvent e : jdk.jfr.consumer.RecordingFile.readAllEvents(file)) {
                    if (e.getEventType().getName().equals("io.vhostffm.SwitchoverStep")) {
                        streamSteps += SwitchoverSteps.STREAM.equals(e.getString("step")) ? 1 : 0;
                        continue;
                    }
                    if (!e.getEventType().getName().equals("io.vhostffm.StreamFrame") || !"read".equals(e.getString("direction"))) {
                        continue;
                    }
                    int id = e.getInt("sectionId");
                    queueIndices += id == StreamFormat.QUEUE_INDICES ? 1 : 0;
                    ends += id == StreamFormat.END_OF_STREAM ? 1 : 0;
                }
                java.nio.file.Files.delete(file);
                assertEquals(rehearsals + 1, queueIndices, "queue-indices frames read with " + rehearsals + " rehearsals");
                assertEquals(rehearsals + 1, ends, "end markers read with " + rehearsals + " rehearsals");
                assertEquals(1, dst.switchovers.size());
                // The rehearsals mark their steps through the same code, but a recording shows
                // the real switchover's only.
                assertEquals(1, streamSteps, "stream steps recorded with " + rehearsals + " rehearsals");
            }
        } finally {
            if (was == null) {
                System.clearProperty(MigrationDestination.REHEARSALS_PROPERTY);
            } else {
                System.setProperty(MigrationDestination.REHEARSALS_PROPERTY, was);
            }
        }
    }

    /**
     * With a rehearsal loop, each rehearsal writes its stream into the loop and reads all of it
     * back through the loop's reader (here a {@code UnixSocketChannel} over a socket pair, the
     * demo's); the loop is opened once, before the rehearsals, and closed after them, and the
     * real switchover is received as without.
     */
    @Test
    void theSwitchoverReadIsRehearsedThroughTheLoopItIsGiven() throws Exception {
        String was = System.getProperty(MigrationDestination.REHEARSALS_PROPERTY);
        try {
            System.setProperty(MigrationDestination.REHEARSALS_PROPERTY, "3");
            SourceDevice src = new SourceDevice();
            src.source.setup();
            src.source.stopAndCopy(() -> Fixtures.indices(7));
            DestinationDevice dst = new DestinationDevice();
            long[] counts = new long[4]; // opened, closed, bytes written, bytes read
            dst.destination.setRehearsalLoop(() -> {
                RehearsalLoop socketPair = io.vhostffm.migration.net.UnixSocketChannel.loop();
                counts[0]++;
                return new RehearsalLoop() {
                    @Override
                    public java.nio.channels.WritableByteChannel writer() {
                        return new java.nio.channels.WritableByteChannel() {
                            public int write(java.nio.ByteBuffer b) throws java.io.IOException {
                                int n = socketPair.writer().write(b);
                                counts[2] += n;
                                return n;
                            }
                            public boolean isOpen() {
                                return true;
                            }
                            public void close() {}
                        };
                    }

                    @Override
                    public java.nio.channels.ReadableByteChannel reader() {
                        return new java.nio.channels.ReadableByteChannel() {
                            public int read(java.nio.ByteBuffer b) throws java.io.IOException {
                                int n = socketPair.reader().read(b);
                                counts[3] += Math.max(0, n);
                                return n;
                            }
                            public boolean isOpen() {
                                return true;
                            }
                            public void close() {}
                        };
                    }

                    @Override
                    public void close() {
                        counts[1]++;
                        socketPair.close();
                    }
                };
            });
            ReceivedMigration received = dst.receive(src.bytes.toByteArray());
            assertEquals(Fixtures.indices(7), received.switchover().finalPositions());
            assertEquals(1, counts[0], "loops opened");
            assertEquals(1, counts[1], "loops closed");
            assertTrue(counts[2] > 0 && counts[2] % 3 == 0, () -> "bytes written into the loop: " + counts[2]);
            assertEquals(counts[2], counts[3], "every byte written into the loop was read back");
            assertEquals(1, dst.switchovers.size());
        } finally {
            if (was == null) {
                System.clearProperty(MigrationDestination.REHEARSALS_PROPERTY);
            } else {
                System.setProperty(MigrationDestination.REHEARSALS_PROPERTY, was);
            }
        }
    }

    @Test
    void aPrecopyDeltaIsSentAtOnceAndTheSwitchoverStaysDeltaFree() throws Exception {
        SourceDevice src = new SourceDevice();
        src.source.setup();
        src.net.set(withMacTable(Fixtures.net(), new byte[] {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}));
        assertEquals(List.of(2), src.source.sendPrecopyDelta());
        assertEquals(List.of(), src.source.sendPrecopyDelta(), "the snapshot moved on");
        assertEquals(List.of(), src.source.stopAndCopy(() -> Fixtures.indices(5)));
        assertEquals(1, src.source.report().precopyDeltaMessages());

        DestinationDevice dst = new DestinationDevice();
        ReceivedMigration received = dst.receive(src.bytes.toByteArray());
        assertEquals(1, received.precopyDeltas().size());
        SectionDelta d = received.precopyDeltas().getFirst();
        assertEquals(2, d.sectionId());
        assertFalse(d.atSwitchover());
        assertEquals(List.of("macTable.multicastOverflow", "macTable.entries"), d.changedFields());
        assertEquals(List.of("early", "precopy [macTable.multicastOverflow, macTable.entries]"), dst.net.log);
        assertEquals(List.of("early"), dst.virtio.log);
        Switchover s = received.switchover();
        assertTrue(s.noDelta());
        assertTrue(s.quickstartPossible(), "the precopy delta was applied before the pause");
        assertEquals(Map.of(2, List.of("macTable.multicastOverflow", "macTable.entries")), s.changedSinceEarly());
    }

    @Test
    void theDestinationAppliesAPrecopyDeltaWhileTheGuestStillRunsAtTheSource() throws Exception {
        // Source and destination stream through a pipe concurrently: the source does not begin
        // stop-and-copy until the destination has applied the precopy delta, which proves the
        // delta travels and lands during precopy, not with the switchover.
        java.nio.channels.Pipe pipe = java.nio.channels.Pipe.open();
        java.util.concurrent.CountDownLatch applied = new java.util.concurrent.CountDownLatch(1);
        List<String> calls = java.util.Collections.synchronizedList(new ArrayList<>());
        MigrationDestination destination = new MigrationDestination(List.of(
                DeviceStateSection.onDestination(2, "net", NetState.class, early -> calls.add("early"),
                        (previous, now, changed, atSwitchover) -> {
                            calls.add((atSwitchover ? "switchover " : "precopy ") + changed);
                            applied.countDown();
                        })),
                s -> calls.add("switchover noDelta=" + s.noDelta()));
        var received = new java.util.concurrent.CompletableFuture<ReceivedMigration>();
        Thread receiver = Thread.ofPlatform().start(() -> {
            try {
                received.complete(destination.receive(destination.reader(pipe.source())));
            } catch (Throwable t) {
                received.completeExceptionally(t);
            }
        });
        NetState[] live = {Fixtures.net()};
        MigrationSource source = new MigrationSource(new MigrationStreamWriter(pipe.sink()), List.of(
                DeviceStateSection.onSource(2, "net", NetState.class, () -> live[0])));
        source.setup();
        live[0] = withMacTable(live[0], new byte[] {1, 0, 0x5e, 0, 0, 0x42});
        assertEquals(List.of(2), source.sendPrecopyDelta());
        assertTrue(applied.await(60, java.util.concurrent.TimeUnit.SECONDS), "the precopy delta was not applied");
        assertEquals(List.of("early", "precopy [macTable.multicastOverflow, macTable.entries]"), List.copyOf(calls));
        assertEquals(List.of(), source.stopAndCopy(() -> Fixtures.indices(2)));
        ReceivedMigration r = received.get(60, java.util.concurrent.TimeUnit.SECONDS);
        receiver.join();
        assertTrue(r.switchover().quickstartPossible());
        assertEquals("switchover noDelta=true", calls.getLast());
        pipe.sink().close();
        pipe.source().close();
    }

    @Test
    void aStopAndCopyRehearsalSendsAndRemembersNothing() throws Exception {
        ByteArrayOutputStream wire = new ByteArrayOutputStream();
        NetState[] live = {Fixtures.net()};
        MigrationSource source = new MigrationSource(MigrationStreamWriter.over(wire), List.of(
                DeviceStateSection.onSource(2, "net", NetState.class, () -> live[0])));
        assertThrows(IllegalStateException.class, () -> source.rehearseStopAndCopy(1, Fixtures.indices(2)),
                "before the setup");
        source.setup();
        int afterSetup = wire.size();
        live[0] = withMacTable(live[0], new byte[] {1, 0, 0x5e, 0, 0, 0x42}); // changed: the rehearsal encodes it
        source.rehearseStopAndCopy(50, Fixtures.indices(2));
        assertEquals(afterSetup, wire.size(), "a rehearsal wrote to the stream");
        // Nothing was remembered either: the change still goes out, at stop-and-copy here.
        assertEquals(List.of(2), source.stopAndCopy(() -> Fixtures.indices(2)));
        assertThrows(IllegalStateException.class, () -> source.rehearseStopAndCopy(1, Fixtures.indices(2)),
                "after the stop-and-copy");
    }

    @Test
    void aSwitchoverDeltaCarriesTheChangedSectionsOnly() throws Exception {
        SourceDevice src = new SourceDevice();
        src.source.setup();
        src.net.set(withRxMode(Fixtures.net(), RxMode.ALLUNI));
        assertEquals(List.of(2), src.source.stopAndCopy(() -> Fixtures.indices(7)));
        assertFalse(src.source.report().noDeltaAtSwitchover());

        DestinationDevice dst = new DestinationDevice();
        ReceivedMigration received = dst.receive(src.bytes.toByteArray());
        Switchover s = received.switchover();
        assertFalse(s.noDelta());
        assertFalse(s.quickstartPossible());
        assertEquals(1, s.switchoverDeltas().size());
        assertEquals(List.of("rxMode"), s.switchoverDeltas().getFirst().changedFields());
        assertTrue(s.switchoverDeltas().getFirst().atSwitchover());
        assertEquals(List.of("early", "switchover [rxMode]"), dst.net.log);
        assertEquals(RxMode.ALLUNI, ((NetState) s.finalState().get(2)).rxMode());
        assertEquals(Fixtures.indices(7), s.finalPositions());
    }

    @Test
    void sectionsCanBeBuiltFromFunctions() throws Exception {
        NetState[] live = {Fixtures.net()};
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        MigrationSource source = new MigrationSource(MigrationStreamWriter.over(bytes), List.of(
                DeviceStateSection.onSource(2, "net", NetState.class, () -> live[0])));
        source.setup();
        live[0] = withRxMode(live[0], RxMode.ALLMULTI);
        assertEquals(List.of(2), source.sendPrecopyDelta());
        source.stopAndCopy(() -> Fixtures.indices(9));

        List<String> calls = new ArrayList<>();
        List<FinalPositions> started = new ArrayList<>();
        MigrationDestination destination = new MigrationDestination(List.of(
                DeviceStateSection.onDestination(2, "net", NetState.class,
                        early -> calls.add("early " + early.rxMode()),
                        (previous, now, changed, atSwitchover) -> calls.add(previous.rxMode() + "->" + now.rxMode()
                                + " " + changed))),
                s -> started.add(s.finalPositions()));
        destination.receive(destination.reader(Channels.newChannel(new ByteArrayInputStream(bytes.toByteArray()))));
        assertEquals(List.of("early NORMAL", "NORMAL->ALLMULTI [rxMode]"), calls);
        assertEquals(List.of(Fixtures.indices(9)), started);
        assertThrows(UnsupportedOperationException.class,
                () -> DeviceStateSection.onSource(2, "net", NetState.class, () -> live[0]).loadEarly(live[0]));
    }

    @Test
    void earlyFailuresAreNotFatalButRuleOutTheQuickstart() throws Exception {
        SourceDevice src = new SourceDevice();
        src.source.setup();
        src.source.stopAndCopy(() -> Fixtures.indices(1));
        DestinationDevice dst = new DestinationDevice();
        dst.virtio.failEarlyLoad = new IllegalStateException("VHOST_SET_OWNER: EBUSY");
        ReceivedMigration received = dst.receive(src.bytes.toByteArray());
        assertTrue(received.switchover().noDelta());
        assertFalse(received.switchover().quickstartPossible());
        assertEquals(1, received.switchover().earlyFailures().size());
        assertTrue(received.switchover().earlyFailures().getFirst().contains("EBUSY"));
    }

    @Test
    void aFailedPrecopyApplyIsRecordedAFailedSwitchoverApplyIsFatal() throws Exception {
        SourceDevice src = new SourceDevice();
        src.source.setup();
        src.net.set(withRxMode(Fixtures.net(), RxMode.PROMISC));
        src.source.sendPrecopyDelta();
        src.source.stopAndCopy(() -> Fixtures.indices(1));
        DestinationDevice dst = new DestinationDevice();
        dst.net.failApply = new IllegalStateException("rx mode refused");
        ReceivedMigration received = dst.receive(src.bytes.toByteArray());
        assertTrue(received.switchover().noDelta());
        assertFalse(received.switchover().quickstartPossible(), "the early-started device missed a delta");
        assertTrue(received.switchover().earlyFailures().getFirst().contains("rx mode refused"));

        SourceDevice late = new SourceDevice();
        late.source.setup();
        late.net.set(withRxMode(Fixtures.net(), RxMode.PROMISC));
        late.source.stopAndCopy(() -> Fixtures.indices(1));
        DestinationDevice dst2 = new DestinationDevice();
        dst2.net.failApply = new IllegalStateException("rx mode refused");
        MigrationException e = assertThrows(MigrationException.class, () -> dst2.receive(late.bytes.toByteArray()));
        assertTrue(e.getMessage().contains("switchover delta of section 'net' failed"), e.getMessage());
        assertEquals(List.of(), dst2.switchovers, "the device was not started");
    }

    @Test
    void aFailedSwitchoverIsReportedBackAndTheSourceKeepsTheGuest() throws Exception {
        SourceDevice src = new SourceDevice();
        src.source.setup();
        src.source.stopAndCopy(() -> Fixtures.indices(1));
        DestinationDevice dst = new DestinationDevice();
        dst.failSwitchover = new IllegalStateException("TUNSETIFF failed");
        MigrationException e = assertThrows(MigrationException.class, () -> dst.receive(src.bytes.toByteArray()));
        ByteArrayOutputStream back = new ByteArrayOutputStream();
        MigrationDestination.acknowledgeFailure(MigrationStreamWriter.over(back), e);
        MigrationException atSource = assertThrows(MigrationException.class, () -> src.source.awaitAcknowledgement(
                MigrationStreamReader.over(new ByteArrayInputStream(back.toByteArray()), Map.of())));
        assertTrue(atSource.getMessage().contains("TUNSETIFF"), atSource.getMessage());
    }

    @Test
    void theAcknowledgementCompletesTheReport() throws Exception {
        SourceDevice src = new SourceDevice();
        src.source.setup();
        src.source.stopAndCopy(() -> Fixtures.indices(1));
        ReceivedMigration received = new DestinationDevice().receive(src.bytes.toByteArray());
        ByteArrayOutputStream back = new ByteArrayOutputStream();
        MigrationDestination.acknowledge(MigrationStreamWriter.over(back), received);
        src.source.awaitAcknowledgement(MigrationStreamReader.over(new ByteArrayInputStream(back.toByteArray()),
                Map.of()));
        MigrationReport r = src.source.report();
        assertEquals(received.switchoverNanos(), r.destinationSwitchoverNanos());
        assertEquals(received.earlyLoadNanos(), r.destinationEarlyLoadNanos());
        assertTrue(r.toString().contains("destination switchover"), r.toString());
    }

    @Test
    void aBackendStopFailureSendsNothing() throws Exception {
        SourceDevice src = new SourceDevice();
        src.source.setup();
        int before = src.bytes.size();
        MigrationException e = assertThrows(MigrationException.class, () -> src.source.stopAndCopy(() -> {
            throw new java.io.IOException("VHOST_GET_VRING_BASE: EFAULT");
        }));
        assertTrue(e.getMessage().contains("EFAULT"));
        assertEquals(before, src.bytes.size());
    }

    @Test
    void anIoFailureEndsTheSourcesMigration() throws Exception {
        FixtureSection<VirtioState> virtio = new FixtureSection<>(1, "virtio", VirtioState.class, Fixtures.virtio());
        FixtureSection<NetState> net = new FixtureSection<>(2, "net", NetState.class, Fixtures.net());
        java.io.OutputStream broken = new java.io.OutputStream() {
            int written;

            @Override
            public void write(int b) throws java.io.IOException {
                write(new byte[] {(byte) b}, 0, 1);
            }

            @Override
            public void write(byte[] b, int off, int len) throws java.io.IOException {
                written += len;
                if (written > 100) {
                    throw new java.io.IOException("connection reset");
                }
            }
        };
        MigrationSource source = new MigrationSource(MigrationStreamWriter.over(broken), List.of(virtio, net));
        // the migration module names it: the destination or the connection failed during the setup
        MigrationPeerException p = assertThrows(MigrationPeerException.class, source::setup);
        assertEquals(MigrationPhase.SETUP, p.phase(), p.getMessage());
        assertEquals(MigrationPeerException.Fault.IO, p.fault(), p.getMessage());
        assertThrows(IllegalStateException.class, source::sendPrecopyDelta);
        assertThrows(IllegalStateException.class, () -> source.stopAndCopy(() -> Fixtures.indices(1)));
    }

    @Test
    void aSchemaMismatchIsCaughtByTheManifest() throws Exception {
        FixtureSection<NetStateV2> net2 = new FixtureSection<>(2, "net", NetStateV2.class, Fixtures.netV2());
        FixtureSection<VirtioState> virtio = new FixtureSection<>(1, "virtio", VirtioState.class, Fixtures.virtio());
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        MigrationSource source = new MigrationSource(MigrationStreamWriter.over(bytes), List.of(virtio, net2));
        source.setup();
        source.stopAndCopy(() -> Fixtures.indices(1));
        DestinationDevice dst = new DestinationDevice();
        MigrationStreamException e = assertThrows(MigrationStreamException.class, () -> dst.receive(bytes.toByteArray()));
        assertEquals(StreamFormat.MANIFEST, e.sectionId());
        assertEquals(StreamFormat.HEADER_SIZE, e.offset());
        assertTrue(e.getMessage().contains("'net' has another shape"), e.getMessage());
        assertEquals(List.of(), dst.net.log, "nothing loaded");
    }

    /** Frames written by a fresh writer, without its stream header, to splice after a real setup. */
    static byte[] framesOnly(StreamBody body) throws Exception {
        ByteArrayOutputStream scratch = new ByteArrayOutputStream();
        MigrationStreamWriter w = MigrationStreamWriter.over(scratch);
        w.writeHeader();
        body.write(w);
        return Arrays.copyOfRange(scratch.toByteArray(), StreamFormat.HEADER_SIZE, scratch.size());
    }

    @Test
    void theManifestMustListExactlyTheDestinationsSections() throws Exception {
        // a source with only the virtio section
        ByteArrayOutputStream onlyVirtio = new ByteArrayOutputStream();
        MigrationSource one = new MigrationSource(MigrationStreamWriter.over(onlyVirtio), List.of(
                DeviceStateSection.onSource(1, "virtio", VirtioState.class, Fixtures::virtio)));
        one.setup();
        MigrationStreamException e = assertThrows(MigrationStreamException.class,
                () -> new DestinationDevice().receive(onlyVirtio.toByteArray()));
        assertTrue(e.getMessage().contains("does not send 0x0002 'net'"), e.getMessage());

        // a source that calls section 1 by another name
        ByteArrayOutputStream renamed = new ByteArrayOutputStream();
        MigrationSource other = new MigrationSource(MigrationStreamWriter.over(renamed), List.of(
                DeviceStateSection.onSource(1, "virtio-pci", VirtioState.class, Fixtures::virtio),
                DeviceStateSection.onSource(2, "net", NetState.class, Fixtures::net)));
        other.setup();
        e = assertThrows(MigrationStreamException.class, () -> new DestinationDevice().receive(renamed.toByteArray()));
        assertTrue(e.getMessage().contains("is 'virtio-pci' at the source and 'virtio' here"), e.getMessage());
    }

    @Test
    void aPayloadThatFailsValidationNamesSectionOffsetAndField() throws Exception {
        // The net section's checksum is valid, but its rxMode ordinal is out of range.
        SourceDevice src = new SourceDevice();
        src.source.setup();
        byte[] setup = src.bytes.toByteArray();
        int manifestEnd = frameEnd(setup, StreamFormat.HEADER_SIZE);
        int virtioEnd = frameEnd(setup, manifestEnd);
        byte[] netPayload = StateSchema.of(NetState.class).encode(Fixtures.net());
        int rxModeOffset = (4 + 6) + (1 + 1 + 4 + 6) + 2; // after mac, macTable, status
        netPayload[rxModeOffset + 3] = 9;
        byte[] full = concat(Arrays.copyOf(setup, virtioEnd), framesOnly(w -> w.writeSection(2,
                StreamFormat.FLAG_INIT_STATE | StreamFormat.FLAG_END_OF_DATA, netPayload)));

        DestinationDevice dst = new DestinationDevice();
        MigrationStreamException e = assertThrows(MigrationStreamException.class, () -> dst.receive(full));
        assertEquals(2, e.sectionId());
        assertEquals("net", e.sectionName());
        assertEquals("rxMode", e.field());
        assertEquals(virtioEnd + StreamFormat.FRAME_HEADER_SIZE + rxModeOffset, e.offset());
        assertTrue(e.getMessage().contains("ordinal 9"), e.getMessage());
        assertEquals(List.of(), dst.net.log, "nothing loaded");
    }

    /** The offset just past the frame starting at {@code at}. */
    static int frameEnd(byte[] stream, int at) {
        int length = ((stream[at + 4] & 0xff) << 24) | ((stream[at + 5] & 0xff) << 16) | ((stream[at + 6] & 0xff) << 8)
                | (stream[at + 7] & 0xff);
        return at + StreamFormat.FRAME_HEADER_SIZE + length + StreamFormat.CHECKSUM_SIZE;
    }

    @Test
    void outOfOrderStreamsAreProtocolViolations() throws Exception {
        byte[] virtio = StateSchema.of(VirtioState.class).encode(Fixtures.virtio());
        assertViolation(w -> w.writeSection(1, StreamFormat.FLAG_INIT_STATE, virtio), "must begin with the manifest");

        SourceDevice src = new SourceDevice();
        src.source.setup();
        byte[] setup = src.bytes.toByteArray();
        int manifestEnd = frameEnd(setup, StreamFormat.HEADER_SIZE);

        // setup ending without the net section
        byte[] early = concat(Arrays.copyOf(setup, manifestEnd), framesOnly(w -> w.writeSection(1,
                StreamFormat.FLAG_INIT_STATE | StreamFormat.FLAG_END_OF_DATA, virtio)));
        MigrationStreamException e = assertThrows(MigrationStreamException.class,
                () -> new DestinationDevice().receive(early));
        assertTrue(e.getMessage().contains("without the state of 0x0002 'net'"), e.getMessage());
        assertEquals(1, e.sectionId());
        assertEquals(manifestEnd, e.offset());

        // a section sent twice in the setup
        byte[] twice = concat(Arrays.copyOf(setup, manifestEnd), framesOnly(w -> {
            w.writeSection(1, StreamFormat.FLAG_INIT_STATE, virtio);
            w.writeSection(1, StreamFormat.FLAG_INIT_STATE, virtio);
        }));
        e = assertThrows(MigrationStreamException.class, () -> new DestinationDevice().receive(twice));
        assertTrue(e.getMessage().contains("twice"), e.getMessage());

        // an INIT_STATE after the setup, a control section flagged as state, a switchover inside a delta
        byte[] lateInit = concat(setup, framesOnly(w -> w.writeSection(1, StreamFormat.FLAG_INIT_STATE, virtio)));
        e = assertThrows(MigrationStreamException.class, () -> new DestinationDevice().receive(lateInit));
        assertTrue(e.getMessage().contains("precopy allows only"), e.getMessage());
        assertEquals(setup.length, e.offset());

        byte[] unfinished = concat(setup, framesOnly(w -> {
            w.writeSection(1, StreamFormat.FLAG_DELTA, virtio);
            w.writeSection(StreamFormat.QUEUE_INDICES, StreamFormat.FLAG_SWITCHOVER | StreamFormat.FLAG_END_OF_DATA
                    | StreamFormat.FLAG_NO_DATA, StateSchema.of(FinalPositions.class).encode(Fixtures.indices(1)));
        }));
        e = assertThrows(MigrationStreamException.class, () -> new DestinationDevice().receive(unfinished));
        assertTrue(e.getMessage().contains("unfinished precopy delta"), e.getMessage());

        byte[] ackInStream = concat(setup, framesOnly(w -> w.writeSection(StreamFormat.ACKNOWLEDGEMENT,
                StreamFormat.FLAG_END_OF_DATA, new byte[0])));
        e = assertThrows(MigrationStreamException.class, () -> new DestinationDevice().receive(ackInStream));
        assertEquals(StreamFormat.ACKNOWLEDGEMENT, e.sectionId());

        // something after the indices other than the end marker
        byte[] noEnd = concat(setup, framesOnly(w -> {
            w.writeSection(StreamFormat.QUEUE_INDICES, StreamFormat.FLAG_SWITCHOVER | StreamFormat.FLAG_END_OF_DATA
                    | StreamFormat.FLAG_NO_DATA, StateSchema.of(FinalPositions.class).encode(Fixtures.indices(1)));
            w.writeSection(1, StreamFormat.FLAG_DELTA, virtio);
        }));
        DestinationDevice dst = new DestinationDevice();
        e = assertThrows(MigrationStreamException.class, () -> dst.receive(noEnd));
        assertTrue(e.getMessage().contains("expected the end marker"), e.getMessage());
        assertEquals(List.of(), dst.switchovers);
    }

    interface StreamBody {
        void write(MigrationStreamWriter w) throws Exception;
    }

    static void assertViolation(StreamBody body, String expected) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        MigrationStreamWriter w = MigrationStreamWriter.over(out);
        body.write(w);
        w.writeEndOfStream();
        MigrationStreamException e = assertThrows(MigrationStreamException.class,
                () -> new DestinationDevice().receive(out.toByteArray()));
        assertTrue(e.getMessage().contains(expected), e.getMessage());
    }

    @Test
    void noDataMustMatchTheAbsenceOfSwitchoverSections() throws Exception {
        SourceDevice src = new SourceDevice();
        src.source.setup();
        byte[] setup = src.bytes.toByteArray();
        byte[] indices = StateSchema.of(FinalPositions.class).encode(Fixtures.indices(3));
        // a switchover with a delta section but NO_DATA on the indices
        ByteArrayOutputStream scratch = new ByteArrayOutputStream();
        MigrationStreamWriter sw = MigrationStreamWriter.over(scratch);
        sw.writeSection(2, StreamFormat.FLAG_DELTA | StreamFormat.FLAG_SWITCHOVER,
                StateSchema.of(NetState.class).encode(withRxMode(Fixtures.net(), RxMode.PROMISC)));
        sw.writeSection(StreamFormat.QUEUE_INDICES, StreamFormat.FLAG_SWITCHOVER | StreamFormat.FLAG_END_OF_DATA
                | StreamFormat.FLAG_NO_DATA, indices);
        sw.writeEndOfStream();
        byte[] full = concat(setup, Arrays.copyOfRange(scratch.toByteArray(), StreamFormat.HEADER_SIZE, scratch.size()));
        DestinationDevice dst = new DestinationDevice();
        MigrationStreamException e = assertThrows(MigrationStreamException.class, () -> dst.receive(full));
        assertEquals(StreamFormat.QUEUE_INDICES, e.sectionId());
        assertTrue(e.getMessage().contains("must be flagged END_OF_DATA|SWITCHOVER after 1"), e.getMessage());
        assertEquals(List.of(), dst.switchovers);
        assertEquals(List.of("early"), dst.net.log, "the switchover delta was not applied");
    }

    static byte[] concat(byte[] a, byte[] b) {
        byte[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    @Test
    void everyTruncationLeavesTheDeviceUnstarted() throws Exception {
        byte[] stream = fullStreamWithDeltas();
        new DestinationDevice().receive(stream); // the full stream is valid
        for (int len = 0; len < stream.length; len++) {
            DestinationDevice dst = new DestinationDevice();
            byte[] cut = Arrays.copyOf(stream, len);
            // The end of the channel before the end marker is the source gone: a peer failure naming
            // the phase, whose cause is the truncation with its offset.
            MigrationPeerException p = assertThrows(MigrationPeerException.class, () -> dst.receive(cut),
                    "truncated at " + len);
            assertEquals(MigrationPeerException.Fault.CLOSED, p.fault(), p.getMessage());
            assertTrue(p.guestStaysAtSource(), p.getMessage());
            MigrationStreamException e = assertInstanceOf(MigrationStreamException.class, p.getCause());
            assertEquals(len, e.offset(), e.getMessage());
            assertEquals(List.of(), dst.switchovers, "no switchover on a truncated stream");
        }
    }

    @Test
    void everyFlippedByteIsAStreamErrorAndTheDeviceStaysUnstarted() throws Exception {
        byte[] stream = fullStreamWithDeltas();
        for (int i = 0; i < stream.length; i++) {
            for (int mask : new int[] {0x01, 0x80, 0xff}) {
                byte[] bad = stream.clone();
                bad[i] ^= (byte) mask;
                DestinationDevice dst = new DestinationDevice();
                try {
                    dst.receive(bad);
                    fail("flip 0x" + Integer.toHexString(mask) + " at offset " + i + " went unnoticed");
                } catch (MigrationStreamException expected) {
                    assertTrue(expected.offset() >= 0 && expected.offset() <= stream.length);
                    assertEquals(List.of(), dst.switchovers);
                } catch (MigrationPeerException waitedForMore) {
                    // a flipped length: the reader waits for bytes the source never sends, and the
                    // channel ends first (a peer that closed); the truncation, with its offset, is the cause
                    assertEquals(MigrationPeerException.Fault.CLOSED, waitedForMore.fault());
                    MigrationStreamException cause = assertInstanceOf(MigrationStreamException.class,
                            waitedForMore.getCause());
                    assertTrue(cause.offset() >= 0 && cause.offset() <= stream.length);
                    assertEquals(List.of(), dst.switchovers);
                } catch (MigrationException | RuntimeException other) {
                    throw new AssertionError("flip at " + i + " gave " + other, other);
                }
            }
        }
    }
}

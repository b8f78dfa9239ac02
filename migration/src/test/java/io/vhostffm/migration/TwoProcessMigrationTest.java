package io.vhostffm.migration;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.migration.fixture.DestinationMain;
import io.vhostffm.migration.fixture.Fixtures;
import io.vhostffm.migration.fixture.Fixtures.FixtureSection;
import io.vhostffm.migration.fixture.Fixtures.MacTable;
import io.vhostffm.migration.fixture.Fixtures.NetState;
import io.vhostffm.migration.fixture.Fixtures.RxMode;
import io.vhostffm.migration.fixture.Fixtures.VirtioState;
import io.vhostffm.migration.schema.StateSchema;
import io.vhostffm.migration.stream.MigrationStreamReader;
import io.vhostffm.migration.stream.MigrationStreamWriter;
import java.io.File;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Source in this JVM, destination in a child JVM, over a real UNIX domain socket and over TCP
 * on 127.0.0.1: the destination must reconstruct byte for byte what the source sent, with and
 * without a delta at the switchover, and its acknowledgement must come back on the same socket.
 */
class TwoProcessMigrationTest {
    private static final HexFormat HEX = HexFormat.of();

    @TempDir
    Path tmp;

    @ParameterizedTest(name = "{0}, delta at switchover: {1}")
    @CsvSource({"unix, false", "unix, true", "tcp, false", "tcp, true"})
    void destinationInAnotherProcessReconstructsTheState(String transport, boolean deltaAtSwitchover)
            throws Exception {
        ServerSocketChannel server;
        String address;
        if (transport.equals("unix")) {
            Path socket = tmp.resolve("migration.sock");
            server = ServerSocketChannel.open(StandardProtocolFamily.UNIX).bind(UnixDomainSocketAddress.of(socket));
            address = socket.toString();
        } else {
            server = ServerSocketChannel.open().bind(new InetSocketAddress("127.0.0.1", 0));
            address = Integer.toString(((InetSocketAddress) server.getLocalAddress()).getPort());
        }
        Path stdout = tmp.resolve("child.out");
        Path stderr = tmp.resolve("child.err");
        Process child = startDestination(transport, address, stdout, stderr);
        // Hang guards: an exited or stuck child closes the server socket / is killed, so that
        // accept() and reads end with an exception instead of blocking the build.
        child.onExit().thenRun(() -> closeQuietly(server));
        CompletableFuture.delayedExecutor(120, TimeUnit.SECONDS).execute(child::destroyForcibly);

        FixtureSection<VirtioState> virtio = new FixtureSection<>(1, "virtio", VirtioState.class, Fixtures.virtio());
        FixtureSection<NetState> net = new FixtureSection<>(2, "net", NetState.class, Fixtures.net());
        MigrationReport report;
        NetState precopyState;
        NetState finalState;
        try (server; SocketChannel channel = server.accept()) {
            MigrationSource source = new MigrationSource(new MigrationStreamWriter(channel), List.of(virtio, net));
            source.setup();
            NetState n = Fixtures.net();
            precopyState = new NetState(n.mac(), new MacTable(true, false, new byte[] {2, 0, 0, 0, 0, 7}),
                    n.status(), n.rxMode(), n.vlans(), n.guestOffloads(), n.multiqueue(), n.queuePairs(), n.rss(),
                    n.pendingTx(), n.tap());
            net.set(precopyState);
            assertEquals(List.of(2), source.sendPrecopyDelta());
            finalState = deltaAtSwitchover
                    ? new NetState(n.mac(), precopyState.macTable(), n.status(), RxMode.PROMISC, n.vlans(),
                            n.guestOffloads(), true, 1, n.rss(), List.of(3, 0), n.tap())
                    : precopyState;
            net.set(finalState);
            List<Integer> sent = source.stopAndCopy(() -> Fixtures.indices(0x1234));
            assertEquals(deltaAtSwitchover ? List.of(2) : List.of(), sent);
            source.awaitAcknowledgement(new MigrationStreamReader(channel, Map.of()));
            report = source.report();
        }
        assertTrue(child.waitFor(120, TimeUnit.SECONDS), "destination process did not exit");
        String out = Files.readString(stdout);
        assertEquals(0, child.exitValue(), out + Files.readString(stderr));

        StateSchema<VirtioState> vs = StateSchema.of(VirtioState.class);
        StateSchema<NetState> ns = StateSchema.of(NetState.class);
        List<String> expected = new ArrayList<>();
        expected.add("SWITCHOVER quickstart=" + !deltaAtSwitchover);
        expected.add("EARLY 1 " + HEX.formatHex(vs.encode(Fixtures.virtio())));
        expected.add("EARLY 2 " + HEX.formatHex(ns.encode(Fixtures.net())));
        expected.add("PRECOPY 2 macTable.unicastOverflow,macTable.entries " + HEX.formatHex(ns.encode(precopyState)));
        if (deltaAtSwitchover) {
            expected.add("SWITCHOVER-DELTA 2 rxMode,multiqueue,pendingTx " + HEX.formatHex(ns.encode(finalState)));
        }
        expected.add("NODELTA " + !deltaAtSwitchover);
        expected.add("INDICES " + HEX.formatHex(StateSchema.of(FinalPositions.class).encode(Fixtures.indices(0x1234))));
        expected.add("LOG 1 early");
        expected.add("LOG 2 early;precopy [macTable.unicastOverflow, macTable.entries]"
                + (deltaAtSwitchover ? ";switchover [rxMode, multiqueue, pendingTx]" : ""));
        expected.add("BYTES " + report.totalBytes());
        expected.add("DONE");
        List<String> lines = out.lines().toList();
        assertEquals(sorted(expected), sorted(lines), out);

        assertEquals(!deltaAtSwitchover, report.noDeltaAtSwitchover());
        assertTrue(report.destinationSwitchoverNanos() > 0, report.toString());
        assertTrue(report.destinationEarlyLoadNanos() > 0, report.toString());
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({"unix", "tcp"})
    void aDestinationThatRefusesTheStreamLeavesTheGuestWithTheSource(String transport) throws Exception {
        ServerSocketChannel server = transport.equals("unix")
                ? ServerSocketChannel.open(StandardProtocolFamily.UNIX)
                        .bind(UnixDomainSocketAddress.of(tmp.resolve("refused.sock")))
                : ServerSocketChannel.open().bind(new InetSocketAddress("127.0.0.1", 0));
        String address = transport.equals("unix") ? tmp.resolve("refused.sock").toString()
                : Integer.toString(((InetSocketAddress) server.getLocalAddress()).getPort());
        Path stdout = tmp.resolve("refused.out");
        Process child = startDestination(transport, address, stdout, tmp.resolve("refused.err"));
        child.onExit().thenRun(() -> closeQuietly(server));
        CompletableFuture.delayedExecutor(120, TimeUnit.SECONDS).execute(child::destroyForcibly);

        // The source's net state has one field more than the destination's: the manifest differs.
        FixtureSection<VirtioState> virtio = new FixtureSection<>(1, "virtio", VirtioState.class, Fixtures.virtio());
        FixtureSection<Fixtures.NetStateV2> net = new FixtureSection<>(2, "net", Fixtures.NetStateV2.class,
                Fixtures.netV2());
        MigrationException refused;
        try (server; SocketChannel channel = server.accept()) {
            MigrationSource source = new MigrationSource(new MigrationStreamWriter(channel), List.of(virtio, net));
            source.setup();
            source.stopAndCopy(() -> Fixtures.indices(1));
            channel.shutdownOutput();
            refused = org.junit.jupiter.api.Assertions.assertThrows(MigrationException.class,
                    () -> source.awaitAcknowledgement(new MigrationStreamReader(channel, Map.of())));
        }
        assertTrue(child.waitFor(120, TimeUnit.SECONDS));
        assertEquals(2, child.exitValue());
        assertTrue(refused.getMessage().contains("'net' has another shape"), refused.getMessage());
        assertTrue(Files.readString(stdout).startsWith("FAILED "), Files.readString(stdout));
        assertTrue(!Files.readString(stdout).contains("SWITCHOVER"), "the destination never started");
    }

    private static List<String> sorted(List<String> lines) {
        return lines.stream().sorted().toList();
    }

    private static Process startDestination(String transport, String address, Path stdout, Path stderr)
            throws IOException {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        // Everything this JVM runs with, flattened onto a class path: the child needs the
        // migration classes, their dependencies and the test fixtures, not the module layer.
        Set<String> entries = new LinkedHashSet<>();
        for (String property : new String[] {"jdk.module.path", "java.class.path"}) {
            String value = System.getProperty(property);
            if (value != null && !value.isBlank()) {
                entries.addAll(List.of(value.split(File.pathSeparator)));
            }
        }
        String basedir = System.getProperty("basedir", System.getProperty("user.dir"));
        entries.add(Path.of(basedir, "target", "test-classes").toString());
        entries.add(Path.of(basedir, "target", "classes").toString());
        ProcessBuilder pb = new ProcessBuilder(java, "-cp", String.join(File.pathSeparator, entries),
                DestinationMain.class.getName(), transport, address);
        pb.redirectOutput(stdout.toFile());
        pb.redirectError(stderr.toFile());
        return pb.start();
    }

    private static void closeQuietly(ServerSocketChannel server) {
        try {
            server.close();
        } catch (IOException ignored) {
            // closing only to unblock accept()
        }
    }
}

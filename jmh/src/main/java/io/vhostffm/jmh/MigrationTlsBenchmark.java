package io.vhostffm.jmh;

import io.vhostffm.migration.net.MigrationDeadlines;
import io.vhostffm.migration.net.MigrationTls;
import io.vhostffm.migration.net.TlsChannel;
import io.vhostffm.testkit.TestCertificates;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ByteChannel;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.time.Duration;
import java.util.Comparator;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * What mutual TLS 1.3 costs on the switchover path between hosts: the stop-and-copy message
 * (the final indices and a small delta, {@link #messageBytes} bytes) goes to the destination, and
 * the source waits for the one-byte acknowledgement; over plain TCP on loopback and over
 * {@link TlsChannel} (same sockets, handshake done in set-up). The destination is a thread of
 * this JVM that answers each message.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(1)
public class MigrationTlsBenchmark {
    @Param({"plain", "tls"})
    public String transport;

    /** The stop-and-copy message: the final indices of a few queues and a small delta. */
    @Param({"512"})
    public int messageBytes;

    private Path certificates;
    private ServerSocketChannel listener;
    private ByteChannel source;
    private ByteChannel destination;
    private CompletableFuture<Void> answering;
    private ByteBuffer message;
    private final ByteBuffer acknowledgement = ByteBuffer.allocate(1);

    @Setup(Level.Trial)
    public void connect() throws Exception {
        MigrationDeadlines deadlines = MigrationDeadlines.uniform(Duration.ofSeconds(60));
        listener = ServerSocketChannel.open().bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
        SocketChannel client = SocketChannel.open(listener.getLocalAddress());
        SocketChannel server = listener.accept();
        client.socket().setTcpNoDelay(true);
        server.socket().setTcpNoDelay(true);
        if (transport.equals("plain")) {
            source = client;
            destination = server;
        } else {
            certificates = Files.createTempDirectory("vhostffm-tls-bench");
            TestCertificates made = new TestCertificates(certificates);
            KeyStore sourceKeys = made.identity("source");
            KeyStore destinationKeys = made.identity("destination");
            MigrationTls sourceTls = MigrationTls.fromKeyStores(sourceKeys, TestCertificates.PASSWORD,
                    made.trusting("source", "destination"));
            MigrationTls destinationTls = MigrationTls.fromKeyStores(destinationKeys, TestCertificates.PASSWORD,
                    made.trusting("destination", "source"));
            CompletableFuture<TlsChannel> accepted = CompletableFuture.supplyAsync(() -> {
                try {
                    return destinationTls.server(server, deadlines);
                } catch (IOException e) {
                    throw new RuntimeException(e);
                }
            });
            source = sourceTls.client(client, deadlines);
            destination = accepted.get(60, TimeUnit.SECONDS);
        }
        message = ByteBuffer.allocate(messageBytes);
        answering = CompletableFuture.runAsync(this::answer);
    }

    /** The destination: reads each whole message, answers one byte. Ends when the source closes. */
    private void answer() {
        ByteBuffer in = ByteBuffer.allocate(messageBytes);
        ByteBuffer ack = ByteBuffer.allocate(1);
        try {
            while (true) {
                in.clear();
                while (in.hasRemaining()) {
                    if (destination.read(in) < 0) {
                        return;
                    }
                }
                ack.clear();
                destination.write(ack);
            }
        } catch (IOException e) {
            // closed at tear-down
        }
    }

    @Benchmark
    public byte stopAndCopyRoundTrip() throws IOException {
        message.clear();
        while (message.hasRemaining()) {
            source.write(message);
        }
        acknowledgement.clear();
        while (acknowledgement.hasRemaining()) {
            if (source.read(acknowledgement) < 0) {
                throw new IOException("the destination closed");
            }
        }
        return acknowledgement.get(0);
    }

    @TearDown(Level.Trial)
    public void close() throws Exception {
        source.close();
        answering.get(60, TimeUnit.SECONDS);
        destination.close();
        listener.close();
        if (certificates != null) {
            try (Stream<Path> files = Files.walk(certificates)) {
                files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }
}

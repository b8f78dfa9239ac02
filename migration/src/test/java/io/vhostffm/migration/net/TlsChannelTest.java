package io.vhostffm.migration.net;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.migration.MigrationPeerException;
import io.vhostffm.testkit.TestCertificates;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.security.KeyStore;
import java.time.Duration;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLHandshakeException;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Migration between hosts over mutual TLS 1.3 on real TCP sockets (loopback), with certificates
 * made by keytool for this run: the stream passes; a peer with a certificate the other does not
 * trust is refused during the handshake, on either side; a silent peer is a timeout.
 */
class TlsChannelTest {
    private static final MigrationDeadlines DEADLINES = MigrationDeadlines.uniform(Duration.ofSeconds(30));
    private static MigrationTls source;
    private static MigrationTls destination;
    private static MigrationTls intruder;

    @BeforeAll
    static void certificates(@TempDir Path dir) throws Exception {
        TestCertificates certificates = new TestCertificates(dir);
        KeyStore sourceKeys = certificates.identity("source");
        KeyStore destinationKeys = certificates.identity("destination");
        KeyStore intruderKeys = certificates.identity("intruder");
        source = MigrationTls.fromKeyStores(sourceKeys, TestCertificates.PASSWORD,
                certificates.trusting("source", "destination"));
        destination = MigrationTls.fromKeyStores(destinationKeys, TestCertificates.PASSWORD,
                certificates.trusting("destination", "source"));
        // trusts the destination, so only the destination's check can stop it
        intruder = MigrationTls.fromKeyStores(intruderKeys, TestCertificates.PASSWORD,
                certificates.trusting("intruder", "destination"));
    }

    @Test
    void theStreamPassesBothWaysBetweenTrustedHosts() throws Exception {
        byte[] stream = new byte[3 * 1024 * 1024 + 17];
        new Random(7).nextBytes(stream);
        try (ServerSocketChannel listener = listen()) {
            CompletableFuture<byte[]> received = CompletableFuture.supplyAsync(() -> {
                try (TlsChannel channel = destination.server(listener.accept(), DEADLINES)) {
                    assertEquals("CN=source", channel.session().getPeerPrincipal().getName());
                    byte[] got = readFully(channel, stream.length);
                    channel.write(ByteBuffer.wrap(new byte[] {42})); // the acknowledgement
                    return got;
                } catch (IOException e) {
                    throw new RuntimeException(e);
                }
            });
            try (TlsChannel channel = source.client(SocketChannel.open(listener.getLocalAddress()), DEADLINES)) {
                assertEquals(MigrationTls.PROTOCOL, channel.session().getProtocol());
                assertEquals("CN=destination", channel.session().getPeerPrincipal().getName());
                assertEquals(stream.length, channel.write(ByteBuffer.wrap(stream)));
                assertArrayEquals(new byte[] {42}, readFully(channel, 1));
            }
            assertArrayEquals(stream, received.get(60, TimeUnit.SECONDS));
        }
    }

    @Test
    void aSourceWithAnUntrustedCertificateIsRefusedByTheDestination() throws Exception {
        try (ServerSocketChannel listener = listen()) {
            CompletableFuture<TlsChannel> accepted = CompletableFuture.supplyAsync(() -> {
                try {
                    return destination.server(listener.accept(), DEADLINES);
                } catch (IOException e) {
                    throw new RuntimeException(e);
                }
            });
            SocketChannel socket = SocketChannel.open(listener.getLocalAddress());
            TlsChannel impostor = null;
            try {
                // TLS 1.3: the client's certificate is judged after the client finished its part,
                // so the impostor may believe it connected; it never gets an application byte.
                impostor = intruder.client(socket, DEADLINES);
                TlsChannel refused = impostor;
                assertThrows(SSLException.class, () -> refused.read(ByteBuffer.allocate(1)));
            } catch (SSLException refusedAtOnce) {
                // also acceptable: the alert arrived within the impostor's handshake
            } finally {
                if (impostor != null) {
                    impostor.close();
                }
            }
            ExecutionException e = assertThrows(ExecutionException.class, () -> accepted.get(60, TimeUnit.SECONDS));
            assertTrue(e.getCause().getCause() instanceof SSLHandshakeException, String.valueOf(e.getCause()));
            assertEquals(MigrationPeerException.Fault.REFUSED, MigrationPeerException.classify(e.getCause()));
        }
    }

    @Test
    void aDestinationWithAnUntrustedCertificateIsRefusedBeforeTheSourceSendsAnything() throws Exception {
        try (ServerSocketChannel listener = listen()) {
            CompletableFuture<Void> impostor = CompletableFuture.runAsync(() -> {
                try (TlsChannel channel = intruder.server(listener.accept(), DEADLINES)) {
                    channel.read(ByteBuffer.allocate(1));
                } catch (IOException expected) {
                    // the source aborted the handshake
                }
            });
            SSLHandshakeException e = assertThrows(SSLHandshakeException.class,
                    () -> source.client(SocketChannel.open(listener.getLocalAddress()), DEADLINES));
            assertEquals(MigrationPeerException.Fault.REFUSED, MigrationPeerException.classify(e));
            impostor.get(60, TimeUnit.SECONDS);
        }
    }

    @Test
    void aPeerThatNeverAnswersTheHandshakeIsATimeout() throws Exception {
        try (ServerSocketChannel listener = listen();
                SocketChannel client = SocketChannel.open(listener.getLocalAddress());
                SocketChannel silent = listener.accept()) {
            SocketTimeoutException e = assertThrows(SocketTimeoutException.class,
                    () -> source.client(client, MigrationDeadlines.uniform(Duration.ofMillis(500))));
            assertTrue(e.getMessage().contains("handshake"), e.getMessage());
            assertEquals(MigrationPeerException.Fault.TIMEOUT, MigrationPeerException.classify(e));
            assertTrue(!client.isOpen(), "the socket is closed on failure");
        }
    }

    private static ServerSocketChannel listen() throws IOException {
        return ServerSocketChannel.open().bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
    }

    private static byte[] readFully(TlsChannel channel, int length) throws IOException {
        ByteBuffer buffer = ByteBuffer.allocate(length);
        while (buffer.hasRemaining()) {
            if (channel.read(buffer) < 0) {
                throw new java.io.EOFException("after " + buffer.position() + " of " + length + " bytes");
            }
        }
        return buffer.array();
    }
}

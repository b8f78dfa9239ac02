package io.vhostffm.migration.net;

import java.io.IOException;
import java.nio.channels.SocketChannel;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.util.Objects;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.TrustManagerFactory;

/**
 * Migration between hosts over TLS 1.3 with mutual authentication: both hosts present a
 * certificate, and each accepts only a peer its trust store vouches for. Wraps a connected TCP
 * {@link SocketChannel} (the stream's and the RAM precopy's alike) into a {@link TlsChannel},
 * usable wherever the migration takes a byte channel ({@code MigrationStreamWriter/Reader},
 * {@link RamPrecopy}).
 *
 * <p>Who may connect is the trust store's answer: put in it only the certificates (or the
 * dedicated CA) of the hosts that may migrate to this one. Host names are not checked: the
 * certificate is the identity. Keys, rotation and revocation are the hypervisor's.
 */
public final class MigrationTls {
    /** The only protocol offered: TLS 1.3. */
    public static final String PROTOCOL = "TLSv1.3";

    private final SSLContext context;

    private MigrationTls(SSLContext context) {
        this.context = Objects.requireNonNull(context, "context");
    }

    /** Over the hypervisor's own context (its key and trust managers). */
    public static MigrationTls of(SSLContext context) {
        return new MigrationTls(context);
    }

    /**
     * From key stores: {@code keys} holds this host's private key and certificate chain
     * (protected by {@code keyPassword}), {@code trust} the certificates of the peers allowed.
     */
    public static MigrationTls fromKeyStores(KeyStore keys, char[] keyPassword, KeyStore trust)
            throws GeneralSecurityException {
        KeyManagerFactory keyManagers = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        keyManagers.init(keys, keyPassword);
        TrustManagerFactory trustManagers = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        trustManagers.init(trust);
        SSLContext context = SSLContext.getInstance(PROTOCOL);
        context.init(keyManagers.getKeyManagers(), trustManagers.getTrustManagers(), null);
        return new MigrationTls(context);
    }

    /**
     * The connecting side (usually the source): handshake within {@code deadlines.connect()},
     * then reads and writes with the stream deadlines.
     *
     * @throws javax.net.ssl.SSLHandshakeException when the peer's certificate is not trusted (the socket is closed)
     * @throws java.net.SocketTimeoutException when the handshake did not finish in time
     */
    public TlsChannel client(SocketChannel socket, MigrationDeadlines deadlines) throws IOException {
        return open(socket, true, deadlines);
    }

    /** The accepting side (usually the destination): demands the client's certificate. */
    public TlsChannel server(SocketChannel socket, MigrationDeadlines deadlines) throws IOException {
        return open(socket, false, deadlines);
    }

    private TlsChannel open(SocketChannel socket, boolean client, MigrationDeadlines deadlines) throws IOException {
        SSLEngine engine = context.createSSLEngine();
        engine.setUseClientMode(client);
        SSLParameters parameters = engine.getSSLParameters();
        parameters.setProtocols(new String[] {PROTOCOL});
        if (!client) {
            parameters.setNeedClientAuth(true);
        }
        engine.setSSLParameters(parameters);
        TlsChannel channel = null;
        try {
            channel = new TlsChannel(socket, engine, deadlines);
            channel.handshake(deadlines.connect());
            return channel;
        } catch (IOException | RuntimeException e) {
            if (channel != null) {
                channel.close();
            } else {
                socket.close();
            }
            throw e;
        }
    }
}

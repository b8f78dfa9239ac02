package io.vhostffm.vhost.vhostuser.backend;

import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.os.TapDevice;
import io.vhostffm.vhost.os.UnixSocket;
import io.vhostffm.vhost.os.UnixSocketListener;
import io.vhostffm.vhost.vhostuser.VhostUserConnection;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * A backend on a fresh TAP listening on a socket path, serving exactly one frontend session on
 * its own thread: what the peer tests put a real frontend in front of.
 */
final class ServedBackend implements AutoCloseable {
    final TapDevice tap;
    final VhostUserNetBackend backend;
    final StatusLog status;
    final Path socket;
    private final UnixSocketListener listener;
    private final CompletableFuture<String> session = new CompletableFuture<>();
    private volatile boolean accepted;

    ServedBackend(String tapTemplate, int queuePairs, int mtu, Path socket) throws Exception {
        this(tapTemplate, queuePairs, mtu, 0, socket);
    }

    /** As above, offering {@code extraFeatures} beyond the backend's defaults (e.g. VIRTIO_NET_F_MTU). */
    ServedBackend(String tapTemplate, int queuePairs, int mtu, long extraFeatures, Path socket) throws Exception {
        this(TapDevice.create(tapTemplate, queuePairs, TapDevice.VHOST_FLAGS), queuePairs, mtu, extraFeatures, socket,
                "backend: ");
    }

    /** A backend on {@code tap} (owned from here: closed with this, or at once if setting up fails). */
    ServedBackend(TapDevice tap, int queuePairs, int mtu, Path socket, String statusPrefix) throws Exception {
        this(tap, queuePairs, mtu, 0, socket, statusPrefix);
    }

    private ServedBackend(TapDevice tap, int queuePairs, int mtu, long extraFeatures, Path socket, String statusPrefix)
            throws Exception {
        this.socket = socket;
        this.status = new StatusLog(statusPrefix);
        this.tap = tap;
        try {
            // No IPv6 on the TAP: the kernel's own solicitations would be frames nobody asked for.
            Path disable = Path.of("/proc/sys/net/ipv6/conf", tap.name(), "disable_ipv6");
            if (Files.exists(disable)) {
                Files.writeString(disable, "1");
            }
            tap.setLinkUp(true);
            this.backend = new VhostUserNetBackend(new VhostUserNetBackend.Config(tap, queuePairs, mtu,
                    VhostUserNetBackend.defaultFeatures(queuePairs) | extraFeatures, VhostUserNetBackend.DEFAULT_PROTOCOL_FEATURES, status));
            Files.deleteIfExists(socket);
            this.listener = UnixSocketListener.bind(socket);
        } catch (Exception | Error e) {
            tap.close();
            throw e;
        }
        Thread.ofPlatform().daemon().name("vhost-user backend " + socket).start(this::serveOne);
    }

    private void serveOne() {
        try {
            UnixSocket connection = listener.accept();
            accepted = true;
            session.complete(backend.serve(VhostUserConnection.backend(connection)));
        } catch (IOException | RuntimeException e) {
            session.completeExceptionally(e);
        }
    }

    /** Why the session ended, waiting up to {@code timeout} for it to end. */
    String sessionEnd(Duration timeout) throws InterruptedException, ExecutionException {
        try {
            return session.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            throw new AssertionError("the frontend session did not end within " + timeout.toSeconds() + " s; status:\n  "
                    + String.join("\n  ", status.lines()));
        }
    }

    @Override
    public void close() throws Exception {
        backend.close();
        if (!accepted) {
            // accept(2) still waits: a connection of our own ends it (the session sees end of stream)
            try {
                UnixSocket.connect(socket).close();
                session.handle((r, e) -> r).get(5, TimeUnit.SECONDS);
            } catch (NativeCallException | TimeoutException e) {
                // the listener is closed below either way
            }
        }
        listener.close();
        tap.close();
    }
}

package io.vhostffm.vhost.device;

import io.vhostffm.vhost.os.FileDescriptor;
import java.util.List;
import java.util.Objects;

/**
 * A backend's network endpoint as it travels to another process on the same host (live
 * migration between two processes): plain data that goes into the migration stream, plus the
 * descriptors that go with it over a UNIX socket with SCM_RIGHTS. The device and migration treat
 * it as opaque; only a {@link NetBackendFactory} of the same {@link #kind()} interprets it.
 *
 * @param kind what the endpoint is, e.g. {@value #KIND_TAP}; selects the factory
 * @param name the endpoint's name, e.g. the TAP interface name
 * @param vnetHeaderSize the virtio-net header size the endpoint carries (TUNSETVNETHDRSZ), 0 when
 *     none
 * @param fds the endpoint's descriptors in order (TAP: queue 0 first). On the sending side they
 *     stay owned by the endpoint (SCM_RIGHTS sends copies); on the receiving side the received
 *     copies are owned by whoever rebuilds the endpoint from them.
 */
public record BackendTransfer(String kind, String name, int vnetHeaderSize, List<FileDescriptor> fds) {
    /** A TAP device: one fd per queue, queue {@code i} serving pair {@code i}. */
    public static final String KIND_TAP = "tap";

    public BackendTransfer {
        Objects.requireNonNull(kind, "kind");
        Objects.requireNonNull(name, "name");
        fds = List.copyOf(fds);
        if (fds.isEmpty()) {
            throw new IllegalArgumentException("a transfer of " + kind + " " + name + " needs at least one descriptor");
        }
    }

    /** This transfer with the descriptors received in another process (same order). */
    public BackendTransfer withReceivedFds(List<FileDescriptor> received) {
        if (received.size() != fds.size()) {
            throw new IllegalArgumentException(kind + " " + name + ": " + received.size() + " descriptors received, "
                    + fds.size() + " were sent");
        }
        return new BackendTransfer(kind, name, vnetHeaderSize, received);
    }
}

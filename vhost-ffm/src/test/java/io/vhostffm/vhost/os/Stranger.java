package io.vhostffm.vhost.os;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;

/**
 * A process of another user (started by {@link StrangerProcess} under setpriv): it connects to a
 * socket, or listens on one, and reports on stdout what happened and how many bytes it was given.
 * JDK classes only, so that it runs from the test classes alone, which any user may read.
 */
public final class Stranger {
    private Stranger() {}

    /** {@code connect <path>} or {@code listen <path>}. */
    public static void main(String[] args) throws IOException {
        UnixDomainSocketAddress address = UnixDomainSocketAddress.of(Path.of(args[1]));
        switch (args[0]) {
            case "connect" -> {
                SocketChannel channel;
                try {
                    channel = SocketChannel.open(address);
                } catch (IOException e) {
                    System.out.println("connect failed: " + e.getMessage());
                    return;
                }
                System.out.println("connected");
                drain(channel);
            }
            case "listen" -> {
                try (ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
                    server.bind(address);
                    System.out.println("listening");
                    drain(server.accept());
                }
            }
            default -> throw new IllegalArgumentException(args[0]);
        }
    }

    /** Reads until the other side closes; prints how many bytes came. */
    private static void drain(SocketChannel channel) throws IOException {
        long total = 0;
        try (channel) {
            ByteBuffer buffer = ByteBuffer.allocate(4096);
            for (int n; (n = channel.read(buffer)) >= 0; buffer.clear()) {
                total += n;
            }
        } catch (IOException e) {
            System.out.println("read failed: " + e.getMessage());
        }
        System.out.println("received " + total + " bytes");
        System.out.flush();
    }
}

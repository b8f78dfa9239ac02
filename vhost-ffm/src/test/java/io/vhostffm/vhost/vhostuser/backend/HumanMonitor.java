package io.vhostffm.vhost.vhostuser.backend;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/** QEMU's human monitor (HMP) on a UNIX socket: one command, its answer up to the next prompt, with a deadline. */
final class HumanMonitor implements AutoCloseable {
    private static final String PROMPT = "(qemu) ";
    private static final long DEADLINE_MILLIS = 20_000;
    private final SocketChannel channel;
    private final Selector selector;

    HumanMonitor(Path socket) throws IOException {
        channel = SocketChannel.open(StandardProtocolFamily.UNIX);
        channel.connect(UnixDomainSocketAddress.of(socket));
        channel.configureBlocking(false);
        selector = Selector.open();
        channel.register(selector, SelectionKey.OP_READ);
        readToPrompt();
    }

    /** Runs {@code command}; returns what QEMU printed before its next prompt, without the echoed command. */
    String run(String command) throws IOException {
        ByteBuffer out = ByteBuffer.wrap((command + "\n").getBytes(StandardCharsets.US_ASCII));
        while (out.hasRemaining()) {
            channel.write(out);
        }
        String answer = readToPrompt();
        int echo = answer.indexOf('\n');
        return echo >= 0 ? answer.substring(echo + 1) : answer;
    }

    /** Sends {@code command} without waiting for an answer (e.g. {@code quit}, after which no prompt comes). */
    void send(String command) throws IOException {
        ByteBuffer out = ByteBuffer.wrap((command + "\n").getBytes(StandardCharsets.US_ASCII));
        while (out.hasRemaining()) {
            channel.write(out);
        }
    }

    private String readToPrompt() throws IOException {
        StringBuilder raw = new StringBuilder();
        ByteBuffer buffer = ByteBuffer.allocate(4096);
        long deadline = System.currentTimeMillis() + DEADLINE_MILLIS;
        while (!raw.toString().endsWith(PROMPT)) {
            long left = deadline - System.currentTimeMillis();
            if (left <= 0) {
                throw new IOException("QEMU's monitor gave no prompt within " + DEADLINE_MILLIS + " ms; it said: " + raw);
            }
            selector.select(left);
            selector.selectedKeys().clear();
            buffer.clear();
            int n = channel.read(buffer);
            if (n < 0) {
                throw new IOException("QEMU closed its monitor; it said: " + raw);
            }
            raw.append(new String(buffer.array(), 0, n, StandardCharsets.UTF_8));
        }
        String clean = raw.toString().replace("\r", "").replaceAll("\u001b\\[[0-9;?]*[A-Za-z]", "");
        return clean.endsWith(PROMPT) ? clean.substring(0, clean.length() - PROMPT.length()) : clean;
    }

    @Override
    public void close() throws IOException {
        selector.close();
        channel.close();
    }
}

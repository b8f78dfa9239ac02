package io.vhostffm.testkit;

import io.vhostffm.vhost.os.FileDescriptor;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.os.TapDevice;
import java.io.File;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.TimeUnit;

/**
 * A TAP whose writes run into a full queue, as a busy host's would: its send buffer is made small
 * (TUNSETSNDBUF) and every frame written into it is held, still charged to that buffer, in a
 * token-bucket queue that lets it go at a slow rate (an ingress filter redirects the TAP's frames
 * to an ifb device with a {@code tbf} qdisc). Writes faster than the rate fail with EAGAIN until
 * frames drain; nothing is dropped (the queue's limit is far above the send buffer). The frames
 * are seen on the TAP itself (an AF_PACKET socket on it) as they are written, before the hold.
 * Needs root and {@code ip}/{@code tc}; {@link #close} removes the ifb device (the TAP's ingress
 * filter goes with the TAP).
 */
public final class TapBackPressure implements AutoCloseable {
    private static final long COMMAND_TIMEOUT_SECONDS = 10;
    private final String ifb;

    private TapBackPressure(String ifb) {
        this.ifb = ifb;
    }

    /**
     * Holds {@code tap}'s written frames, letting them go at {@code rateKbit} kbit/s, with a send
     * buffer of {@code sendBufferBytes} (a few frames).
     */
    public static TapBackPressure apply(TapDevice tap, int sendBufferBytes, int rateKbit) throws IOException {
        String ifb = "ifb-" + tap.name();
        run("ip", "link", "add", ifb, "type", "ifb");
        TapBackPressure hold = new TapBackPressure(ifb);
        try {
            run("ip", "link", "set", ifb, "up");
            run("tc", "qdisc", "add", "dev", ifb, "root", "tbf", "rate", rateKbit + "kbit", "burst", "1600",
                    "limit", "10000000");
            run("tc", "qdisc", "add", "dev", tap.name(), "ingress");
            run("tc", "filter", "add", "dev", tap.name(), "parent", "ffff:", "protocol", "all", "u32",
                    "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", ifb);
            tap.setSendBuffer(sendBufferBytes);
        } catch (IOException | RuntimeException e) {
            hold.close();
            throw e;
        }
        return hold;
    }

    /**
     * Writes {@code frame} (vnet header and all) into {@code queue}, non-blocking, until the TAP
     * refuses one for want of room, at most {@code max} times.
     *
     * @return how many were written before the first EAGAIN; -1 when none was refused
     */
    public static int writeUntilFull(FileDescriptor queue, byte[] frame, int max) throws NativeCallException {
        boolean wasNonBlocking = queue.isNonBlocking();
        queue.setNonBlocking(true);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment bytes = arena.allocateFrom(ValueLayout.JAVA_BYTE, frame);
            for (int i = 0; i < max; i++) {
                try {
                    queue.write(bytes);
                } catch (NativeCallException e) {
                    if ("EAGAIN".equals(e.errnoSymbol())) {
                        return i;
                    }
                    throw e;
                }
            }
            return -1;
        } finally {
            queue.setNonBlocking(wasNonBlocking);
        }
    }

    private static void run(String... command) throws IOException {
        String line = String.join(" ", command);
        Process p = new ProcessBuilder(command).redirectErrorStream(true)
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null"))).start();
        try {
            if (!p.waitFor(COMMAND_TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IOException(line + ": no exit within " + COMMAND_TIMEOUT_SECONDS + " s");
            }
        } catch (InterruptedException e) {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
            throw new IOException(line + ": interrupted", e);
        }
        // A line or two at most: the pipe never fills before the exit.
        String out = new String(p.getInputStream().readAllBytes()).strip();
        if (p.exitValue() != 0) {
            throw new IOException(line + ": exit " + p.exitValue() + (out.isEmpty() ? "" : ": " + out));
        }
    }

    /** Removes the ifb device and its queue (frames still held there are dropped). */
    @Override
    public void close() {
        try {
            run("ip", "link", "del", ifb);
        } catch (IOException e) {
            throw new IllegalStateException("cannot remove " + ifb + ": " + e.getMessage(), e);
        }
    }
}

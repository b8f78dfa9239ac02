package io.vhostffm.jmh;

import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.os.PacketSocket;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The network side of {@link VhostUserDatapathBenchmark}'s userspace baseline, doing what testpmd's
 * macswap does for the vhost-user backend: one thread on an AF_PACKET socket on the TAP sends every
 * frame the guest transmitted (source MAC {@code guestMac}) back into the TAP with its source and
 * destination MACs swapped. Frames it sent itself (their source is then the guest's destination)
 * and anything else on the TAP are left alone. Allocates nothing per frame.
 */
final class TapReflector implements AutoCloseable {
    private static final int WAIT_MILLIS = 100;
    private static final int MAC = 6;

    private final PacketSocket socket;
    private final byte[] guestMac;
    private final Thread thread;
    private volatile boolean running = true;
    private volatile Throwable failure;
    private volatile long reflected;

    /** Binds to {@code tapName} and starts reflecting. */
    TapReflector(String tapName, byte[] guestMac) throws NativeCallException {
        this.socket = PacketSocket.bind(tapName);
        this.guestMac = guestMac.clone();
        try {
            socket.setReceiveBuffer(8 << 20);
        } catch (NativeCallException | RuntimeException e) {
            socket.close();
            throw e;
        }
        this.thread = Thread.ofPlatform().daemon().name("tap reflector " + tapName).start(this::run);
    }

    private void run() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment frame = arena.allocate(65536, 8);
            MemorySegment swap = arena.allocate(MAC);
            MemorySegment ours = arena.allocate(MAC);
            MemorySegment.copy(guestMac, 0, ours, ValueLayout.JAVA_BYTE, 0, MAC);
            while (running) {
                long length = socket.receive(frame, WAIT_MILLIS);
                if (length < 2 * MAC || length > frame.byteSize()
                        || MemorySegment.mismatch(frame, MAC, 2 * MAC, ours, 0, MAC) != -1) {
                    continue;
                }
                MemorySegment.copy(frame, 0, swap, 0, MAC);          // destination
                MemorySegment.copy(frame, MAC, frame, 0, MAC);       // source -> destination
                MemorySegment.copy(swap, 0, frame, MAC, MAC);        // destination -> source
                socket.send(frame.asSlice(0, length));
                reflected++;
            }
        } catch (NativeCallException | RuntimeException e) {
            failure = e;
        }
    }

    /** Frames sent back so far. */
    long reflected() {
        return reflected;
    }

    /** Why the reflector stopped early, or null while it runs. */
    Throwable failure() {
        return failure;
    }

    /** Stops the thread (within its 100 ms wait) and closes the socket. */
    @Override
    public void close() throws InterruptedException {
        running = false;
        thread.join(10_000);
        if (thread.isAlive()) {
            throw new IllegalStateException("the TAP reflector did not stop within 10 s");
        }
        socket.close();
    }
}

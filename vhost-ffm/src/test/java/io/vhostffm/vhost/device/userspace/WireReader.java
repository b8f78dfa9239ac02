package io.vhostffm.vhost.device.userspace;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

import io.vhostffm.vhost.os.PacketSocket;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Predicate;

/** A thread that collects the frames arriving on the TAP's network side that {@code keep} accepts. */
final class WireReader implements AutoCloseable {
    private final PacketSocket socket;
    private final Predicate<byte[]> keep;
    private final List<byte[]> frames = new ArrayList<>();
    private final Thread thread;
    private volatile boolean stop;
    private volatile Throwable failure;

    WireReader(PacketSocket socket, Predicate<byte[]> keep) {
        this.socket = socket;
        this.keep = keep;
        this.thread = Thread.ofPlatform().daemon().name("wire reader " + socket.interfaceName()).start(this::run);
    }

    private void run() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buffer = arena.allocate(70000);
            while (!stop) {
                long n = socket.receive(buffer, 50);
                if (n < 0) {
                    continue;
                }
                byte[] frame = buffer.asSlice(0, Math.min(n, buffer.byteSize())).toArray(JAVA_BYTE);
                if (keep.test(frame)) {
                    synchronized (frames) {
                        frames.add(frame);
                        frames.notifyAll();
                    }
                }
            }
        } catch (Throwable t) {
            failure = t;
        }
    }

    int count() {
        synchronized (frames) {
            return frames.size();
        }
    }

    /** Waits until {@code n} frames arrived or {@code millis} passed; returns the count then. */
    int await(int n, long millis) throws InterruptedException {
        long deadline = System.currentTimeMillis() + millis;
        synchronized (frames) {
            while (frames.size() < n && failure == null) {
                long left = deadline - System.currentTimeMillis();
                if (left <= 0) {
                    break;
                }
                frames.wait(left);
            }
            if (failure != null) {
                throw new AssertionError("wire reader failed", failure);
            }
            return frames.size();
        }
    }

    List<byte[]> frames() {
        synchronized (frames) {
            return new ArrayList<>(frames);
        }
    }

    @Override
    public void close() throws InterruptedException {
        stop = true;
        thread.join();
    }
}

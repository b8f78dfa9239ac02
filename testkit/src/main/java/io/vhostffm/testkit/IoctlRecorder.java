package io.vhostffm.testkit;

import io.vhostffm.vhost.device.kernel.VhostNet;
import io.vhostffm.vhost.device.kernel.VhostNetBackend;
import io.vhostffm.vhost.os.Errno;
import io.vhostffm.vhost.os.IoctlObserver;
import io.vhostffm.vhost.os.IoctlRequest;
import io.vhostffm.vhost.os.NativeCallException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * Records the vhost ioctls of a kernel backend through the {@link IoctlObserver} seam: which
 * pair's {@code /dev/vhost-net} each went to and which request, in order; and fails the
 * {@code n}-th one from when it was armed with EIO, once, as the kernel would (the ioctl then does
 * not reach the kernel), to prove a caller falls back cleanly.
 *
 * <p>Thread-safe: the backend's threads and the test's may call it at once.
 */
public final class IoctlRecorder {
    /**
     * One ioctl.
     *
     * @param pair the queue pair whose vhost-net descriptor it went to
     * @param request the request
     */
    public record Call(int pair, IoctlRequest request) {
        /** {@code "pair:REQUEST"} without the {@code VHOST_} prefix, e.g. {@code "0:SET_VRING_BASE"}. */
        @Override
        public String toString() {
            return pair + ":" + request.name().replace("VHOST_", "");
        }
    }

    private final List<Call> calls = new ArrayList<>();
    private int failAt = -1;
    private int seen;
    private String injected;

    /** An empty recorder; {@link #attach} or {@link #forPair} connect it. */
    public IoctlRecorder() {}

    /** Observes every pair of {@code backend} (each pair's vhost-net handle gets its own observer). */
    public void attach(VhostNetBackend backend, int pairs) {
        for (int p = 0; p < pairs; p++) {
            backend.vhost(p).setObserver(forPair(p, backend.vhost(p)));
        }
    }

    /**
     * An observer for pair {@code pair}'s vhost-net handle {@code target} (named in an injected
     * failure; null when it does not exist yet); all of them record into this recorder.
     */
    public IoctlObserver forPair(int pair, VhostNet target) {
        return new IoctlObserver() {
            @Override
            public void beforeIoctl(IoctlRequest request, MemorySegment argument) throws NativeCallException {
                record(pair, request, target);
            }
        };
    }

    private synchronized void record(int pair, IoctlRequest request, VhostNet target) throws NativeCallException {
        calls.add(new Call(pair, request));
        if (failAt >= 0 && seen++ == failAt) {
            failAt = -1;
            injected = request.name() + " (#" + calls.size() + " since cleared)";
            if (target == null) {
                throw new IllegalStateException("ioctl " + request.name() + " failed by the recorder (no handle to name)");
            }
            throw IoctlObserver.injectedFailure(request, target.fd(), Errno.number("EIO").orElseThrow());
        }
    }

    /** Fails the {@code n}-th ioctl from now (0 = the next one) with EIO; -1 disarms. */
    public synchronized void failAt(int n) {
        failAt = n;
        seen = 0;
        injected = null;
    }

    /** The ioctl that was failed, or null. */
    public synchronized String injected() {
        return injected;
    }

    /** Forgets the calls recorded so far. */
    public synchronized void clear() {
        calls.clear();
    }

    /** The calls recorded since the last {@link #clear()} or {@link #take()}. */
    public synchronized List<Call> calls() {
        return List.copyOf(calls);
    }

    /** The requests' header names ({@code VHOST_SET_VRING_BASE}...) recorded so far, in order. */
    public synchronized List<String> names() {
        return calls.stream().map(c -> c.request().name()).toList();
    }

    /** The calls recorded so far, and forgets them. */
    public synchronized List<Call> take() {
        List<Call> out = List.copyOf(calls);
        calls.clear();
        return out;
    }
}

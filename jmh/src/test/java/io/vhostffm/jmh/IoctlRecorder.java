package io.vhostffm.jmh;

import io.vhostffm.vhost.os.IoctlObserver;
import io.vhostffm.vhost.os.IoctlRequest;
import io.vhostffm.vhost.device.kernel.VhostNetBackend;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;

/**
 * Records every vhost ioctl of a {@link VhostNetBackend} (which pair's descriptor, which request,
 * how long the kernel took), for the switchover fixture tests: the ioctl sequence each variant
 * issues, and where its time goes.
 */
final class IoctlRecorder {
    /** One ioctl: the pair whose /dev/vhost-net it went to, the request, its duration. */
    record Call(int pair, IoctlRequest request, long nanos) {
        @Override
        public String toString() {
            return pair + ":" + request.name().replace("VHOST_", "");
        }
    }

    private final List<Call> calls = new ArrayList<>();

    /** An observer for pair {@code pair}'s descriptor; all of them record into this recorder. */
    IoctlObserver forPair(int pair) {
        return new IoctlObserver() {
            private long started;

            @Override
            public void beforeIoctl(IoctlRequest request, MemorySegment argument) {
                started = System.nanoTime();
            }

            @Override
            public void afterIoctl(IoctlRequest request, MemorySegment argument, int result, int errno) {
                long nanos = System.nanoTime() - started;
                synchronized (calls) {
                    calls.add(new Call(pair, request, nanos));
                }
            }
        };
    }

    /** Observes every pair of {@code backend}. */
    void attach(VhostNetBackend backend, int pairs) {
        for (int p = 0; p < pairs; p++) {
            backend.vhost(p).setObserver(forPair(p));
        }
    }

    /** The calls recorded since the last take, and forgets them. */
    List<Call> take() {
        synchronized (calls) {
            List<Call> out = List.copyOf(calls);
            calls.clear();
            return out;
        }
    }

    /** Total nanoseconds per request, in request order. */
    static Map<IoctlRequest, long[]> byRequest(List<Call> calls) {
        Map<IoctlRequest, long[]> out = new EnumMap<>(IoctlRequest.class);
        for (Call c : calls) {
            long[] countAndNanos = out.computeIfAbsent(c.request(), r -> new long[2]);
            countAndNanos[0]++;
            countAndNanos[1] += c.nanos();
        }
        return out;
    }

    /** "SET_VRING_BASE 32 x, 0.81 ms; ..." */
    static String summary(List<Call> calls) {
        StringBuilder b = new StringBuilder();
        long total = 0;
        for (var e : byRequest(calls).entrySet()) {
            b.append(String.format("%n      %-22s %3d x %8.3f ms", e.getKey().name().replace("VHOST_", ""),
                    e.getValue()[0], e.getValue()[1] / 1e6));
            total += e.getValue()[1];
        }
        return String.format("%d ioctls, %.3f ms in the kernel", calls.size(), total / 1e6) + b;
    }
}

package io.vhostffm.programs.demo;

import io.vhostffm.vhost.os.Errno;
import io.vhostffm.vhost.os.IoctlObserver;
import io.vhostffm.vhost.os.IoctlRequest;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.device.kernel.VhostNet;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * Watches every vhost ioctl of a backend through the {@link IoctlObserver} seam: records their
 * names, and can fail the {@code n}-th one (counted from when it was armed) with EIO, once, as the
 * kernel would (the ioctl does not reach the kernel).
 */
public final class IoctlRecorder implements IoctlObserver {
    private final VhostNet target;
    private final List<String> calls = new ArrayList<>();
    private int failAt = -1;
    private int seen;
    private String injected;

    /** @param target the vhost-net handle named in an injected failure */
    public IoctlRecorder(VhostNet target) {
        this.target = target;
    }

    /** Fails the {@code n}-th ioctl from now (0 = the next one); -1 disarms. */
    public synchronized void failAt(int n) {
        failAt = n;
        seen = 0;
        injected = null;
    }

    /** Forgets the calls recorded so far. */
    public synchronized void clear() {
        calls.clear();
    }

    /** The ioctls seen since the last {@link #clear()}, by header name, in order. */
    public synchronized List<String> calls() {
        return List.copyOf(calls);
    }

    /** The ioctl that was failed, or null. */
    public synchronized String injected() {
        return injected;
    }

    @Override
    public synchronized void beforeIoctl(IoctlRequest request, MemorySegment argument) throws NativeCallException {
        calls.add(request.name());
        if (failAt >= 0 && seen++ == failAt) {
            failAt = -1;
            injected = request.name() + " (#" + calls.size() + " since cleared)";
            throw IoctlObserver.injectedFailure(request, target.fd(), Errno.number("EIO").orElseThrow());
        }
    }
}

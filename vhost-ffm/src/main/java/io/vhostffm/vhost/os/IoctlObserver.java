package io.vhostffm.vhost.os;

import io.vhostffm.vhost.device.kernel.VhostNet;

import io.vhostffm.vhost.internal.NativeErrors;
import java.lang.foreign.MemorySegment;

/**
 * A hook every vhost ioctl of one {@link VhostNet} passes through: to count ioctls (how much
 * work a migration step does) and to inject failures (does the caller fall back cleanly?).
 * Set with {@link VhostNet#setObserver}; null by default, and then the ioctl path costs one
 * null check.
 *
 * <p>Called on the thread making the ioctl, while the handle's lock is held: keep it short and
 * do not call back into the same handle.
 */
public interface IoctlObserver {

    /**
     * Before the ioctl. To inject a failure, throw (e.g. {@link #injectedFailure}): the ioctl is
     * then not made and the caller sees that exception exactly as if the kernel had failed.
     *
     * @param argument the argument as it will be passed (read only, do not keep: it is reused);
     *                 {@link MemorySegment#NULL} for requests without one
     */
    void beforeIoctl(IoctlRequest request, MemorySegment argument) throws NativeCallException;

    /**
     * After the kernel answered. {@code errno} is 0 when {@code result} is not negative. For
     * requests that return data (GET_VRING_BASE...) the answer is in {@code argument}.
     */
    default void afterIoctl(IoctlRequest request, MemorySegment argument, int result, int errno) {}

    /**
     * The exception the kernel would have produced for {@code request} failing with
     * {@code errno} on {@code target}, marked as injected in its message.
     */
    static NativeCallException injectedFailure(IoctlRequest request, FileDescriptor target, int errno) {
        return NativeErrors.ioctlFailure(request, target, errno, "injected by IoctlObserver");
    }
}

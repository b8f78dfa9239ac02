package io.vhostffm.vhost.internal;

import io.vhostffm.vhost.os.FileDescriptor;
import io.vhostffm.vhost.os.IoctlRequest;
import io.vhostffm.vhost.os.NativeCallException;

/**
 * The one place a failed libc call becomes an exception. Callers pass what they know (the
 * call, the ioctl request, the descriptor, a few arguments); the message format lives in
 * {@link NativeCallException}. Only failure paths come here, so building strings is fine.
 */
public final class NativeErrors {
    private NativeErrors() {}

    /** A failed call on a descriptor. */
    public static NativeCallException failure(String call, FileDescriptor fd, int errno) {
        return new NativeCallException(call, null, errno, fd == null ? null : fd.toString(), null);
    }

    /** A failed call on a descriptor, with a note on what went wrong beyond errno. */
    public static NativeCallException failure(String call, FileDescriptor fd, int errno, String detail) {
        return new NativeCallException(call, null, errno, fd == null ? null : fd.toString(), detail);
    }

    /** A failed call with a note on its arguments (no descriptor yet, e.g. open or memfd_create). */
    public static NativeCallException failure(String call, String detail, int errno) {
        return new NativeCallException(call, null, errno, null, detail);
    }

    /**
     * {@code failure} again with {@code context} (e.g. which queue pair of a device) before its
     * message, the original as its cause: the call, request and errno stay as they were.
     */
    public static NativeCallException inContext(String context, NativeCallException failure) {
        NativeCallException e = new NativeCallException(failure.call(), failure.request(), failure.errno(),
                context + ": " + failure.getMessage());
        e.initCause(failure);
        return e;
    }

    /** A failed ioctl on a descriptor. */
    public static NativeCallException ioctlFailure(IoctlRequest request, FileDescriptor fd, int errno, String detail) {
        return new NativeCallException("ioctl", request.name(), errno, fd == null ? null : fd.toString(), detail);
    }

    /** A failed ioctl on a descriptor not yet owned (described by {@code target}). */
    public static NativeCallException ioctlFailure(IoctlRequest request, String target, int errno, String detail) {
        return new NativeCallException("ioctl", request.name(), errno, target, detail);
    }

    /** A failed ioctl known only by its number; the name is looked up from it. */
    public static NativeCallException ioctlFailure(long request, FileDescriptor fd, int errno, String detail) {
        return new NativeCallException("ioctl", IoctlRequest.nameOf(request), errno, fd == null ? null : fd.toString(), detail);
    }

    /** Checks an int result: returns it when non-negative, else throws naming the call. */
    public static int check(int result, String call, FileDescriptor fd, CallState state) throws NativeCallException {
        if (result < 0) {
            throw failure(call, fd, state.errno());
        }
        return result;
    }

    /** Checks a long result (read/write/sendmsg/recvmsg): returns it when non-negative. */
    public static long check(long result, String call, FileDescriptor fd, CallState state) throws NativeCallException {
        if (result < 0) {
            throw failure(call, fd, state.errno());
        }
        return result;
    }
}

package io.vhostffm.vhost.os;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import io.vhostffm.vhost.internal.CallState;
import io.vhostffm.vhost.internal.Libc;
import io.vhostffm.vhost.internal.LinuxConstants;
import io.vhostffm.vhost.internal.NativeErrors;
import io.vhostffm.vhost.internal.Structs;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * An AF_UNIX stream socket put at a path: what {@link UnixSocket#connect} and
 * {@link UnixSocketListener#bind} share (the sockaddr_un, the socket, closing it on failure).
 */
final class UnixAddress {
    private UnixAddress() {}

    /** connect(2) or bind(2): a call that takes the socket and its sockaddr_un. */
    @FunctionalInterface
    interface AddressCall {
        int call(CallState state, int fd, MemorySegment address, int length);
    }

    /**
     * socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC), then {@code call} with {@code path}'s
     * sockaddr_un; the socket is closed when either fails.
     *
     * @throws IllegalArgumentException when the path does not fit sun_path (before any socket is made)
     */
    static FileDescriptor streamSocketAt(Path path, String description, String callName, AddressCall call)
            throws NativeCallException {
        byte[] name = path.toString().getBytes(StandardCharsets.UTF_8);
        long pathOffset = Structs.offset(Structs.SOCKADDR_UN, "sun_path");
        if (name.length >= Structs.SOCKADDR_UN.byteSize() - pathOffset) {
            throw new IllegalArgumentException("socket path too long for sockaddr_un: " + path);
        }
        CallState s = CallState.current();
        int n = Libc.socket(s, LinuxConstants.AF_UNIX, LinuxConstants.SOCK_STREAM | LinuxConstants.SOCK_CLOEXEC, 0);
        if (n < 0) {
            throw NativeErrors.failure("socket", "AF_UNIX, SOCK_STREAM", s.errno());
        }
        FileDescriptor fd = FileDescriptor.adopt(n, description);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment address = arena.allocate(Structs.SOCKADDR_UN);
            address.set(JAVA_SHORT, 0, (short) LinuxConstants.AF_UNIX);
            MemorySegment.copy(name, 0, address, JAVA_BYTE, pathOffset, name.length);
            NativeErrors.check(call.call(s, n, address, (int) Structs.SOCKADDR_UN.byteSize()), callName, fd, s);
            return fd;
        } catch (NativeCallException | RuntimeException e) {
            fd.close();
            throw e;
        }
    }
}

package io.vhostffm.vhost.vhostuser;

import io.vhostffm.vhost.os.FileDescriptor;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * One vhost-user message: the 12-byte header (u32 request, u32 flags, u32 payload size, all
 * little-endian), the payload, and the file descriptors that came with it over SCM_RIGHTS.
 *
 * <p>A received message owns its descriptors until a handler {@link #takeFd takes} one;
 * {@link #close()} closes every descriptor not taken, so a message dropped on an error leaks
 * nothing. A message to send holds the caller's descriptors: they are sent, not closed.
 */
public final class VhostUserMessage implements AutoCloseable {
    /** Bytes of the header. */
    public static final int HEADER_SIZE = 12;
    /** The protocol version in the flags' low two bits: always 1. */
    public static final int VERSION = 0x1;
    /** Mask of the version bits. */
    public static final int VERSION_MASK = 0x3;
    /** Flag: this message is a reply. */
    public static final int REPLY = 0x4;
    /** Flag: the sender asks for a reply (REPLY_ACK) to a request that otherwise has none. */
    public static final int NEED_REPLY = 0x8;
    /** The largest payload accepted: well above the largest request a net device uses (264 bytes). */
    public static final int MAX_PAYLOAD = 4096;

    private final int code;
    private final int flags;
    private final byte[] payload;
    private final List<FileDescriptor> fds;

    /**
     * @param code    the request number (not checked: a received message may name an unknown one)
     * @param flags   version and flag bits
     * @param payload the payload bytes (copied)
     * @param fds     descriptors (owned by this message when received)
     */
    public VhostUserMessage(int code, int flags, byte[] payload, List<FileDescriptor> fds) {
        Objects.requireNonNull(payload, "payload");
        if (payload.length > MAX_PAYLOAD) {
            throw new IllegalArgumentException("payload of " + payload.length + " bytes exceeds " + MAX_PAYLOAD);
        }
        this.code = code;
        this.flags = flags;
        this.payload = payload.clone();
        this.fds = new ArrayList<>(fds);
    }

    /** A request to send: version 1, {@code NEED_REPLY} when asked. */
    public static VhostUserMessage request(VhostUserRequest request, boolean needReply, byte[] payload,
            List<FileDescriptor> fds) {
        return new VhostUserMessage(request.code(), VERSION | (needReply ? NEED_REPLY : 0), payload, fds);
    }

    /** A reply to {@code request}: version 1 with the REPLY flag, no descriptors. */
    public static VhostUserMessage reply(VhostUserRequest request, byte[] payload) {
        return new VhostUserMessage(request.code(), VERSION | REPLY, payload, List.of());
    }

    /** The request number on the wire. */
    public int code() {
        return code;
    }

    /** The request this message names, or null when its number is unknown. */
    public VhostUserRequest request() {
        return VhostUserRequest.forCode(code);
    }

    /**
     * The request's name for messages: {@code SET_VRING_ADDR(9)}, or {@code request 99}; an
     * unknown number is the wire's u32, unsigned (as the header check names it).
     */
    public String requestName() {
        VhostUserRequest r = request();
        return r != null ? r.toString() : "request " + Integer.toUnsignedString(code);
    }

    /** The flags word. */
    public int flags() {
        return flags;
    }

    /** Whether the sender asked for a reply. */
    public boolean needsReply() {
        return (flags & NEED_REPLY) != 0;
    }

    /** Whether this is a reply. */
    public boolean isReply() {
        return (flags & REPLY) != 0;
    }

    /** Payload size in bytes. */
    public int size() {
        return payload.length;
    }

    /** A copy of the payload. */
    public byte[] payload() {
        return payload.clone();
    }

    /** A read-only little-endian view of the payload. */
    public ByteBuffer payloadBuffer() {
        return ByteBuffer.wrap(payload).asReadOnlyBuffer().order(ByteOrder.LITTLE_ENDIAN);
    }

    /** The header's 12 bytes. */
    public byte[] header() {
        ByteBuffer b = ByteBuffer.allocate(HEADER_SIZE).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(code).putInt(flags).putInt(payload.length);
        return b.array();
    }

    /** Header and payload as sent on the wire. */
    public byte[] wireBytes() {
        byte[] wire = new byte[HEADER_SIZE + payload.length];
        System.arraycopy(header(), 0, wire, 0, HEADER_SIZE);
        System.arraycopy(payload, 0, wire, HEADER_SIZE, payload.length);
        return wire;
    }

    /** How many descriptors came with the message (taken or not). */
    public int fdCount() {
        return fds.size();
    }

    /** The descriptors (for sending). */
    public List<FileDescriptor> fds() {
        return fds.stream().filter(Objects::nonNull).toList();
    }

    /**
     * Takes ownership of the {@code i}-th descriptor: {@link #close()} will no longer close it.
     *
     * @throws IllegalStateException when it was taken already
     */
    public FileDescriptor takeFd(int i) {
        FileDescriptor fd = fds.get(i);
        if (fd == null) {
            throw new IllegalStateException(requestName() + ": descriptor " + i + " was taken already");
        }
        fds.set(i, null);
        return fd;
    }

    /** Closes every descriptor not taken. */
    @Override
    public void close() {
        for (int i = 0; i < fds.size(); i++) {
            FileDescriptor fd = fds.get(i);
            if (fd != null) {
                fds.set(i, null);
                fd.close();
            }
        }
    }

    @Override
    public String toString() {
        return requestName() + " flags 0x" + Integer.toHexString(flags) + " size " + payload.length
                + (fds.isEmpty() ? "" : " fds " + fds.size());
    }
}

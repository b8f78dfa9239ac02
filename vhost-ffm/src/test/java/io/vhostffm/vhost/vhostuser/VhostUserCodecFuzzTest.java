package io.vhostffm.vhost.vhostuser;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.FdLinks;
import io.vhostffm.vhost.os.FileDescriptor;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.os.NativeCallException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Coverage-guided fuzzing of the vhost-user message decoders, both directions, without a socket:
 * the input's first byte chooses up to four real descriptors (eventfds, memfds) that come with the
 * first message, the rest is a stream of messages (12-byte header, payload) as they travel.
 *
 * <p>{@link #requests}: what a backend receives ({@link VhostUserCodec#checkHeader},
 * {@link VhostUserCodec#checkRequest} and the payload decoder of the request). {@link #replies}:
 * what a frontend receives; the second byte is the request it asked ({@link
 * VhostUserCodec#checkReply}, then the u64 or vring state decoder).
 *
 * <p>Invariants: the only exception is a {@link VhostUserProtocolException} naming the request
 * the header carried (its number unsigned when unknown) and a field; a message that decodes
 * re-encodes to exactly its bytes (header and payload; a full 8-region memory table up to its
 * last used region); its descriptors are exactly those the decoded value calls for; after each
 * input, the process has exactly the descriptors it had before.
 *
 * <p>Without {@code JAZZER_FUZZ=1} this runs the stored inputs under {@code VhostUserCodecFuzzTestInputs}.
 */
class VhostUserCodecFuzzTest {
    /** A memfd whose duplicates are the memfds the inputs send (made once: not counted as a leak). */
    static final MemfdGuestMemory MEMFD = memfd();

    @FuzzTest
    void requests(byte[] input) throws Exception {
        if (input.length < 1) {
            return;
        }
        int before = FdLinks.count();
        decodeStream(input[0], Arrays.copyOfRange(input, 1, input.length), null);
        assertEquals(before, FdLinks.count(), "descriptors leaked decoding requests");
    }

    @FuzzTest
    void replies(byte[] input) throws Exception {
        if (input.length < 2) {
            return;
        }
        VhostUserRequest asked = askedRequest(input[1]);
        int before = FdLinks.count();
        decodeStream(input[0], Arrays.copyOfRange(input, 2, input.length), asked);
        assertEquals(before, FdLinks.count(), "descriptors leaked decoding replies");
    }

    /** The request a frontend asked, from one input byte: one that answers, or one acked under REPLY_ACK. */
    static VhostUserRequest askedRequest(byte b) {
        VhostUserRequest[] all = VhostUserRequest.values();
        return all[Byte.toUnsignedInt(b) % all.length];
    }

    /**
     * Decodes each message of {@code stream} as the codec would after a connection read it,
     * until the stream ends, a message is cut short, or one breaks the protocol.
     *
     * @param asked null for requests (the backend's side), else the request the replies answer
     */
    private static void decodeStream(byte fdSpec, byte[] stream, VhostUserRequest asked) throws NativeCallException {
        List<FileDescriptor> sent = descriptors(fdSpec);
        boolean handed = false;
        try {
            int at = 0;
            while (at + VhostUserMessage.HEADER_SIZE <= stream.length) {
                ByteBuffer h = ByteBuffer.wrap(stream, at, VhostUserMessage.HEADER_SIZE).order(ByteOrder.LITTLE_ENDIAN);
                int code = h.getInt();
                int flags = h.getInt();
                int size = h.getInt();
                try {
                    VhostUserCodec.checkHeader(code, flags, size, asked != null);
                } catch (VhostUserProtocolException e) {
                    checkNames(e, code);
                    return;
                }
                int end = at + VhostUserMessage.HEADER_SIZE + size;
                if (end > stream.length) {
                    return; // cut short: the connection target's case
                }
                byte[] payload = Arrays.copyOfRange(stream, at + VhostUserMessage.HEADER_SIZE, end);
                List<FileDescriptor> fds = handed ? List.of() : sent;
                handed = true;
                try (VhostUserMessage m = new VhostUserMessage(code, flags, payload, fds)) {
                    assertArrayEquals(Arrays.copyOfRange(stream, at, end), m.wireBytes(), "header and payload");
                    if (!decode(m, asked)) {
                        return;
                    }
                }
                at = end;
            }
        } finally {
            if (!handed) {
                sent.forEach(FileDescriptor::close);
            }
        }
    }

    /**
     * Decodes one received message as its side would and checks the invariants.
     *
     * @return false when the message broke the protocol (the connection is then not read on)
     */
    static boolean decode(VhostUserMessage m, VhostUserRequest asked) {
        try {
            if (asked == null) {
                decodeRequest(m);
            } else {
                decodeReply(m, asked);
            }
            return true;
        } catch (VhostUserProtocolException e) {
            checkNames(e, m.code());
            return false;
        }
    }

    /** The exception names the request the header carried, and a field. */
    static void checkNames(VhostUserProtocolException e, int code) {
        VhostUserRequest r = VhostUserRequest.forCode(code);
        String name = r != null ? r.toString() : "request " + Integer.toUnsignedString(code);
        assertEquals(name, e.request(), e.getMessage());
        assertFalse(e.field() == null || e.field().isBlank(), e.getMessage());
        assertTrue(e.getMessage().startsWith(name + ": " + e.field() + ": "), e.getMessage());
    }

    private static void decodeRequest(VhostUserMessage m) {
        VhostUserRequest r = VhostUserCodec.checkRequest(m);
        assertSame(m.request(), r);
        assertFalse(m.isReply());
        byte[] p = m.payload();
        switch (r.payload()) {
            case NONE -> {
                assertEquals(0, p.length);
                takeAll(m, m.fdCount());
            }
            case U64 -> assertArrayEquals(p, VhostUserCodec.u64(VhostUserCodec.u64(m)));
            case VRING_STATE -> {
                VringState s = VhostUserCodec.vringState(m);
                assertArrayEquals(p, VhostUserCodec.vringState(s.index(), s.num()));
            }
            case VRING_ADDRESS -> assertArrayEquals(p, VhostUserCodec.vringAddress(VhostUserCodec.vringAddress(m)));
            case VRING_FD -> {
                VringFd v = VhostUserCodec.vringFd(m);
                assertArrayEquals(p, VhostUserCodec.vringFd(v.index(), v.noFd()));
                takeAll(m, v.noFd() ? 0 : 1);
            }
            case LOG -> {
                LogArea log = VhostUserCodec.logArea(m);
                assertArrayEquals(p, VhostUserCodec.logArea(log));
                takeAll(m, 1);
            }
            case MEMORY_TABLE -> {
                List<MemoryRegion> regions = VhostUserCodec.memoryTable(m);
                byte[] encoded = VhostUserCodec.memoryTable(regions);
                assertArrayEquals(encoded, Arrays.copyOf(p, encoded.length), "memory table");
                takeAll(m, regions.size());
            }
            case UNSUPPORTED -> fail(r + " passed checkRequest although it is not served");
        }
    }

    private static void decodeReply(VhostUserMessage m, VhostUserRequest asked) {
        VhostUserCodec.checkReply(m, asked);
        assertTrue(m.isReply());
        assertEquals(asked.code(), m.code());
        assertEquals(0, m.fdCount(), "a reply with descriptors was accepted");
        byte[] p = m.payload();
        if (asked == VhostUserRequest.GET_VRING_BASE) {
            VringState s = VhostUserCodec.vringState(m);
            assertArrayEquals(p, VhostUserCodec.vringState(s.index(), s.num()));
        } else {
            assertArrayEquals(p, VhostUserCodec.u64(VhostUserCodec.u64(m)));
        }
    }

    /** The handler's part: takes the descriptors the decoded value owns, and closes them (as its owner would). */
    private static void takeAll(VhostUserMessage m, int expected) {
        assertEquals(expected, m.fdCount(), () -> m + ": descriptors the decoded value does not account for");
        for (int i = 0; i < expected; i++) {
            m.takeFd(i).close();
        }
    }

    /** Bits 0-2 (mod 5): how many descriptors; bit 3+i: the i-th is a memfd (set) or an eventfd. */
    static List<FileDescriptor> descriptors(byte spec) throws NativeCallException {
        int count = (spec & 7) % 5;
        List<FileDescriptor> fds = new ArrayList<>(count);
        try {
            for (int i = 0; i < count; i++) {
                if ((spec & (8 << i)) != 0) {
                    fds.add(MEMFD.memfdRegions().getFirst().fd().duplicate("fuzz memfd " + i));
                } else {
                    fds.add(EventFd.create("fuzz eventfd " + i).fd());
                }
            }
        } catch (NativeCallException | RuntimeException e) {
            fds.forEach(FileDescriptor::close);
            throw e;
        }
        return fds;
    }

    private static MemfdGuestMemory memfd() {
        try {
            return MemfdGuestMemory.create("vhost-user fuzz",
                    List.of(new MemfdGuestMemory.RegionSpec(0, MemfdGuestMemory.PAGE_SIZE)));
        } catch (NativeCallException e) {
            throw new ExceptionInInitializerError(e);
        }
    }
}

package io.vhostffm.vhost.vhostuser;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.vhostffm.vhost.os.FdLinks;
import io.vhostffm.vhost.os.FileDescriptor;
import io.vhostffm.vhost.os.UnixSocket;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;

/**
 * Coverage-guided fuzzing of {@link VhostUserConnection#receive} over a real socket pair: the
 * input's first byte chooses up to four real descriptors (eventfds, memfds) sent with SCM_RIGHTS
 * with the first byte of the stream; the second byte's bit 0 chooses the side (0: a backend
 * receiving requests, 1: a frontend receiving replies to the request the third byte names); the
 * rest is the byte stream the peer sends before it closes its end.
 *
 * <p>Invariants: every message received is decoded as in {@link VhostUserCodecFuzzTest} (same
 * checks); receive ends in null at the peer's close, or in a {@link VhostUserProtocolException}
 * that names the request of the message being read once its header has come ({@code message}
 * before), and a field; after closing the connection, the process has exactly the descriptors it
 * had before.
 *
 * <p>Without {@code JAZZER_FUZZ=1} this runs the stored inputs under {@code VhostUserConnectionFuzzTestInputs}.
 */
class VhostUserConnectionFuzzTest {
    @FuzzTest
    void connection(byte[] input) throws Exception {
        if (input.length < 3) {
            return;
        }
        boolean replies = (input[1] & 1) != 0;
        VhostUserRequest asked = replies ? VhostUserCodecFuzzTest.askedRequest(input[2]) : null;
        byte[] stream = Arrays.copyOfRange(input, 3, input.length);

        // The memfd the sent memfds duplicate is opened once, before the count (not a leak of a run).
        assertNotNull(VhostUserCodecFuzzTest.MEMFD);
        int before = FdLinks.count();
        try (UnixSocket.Pair pair = UnixSocket.pair()) {
            List<FileDescriptor> fds = VhostUserCodecFuzzTest.descriptors(input[0]);
            try {
                // Descriptors travel with at least one byte on a stream socket.
                pair.first().send(stream, stream.length == 0 ? List.of() : fds);
            } finally {
                fds.forEach(FileDescriptor::close);
                pair.first().close();
            }
            try (VhostUserConnection connection = VhostUserConnection.open(pair.second(), replies, Duration.ofSeconds(2))) {
                receiveAll(connection, stream, asked);
            }
        }
        assertEquals(before, FdLinks.count(), "descriptors leaked by a connection");
    }

    private static void receiveAll(VhostUserConnection connection, byte[] stream, VhostUserRequest asked)
            throws Exception {
        int at = 0;
        while (true) {
            boolean headerCame = at + VhostUserMessage.HEADER_SIZE <= stream.length;
            int code = headerCame
                    ? ByteBuffer.wrap(stream, at, 4).order(ByteOrder.LITTLE_ENDIAN).getInt() : 0;
            VhostUserMessage m;
            try {
                m = connection.receive();
            } catch (VhostUserProtocolException e) {
                if (headerCame) {
                    VhostUserCodecFuzzTest.checkNames(e, code);
                } else {
                    assertEquals("message", e.request(), e.getMessage());
                    assertFalse(e.field().isBlank(), e.getMessage());
                }
                return;
            }
            if (m == null) {
                assertEquals(stream.length, at, "end of stream before the bytes sent were read");
                assertNotNull(connection.endReason());
                return;
            }
            try (m) {
                assertTrue(headerCame);
                assertEquals(code, m.code());
                at += VhostUserMessage.HEADER_SIZE + m.size();
                if (!VhostUserCodecFuzzTest.decode(m, asked)) {
                    return;
                }
            }
        }
    }
}

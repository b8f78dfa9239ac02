package io.vhostffm.programs.demo;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.migration.net.UnixSocketChannel;
import io.vhostffm.vhost.os.UnixSocket;
import java.io.EOFException;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/**
 * The destination's side of the demo's transmit credits over a real socket pair: credit as it
 * comes, a named timeout when none comes, a named failure when the source is gone.
 */
class TransmitCreditsTest {
    @Test
    void theGuestMayTransmitUpToTheLatestCredit() throws Exception {
        try (UnixSocket.Pair pair = UnixSocket.pair();
                TransmitCredits.Gate gate = new TransmitCredits.Gate(new UnixSocketChannel(pair.first()), 100,
                        Duration.ofSeconds(30))) {
            UnixSocketChannel source = new UnixSocketChannel(pair.second());
            assertEquals(60, gate.allowance(40), "the first credit, from the plan");
            Messages.send(source, TransmitCredit.class, new TransmitCredit(300));
            Messages.send(source, TransmitCredit.class, new TransmitCredit(200)); // absolute: an older one changes nothing
            assertEquals(200, gate.allowance(100), "both credits read at once, the larger stands");
            assertEquals(300, gate.transmitUpTo());
            assertEquals(0, gate.allowance(300), "used up");
        }
    }

    @Test
    void aMissingCreditIsANamedTimeoutNotAHang() throws Exception {
        try (UnixSocket.Pair pair = UnixSocket.pair();
                TransmitCredits.Gate gate = new TransmitCredits.Gate(new UnixSocketChannel(pair.first()), 50,
                        Duration.ofMillis(200))) {
            TransmitCredits.CreditTimeoutException e = assertThrows(TransmitCredits.CreditTimeoutException.class, () -> {
                while (true) {
                    assertEquals(0, gate.allowance(50)); // each call waits up to 1 ms for a credit
                }
            });
            assertTrue(e.getMessage().contains("no transmit credit from the source for 200 ms"), e.getMessage());
            assertTrue(e.getMessage().contains("transmitted 50 frames, the last credit allows 50"), e.getMessage());
        }
    }

    @Test
    void aSourceThatIsGoneIsAnEndOfStream() throws Exception {
        try (UnixSocket.Pair pair = UnixSocket.pair();
                TransmitCredits.Gate gate = new TransmitCredits.Gate(new UnixSocketChannel(pair.first()), 10,
                        Duration.ofSeconds(30))) {
            pair.second().shutdown(); // the source process died: its end of the connection is gone
            EOFException e = assertThrows(EOFException.class, () -> gate.allowance(10));
            assertTrue(e.getMessage().contains("TransmitCredit"), e.getMessage());
        }
    }
}

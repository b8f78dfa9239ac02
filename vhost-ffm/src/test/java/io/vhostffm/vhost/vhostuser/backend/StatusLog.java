package io.vhostffm.vhost.vhostuser.backend;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import java.util.function.Predicate;

/** The backend's status lines, kept, printed, and waited on (with a deadline) by the peer tests. */
final class StatusLog implements Consumer<String> {
    private final String prefix;
    private final List<String> lines = new ArrayList<>();

    /** Prints every line after {@code prefix}; null keeps them without printing (a soak's thousands). */
    StatusLog(String prefix) {
        this.prefix = prefix;
    }

    @Override
    public synchronized void accept(String line) {
        if (prefix != null) {
            System.out.println(prefix + line);
        }
        lines.add(line);
        notifyAll();
    }

    synchronized List<String> lines() {
        return List.copyOf(lines);
    }

    /** Waits until {@code count} lines match, or fails naming what it waited for and every line seen. */
    synchronized List<String> await(String what, Predicate<String> match, int count, Duration timeout)
            throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            List<String> matching = lines.stream().filter(match).toList();
            if (matching.size() >= count) {
                return matching;
            }
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                throw new AssertionError("the backend did not report " + what + " within " + timeout.toSeconds()
                        + " s; its status lines:\n  " + String.join("\n  ", lines));
            }
            wait(Math.max(1, left / 1_000_000));
        }
    }
}

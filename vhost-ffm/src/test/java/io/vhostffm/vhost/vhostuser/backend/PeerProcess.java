package io.vhostffm.vhost.vhostuser.backend;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/**
 * A real peer (testpmd, QEMU) run as a process: standard input from /dev/null, its output read
 * line by line on a thread, kept and echoed with a prefix, and waited on with a deadline.
 */
final class PeerProcess implements AutoCloseable {
    private final String name;
    private final Process process;
    private final List<String> lines = new ArrayList<>();
    private boolean ended;

    private PeerProcess(String name, Process process) {
        this.name = name;
        this.process = process;
        Thread.ofPlatform().daemon().name(name + " output").start(this::readOutput);
    }

    static PeerProcess start(String name, List<String> command) throws IOException {
        System.out.println(name + ": " + String.join(" ", command));
        Process p = new ProcessBuilder(command).redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                .redirectErrorStream(true).start();
        return new PeerProcess(name, p);
    }

    private void readOutput() {
        try (BufferedReader r = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
            String line;
            while ((line = r.readLine()) != null) {
                String clean = line.replaceAll("\u001b\\[[0-9;?]*[A-Za-z]", "").replace("\r", "");
                System.out.println(name + "| " + clean);
                synchronized (this) {
                    lines.add(clean);
                    notifyAll();
                }
            }
        } catch (IOException e) {
            // the process is gone; what it printed is kept
        } finally {
            synchronized (this) {
                ended = true;
                notifyAll();
            }
        }
    }

    /** Waits until a line matches; fails when the deadline passes or the process's output ends first. */
    synchronized String await(String what, Predicate<String> match, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        int seen = 0;
        while (true) {
            for (; seen < lines.size(); seen++) {
                if (match.test(lines.get(seen))) {
                    return lines.get(seen);
                }
            }
            long left = deadline - System.nanoTime();
            if (ended || left <= 0) {
                throw new AssertionError(name + (ended ? " ended" : " did not report " + what + " within "
                        + timeout.toSeconds() + " s") + " before " + what + "; its output ends:\n" + tail(30));
            }
            wait(Math.max(1, left / 1_000_000));
        }
    }

    /** Waits for the process's output to end (the process exited and its pipe closed). */
    synchronized void awaitEnd(Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!ended) {
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                throw new AssertionError(name + " did not finish its output within " + timeout.toSeconds() + " s");
            }
            wait(Math.max(1, left / 1_000_000));
        }
    }

    synchronized String output() {
        return String.join("\n", lines);
    }

    synchronized String tail(int count) {
        return String.join("\n", lines.subList(Math.max(0, lines.size() - count), lines.size()));
    }

    Process process() {
        return process;
    }

    /** SIGTERM, then SIGKILL after {@code seconds}; returns the exit status once the output is read. */
    int stop(int seconds) throws InterruptedException {
        // ProcessHandle.destroy: SIGTERM alone. Process.destroy would also close our end of the
        // output pipe, and the peer's final statistics would die of SIGPIPE.
        process.toHandle().destroy();
        if (!process.waitFor(seconds, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            process.waitFor(5, TimeUnit.SECONDS);
            throw new AssertionError(name + " (pid " + process.pid() + ") did not end within " + seconds + " s of SIGTERM");
        }
        awaitEnd(Duration.ofSeconds(10));
        return process.exitValue();
    }

    /** Waits for the process to exit by itself within {@code timeout}; returns its status. */
    int awaitExit(Duration timeout) throws InterruptedException {
        if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
            process.destroyForcibly();
            process.waitFor(5, TimeUnit.SECONDS);
            throw new AssertionError(name + " did not exit within " + timeout.toSeconds() + " s; its output ends:\n" + tail(30));
        }
        awaitEnd(Duration.ofSeconds(10));
        return process.exitValue();
    }

    @Override
    public void close() {
        if (process.isAlive()) {
            process.destroyForcibly();
        }
    }
}

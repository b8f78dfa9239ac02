package io.vhostffm.testkit;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * DPDK's testpmd as a vhost-user backend process: {@code net_vhost} listening on a UNIX socket
 * (server mode, so a new frontend may connect after the last one left), {@code macswap}
 * forwarding (every frame a frontend's guest transmits on a pair comes back into that pair's
 * receive ring with its MAC addresses swapped), no hugepages ({@code --no-huge}: runs on any
 * host and in containers). {@link #stop} ends it with SIGTERM and reads its own final counters;
 * frames it held when a frontend disabled its rings it counts as TX-dropped, and that counter is
 * the only account of them. {@link #terminate} ends it the same way for a tear-down that wants no
 * counters (the benchmarks').
 */
public final class Testpmd implements AutoCloseable {
    /** Where Debian's {@code dpdk} package installs it. */
    public static final String EXECUTABLE = "/usr/bin/dpdk-testpmd";

    /** How often it prints its port statistics while it runs, unless its start says otherwise. */
    public static final Duration STATISTICS_PERIOD = Duration.ofSeconds(5);

    private static final int KEPT_LINES = 2000;

    /**
     * testpmd's "Accumulated forward statistics for all ports" at its exit.
     *
     * @param rxPackets frames it took from the frontends' transmit rings
     * @param txPackets frames it put into the frontends' receive rings
     * @param txDropped frames it took and could not put back (rings disabled or full)
     */
    public record Counters(long rxPackets, long txPackets, long txDropped) {
        /** These and {@code other}'s, added. */
        public Counters plus(Counters other) {
            return new Counters(rxPackets + other.rxPackets, txPackets + other.txPackets, txDropped + other.txDropped);
        }
    }

    private final String name;
    private final Process process;
    private final Thread reader;
    /** Its output pipe's {@code pipe:[inode]}, read at its start; names who else holds it. */
    private final String outputPipe;
    private final List<String> lines = new ArrayList<>();
    /** It said it started forwarding; set before the start's latch is counted down. */
    private volatile boolean forwarding;

    /** {@code started} is counted down when it starts forwarding or its output ends, whichever is first. */
    private Testpmd(String name, Process process, PrintStream echo, CountDownLatch started) {
        this.name = name;
        this.process = process;
        String pipe;
        try {
            pipe = Files.readSymbolicLink(Path.of("/proc", Long.toString(process.pid()), "fd", "1")).toString();
        } catch (IOException e) {
            pipe = "its output pipe (unknown: " + e.getMessage() + ")";
        }
        this.outputPipe = pipe;
        this.reader = Thread.ofPlatform().daemon().name("testpmd " + name).start(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(process.getInputStream(),
                    StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                    if (echo != null) {
                        echo.println("testpmd " + name + "| " + line);
                    }
                    synchronized (lines) {
                        lines.add(line);
                        if (lines.size() > KEPT_LINES) {
                            lines.remove(0);
                        }
                    }
                    if (line.contains("Start automatic packet forwarding") || line.startsWith("Port statistics")) {
                        forwarding = true;
                        started.countDown();
                    }
                }
            } catch (IOException e) {
                // the process is gone: its output ends here
            } finally {
                started.countDown(); // an exit before forwarding ends the start's wait at once
            }
        });
    }

    /**
     * Starts testpmd with {@code pairs} queue pairs on {@code socket}, its port statistics printed
     * every {@link #STATISTICS_PERIOD}; returns once it forwards.
     *
     * @see #start(Path, String, int, Duration, Duration, PrintStream)
     */
    public static Testpmd start(Path socket, String name, int pairs, Duration deadline, PrintStream echo)
            throws IOException {
        return start(socket, name, pairs, STATISTICS_PERIOD, deadline, echo);
    }

    /**
     * Starts testpmd with {@code pairs} queue pairs on {@code socket}; returns once it forwards
     * (its port, and with it the socket's listen, is started before forwarding is).
     *
     * @param name names its DPDK runtime files (with this process's pid) and its output lines
     * @param statisticsPeriod how often it prints its port statistics while it runs (whole
     *     seconds, at least one); a benchmark gives one longer than its run, so none is printed
     *     during it
     * @param echo where its output lines go as they come, or null to keep them only
     * @throws IOException when it is not installed, failed to start, exited before forwarding, or
     *     did not forward within {@code deadline} (its output is in the message)
     */
    public static Testpmd start(Path socket, String name, int pairs, Duration statisticsPeriod, Duration deadline,
            PrintStream echo) throws IOException {
        if (statisticsPeriod.toSeconds() < 1) {
            // with no period testpmd waits for Enter on its standard input, /dev/null, and exits at once
            throw new IllegalArgumentException("statistics period " + statisticsPeriod + ": at least 1 s");
        }
        if (!new File(EXECUTABLE).canExecute()) {
            throw new IOException(EXECUTABLE + " is not installed; bin/peer-bench and bin/kernel-bench install it");
        }
        List<String> command = List.of(EXECUTABLE, "-l", "0-1", "--no-pci", "--no-huge", "-m", "512",
                "--file-prefix=vhostffm-" + name + "-" + ProcessHandle.current().pid(),
                "--vdev", "net_vhost0,iface=" + socket + ",queues=" + pairs + ",client=0",
                "--", "--total-num-mbufs=16384", "--forward-mode=macswap", "--rxq=" + pairs, "--txq=" + pairs,
                "--auto-start", "--stats-period=" + statisticsPeriod.toSeconds());
        if (echo != null) {
            echo.println("testpmd " + name + ": " + String.join(" ", command));
        }
        Process p = new ProcessBuilder(command).redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                .redirectErrorStream(true).start();
        CountDownLatch started = new CountDownLatch(1);
        Testpmd pmd = new Testpmd(name, p, echo, started);
        boolean forwardingOrEnded;
        try {
            forwardingOrEnded = started.await(deadline.toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            forwardingOrEnded = false;
        }
        if (!pmd.forwarding) {
            pmd.close();
            if (forwardingOrEnded) {
                throw new IOException("testpmd " + name + "'s output ended before it forwarded"
                        + (p.isAlive() ? "" : " (exit status " + p.exitValue() + ")") + "; its output:\n"
                        + pmd.output());
            }
            throw new IOException("testpmd " + name + " did not start forwarding within " + deadline.toSeconds()
                    + " s; its output:\n" + pmd.output());
        }
        return pmd;
    }

    /**
     * SIGTERM (its output is not closed first: it would die of SIGPIPE), then its final counters.
     *
     * @throws IOException when it did not exit within {@code deadline} or printed no final statistics
     */
    public Counters stop(Duration deadline) throws IOException {
        process.toHandle().destroy();
        try {
            if (!process.waitFor(deadline.toMillis(), TimeUnit.MILLISECONDS)) {
                throw new IOException("testpmd " + name + " did not exit within " + deadline.toSeconds()
                        + " s of SIGTERM");
            }
            reader.join(deadline.toMillis()); // its output ends with the process
            if (reader.isAlive()) {
                // Some other process holds the pipe's write end: the end of stream never comes,
                // and our read end would stay open. Name them rather than leave a descriptor.
                throw new IOException("testpmd " + name + " exited, but its output (" + outputPipe
                        + ") did not end within " + deadline.toSeconds() + " s; also held by "
                        + OpenDescriptors.holders(outputPipe));
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted waiting for testpmd " + name + " to exit", e);
        }
        String printed = output();
        int block = printed.lastIndexOf("Accumulated forward statistics for all ports");
        if (block < 0) {
            throw new IOException("testpmd " + name + " printed no final statistics; its output:\n" + printed);
        }
        String statistics = printed.substring(block);
        return new Counters(counter(statistics, "RX-packets"), counter(statistics, "TX-packets"),
                counter(statistics, "TX-dropped"));
    }

    /**
     * SIGTERM, as {@link #stop}, for a tear-down that wants no counters: SIGKILL if it has not
     * exited within {@code grace}; then waits for its exit and its output's end (at most
     * {@code grace} each). Throws nothing: an interrupt ends the waits and stays set.
     */
    public void terminate(Duration grace) {
        process.toHandle().destroy();
        try {
            if (!process.waitFor(grace.toMillis(), TimeUnit.MILLISECONDS)) {
                process.destroyForcibly();
                process.waitFor(grace.toMillis(), TimeUnit.MILLISECONDS);
            }
            reader.join(grace.toMillis()); // closes our end of its output pipe at end of stream
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /**
     * SIGKILL, as a crashed backend process: no statistics, its connections closed by the kernel.
     *
     * @throws IOException when it did not exit within {@code deadline}
     */
    public void kill(Duration deadline) throws IOException {
        process.destroyForcibly();
        try {
            if (!process.waitFor(deadline.toMillis(), TimeUnit.MILLISECONDS)) {
                throw new IOException("testpmd " + name + " did not die of SIGKILL within " + deadline.toSeconds()
                        + " s");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted waiting for testpmd " + name + " to die", e);
        }
    }

    /** What it printed so far (its last lines). */
    public String output() {
        synchronized (lines) {
            return String.join("\n", lines);
        }
    }

    private long counter(String statistics, String counter) throws IOException {
        Matcher m = Pattern.compile(counter + ":\\s+(\\d+)").matcher(statistics);
        if (!m.find()) {
            throw new IOException("no " + counter + " in testpmd " + name + "'s final statistics");
        }
        return Long.parseLong(m.group(1));
    }

    /** Kills it if it still runs, and waits for its end and its output's (at most 20 s each). */
    @Override
    public void close() {
        process.destroyForcibly();
        try {
            process.waitFor(20, TimeUnit.SECONDS);
            reader.join(20_000); // closes our end of its output pipe at end of stream
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}

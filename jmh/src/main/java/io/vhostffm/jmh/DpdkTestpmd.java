package io.vhostffm.jmh;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * DPDK testpmd as the vhost-user backend of the vhost-user benchmarks: {@code net_vhost} listening
 * on a socket in a temporary directory ({@code client=0}), {@code --no-huge -m 512}, one
 * forwarding core, macswap forwarding on every queue pair, as the peer tests start it. Ready once
 * testpmd says it started forwarding (its port is started and the socket listens).
 */
final class DpdkTestpmd implements AutoCloseable {
    private static final int START_SECONDS = 60;
    private static final int STOP_SECONDS = 30;
    /** Lines of testpmd's output kept for an error message. */
    private static final int KEPT_LINES = 40;

    private final Path dir;
    private final Path socket;
    private final Process process;
    private final List<String> lastLines = new ArrayList<>();
    private Thread reader;

    private DpdkTestpmd(Path dir, Path socket, Process process) {
        this.dir = dir;
        this.socket = socket;
        this.process = process;
    }

    /**
     * Starts testpmd with {@code pairs} queue pairs on its vhost port and waits (at most 60 s)
     * until it forwards.
     *
     * @throws IllegalStateException when it exits or does not start in time, with its last output
     */
    static DpdkTestpmd start(String name, int pairs) throws IOException, InterruptedException {
        Path dir = Files.createTempDirectory("vhostffm-jmh-" + name);
        Path socket = dir.resolve("vhost.sock");
        List<String> command = List.of("dpdk-testpmd", "-l", "0-1", "--no-pci", "--no-huge", "-m", "512",
                "--file-prefix=vhostffm-jmh-" + name + "-" + ProcessHandle.current().pid(),
                "--vdev", "net_vhost0,iface=" + socket + ",queues=" + pairs + ",client=0",
                "--", "--total-num-mbufs=16384", "--forward-mode=macswap", "--rxq=" + pairs, "--txq=" + pairs,
                "--auto-start", "--stats-period=3600");
        Process process = new ProcessBuilder(command).redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                .redirectErrorStream(true).start();
        DpdkTestpmd testpmd = new DpdkTestpmd(dir, socket, process);
        CountDownLatch started = new CountDownLatch(1);
        testpmd.reader = Thread.ofPlatform().daemon().name("testpmd output").start(() -> testpmd.read(started));
        if (!started.await(START_SECONDS, TimeUnit.SECONDS)) {
            String output = testpmd.output();
            testpmd.close();
            throw new IllegalStateException("testpmd (" + pairs + " queue pairs) did not start forwarding within "
                    + START_SECONDS + " s (is dpdk-testpmd installed?); its last output:\n" + output);
        }
        if (!process.isAlive()) {
            String output = testpmd.output();
            testpmd.close();
            throw new IllegalStateException("testpmd exited with status " + process.exitValue() + ":\n" + output);
        }
        return testpmd;
    }

    /** Reads testpmd's output to its end (it must not block on a full pipe), keeping the last lines. */
    private void read(CountDownLatch started) {
        try (BufferedReader r = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
            String line;
            while ((line = r.readLine()) != null) {
                synchronized (lastLines) {
                    lastLines.add(line);
                    if (lastLines.size() > KEPT_LINES) {
                        lastLines.remove(0);
                    }
                }
                if (line.contains("Start automatic packet forwarding") || line.startsWith("Port statistics")) {
                    started.countDown();
                }
            }
        } catch (IOException e) {
            // testpmd is gone
        } finally {
            started.countDown(); // an exit before forwarding ends the wait at once; start() checks
        }
    }

    /** The socket net_vhost listens on. */
    Path socket() {
        return socket;
    }

    /** Its last lines of output. */
    String output() {
        synchronized (lastLines) {
            return String.join("\n", lastLines);
        }
    }

    /**
     * SIGTERM (SIGKILL after 30 s), waits for the output's reader to reach the end (it closes our
     * end of the pipe), then removes the socket and its directory.
     */
    @Override
    public void close() throws IOException, InterruptedException {
        // ProcessHandle.destroy, not Process.destroy: the latter closes the output pipe first, and
        // testpmd then dies of SIGPIPE instead of stopping its port.
        process.toHandle().destroy();
        if (!process.waitFor(STOP_SECONDS, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            process.waitFor(STOP_SECONDS, TimeUnit.SECONDS);
        }
        reader.join(TimeUnit.SECONDS.toMillis(STOP_SECONDS));
        Files.deleteIfExists(socket);
        Files.deleteIfExists(dir);
    }
}

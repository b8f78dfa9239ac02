package io.vhostffm.vhost.os;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * A {@link Stranger} child JVM running as another user (uid and gid 65534, no supplementary
 * groups, through {@code setpriv}): the test is root, so a real stranger is one setresuid away.
 */
public final class StrangerProcess implements AutoCloseable {
    /** The stranger's uid and gid (nobody/nogroup). */
    public static final int UID = 65534;
    private static final long DEADLINE_SECONDS = 60;

    private final Process process;
    private final BufferedReader out;

    private StrangerProcess(Process process) {
        this.process = process;
        this.out = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8));
    }

    /** Starts {@code Stranger <mode> <path>} as uid/gid 65534. */
    public static StrangerProcess start(String mode, Path path) throws Exception {
        String classes = Path.of(Stranger.class.getProtectionDomain().getCodeSource().getLocation().toURI()).toString();
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        ProcessBuilder builder = new ProcessBuilder("setpriv", "--reuid=" + UID, "--regid=" + UID, "--clear-groups",
                java, "-Xshare:off", "-cp", classes, Stranger.class.getName(), mode, path.toString());
        builder.redirectErrorStream(true);
        return new StrangerProcess(builder.start());
    }

    /** The child's pid (setpriv execs java, so it is the JVM's). */
    public long pid() {
        return process.pid();
    }

    /** The next line the stranger printed (a deadline bounds the wait). */
    public String nextLine() throws Exception {
        String line = CompletableFuture.supplyAsync(() -> {
            try {
                return out.readLine();
            } catch (IOException e) {
                throw new RuntimeException(e);
            }
        }).get(DEADLINE_SECONDS, TimeUnit.SECONDS);
        if (line == null) {
            throw new IllegalStateException("the stranger ended without saying more (exit " + process.waitFor() + ")");
        }
        return line;
    }

    /** Every line until the stranger exits, which it must within the deadline. */
    public List<String> rest() throws Exception {
        List<String> lines = new ArrayList<>();
        for (String line; (line = CompletableFuture.supplyAsync(() -> {
            try {
                return out.readLine();
            } catch (IOException e) {
                throw new RuntimeException(e);
            }
        }).get(DEADLINE_SECONDS, TimeUnit.SECONDS)) != null; ) {
            lines.add(line);
        }
        if (!process.waitFor(DEADLINE_SECONDS, TimeUnit.SECONDS)) {
            throw new IllegalStateException("the stranger did not exit: " + lines);
        }
        return lines;
    }

    @Override
    public void close() throws Exception {
        process.destroyForcibly();
        process.waitFor(DEADLINE_SECONDS, TimeUnit.SECONDS);
        out.close();
    }
}

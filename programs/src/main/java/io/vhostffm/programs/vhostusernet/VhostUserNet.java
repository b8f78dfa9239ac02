package io.vhostffm.programs.vhostusernet;

import io.vhostffm.vhost.device.userspace.QueuePairStats;
import io.vhostffm.vhost.os.DescriptorPoller;
import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.os.TapDevice;
import io.vhostffm.vhost.os.UnixSocket;
import io.vhostffm.vhost.os.UnixSocketListener;
import io.vhostffm.vhost.vhostuser.VhostUserConnection;
import io.vhostffm.vhost.vhostuser.backend.VhostUserNetBackend;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalTime;
import java.time.format.DateTimeFormatter;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * {@code vhost-user-net}: a vhost-user virtio-net backend on a TAP, for any vhost-user VMM (QEMU,
 * Cloud Hypervisor, crosvm, DPDK's virtio-user).
 *
 * <pre>
 * vhost-user-net --socket PATH [--server | --client] --tap NAME [--queues N] [--mtu N] [--stats-seconds S]
 * </pre>
 *
 * <ul>
 * <li>{@code --server} (default): listens on PATH; the VMM connects ({@code -chardev socket,path=PATH}
 *     in QEMU). One frontend at a time; when it goes, the next is served.</li>
 * <li>{@code --client}: connects to PATH, where the VMM listens ({@code server=on} in QEMU),
 *     retrying every second, and reconnects after the VMM goes.</li>
 * <li>The TAP is opened (made if absent) with N queues (one per queue pair) and brought up.</li>
 * <li>Status lines on standard output: connections, negotiated features by name, rings started and
 *     stopped, and the frames per second each way every few seconds while frames move.</li>
 * <li>SIGINT/SIGTERM: the session ends, every datapath stops, everything received is closed, the
 *     socket path removed and the TAP deleted; the exit status is the JVM's for the signal (130,
 *     143). A failure to start (TAP, socket) exits with 1; a bad command line with 2.</li>
 * </ul>
 */
public final class VhostUserNet {
    private static final DateTimeFormatter TIME = DateTimeFormatter.ofPattern("HH:mm:ss.SSS");

    private final Options options;
    private final EventFd stop;
    private final CountDownLatch finished = new CountDownLatch(1);
    private volatile boolean stopping;
    private volatile VhostUserNetBackend backend;

    private VhostUserNet(Options options, EventFd stop) {
        this.options = options;
        this.stop = stop;
    }

    /** The command line, parsed. */
    record Options(Path socket, boolean server, String tap, int queues, int mtu, int statsSeconds) {
        static Options parse(String[] args) {
            Path socket = null;
            boolean server = true;
            String tap = null;
            int queues = 1;
            int mtu = 1500;
            int statsSeconds = 5;
            for (int i = 0; i < args.length; i++) {
                String a = args[i];
                switch (a) {
                    case "--socket" -> socket = Path.of(value(args, ++i, a));
                    case "--server" -> server = true;
                    case "--client" -> server = false;
                    case "--tap" -> tap = value(args, ++i, a);
                    case "--queues" -> queues = number(value(args, ++i, a), a, 1, 128);
                    case "--mtu" -> mtu = number(value(args, ++i, a), a, 68, 65535);
                    case "--stats-seconds" -> statsSeconds = number(value(args, ++i, a), a, 0, 3600);
                    case "-h", "--help" -> throw new UsageException(null);
                    default -> throw new UsageException("unknown argument " + a);
                }
            }
            if (socket == null) {
                throw new UsageException("--socket PATH is required");
            }
            if (tap == null) {
                throw new UsageException("--tap NAME is required");
            }
            return new Options(socket, server, tap, queues, mtu, statsSeconds);
        }

        private static String value(String[] args, int i, String option) {
            if (i >= args.length) {
                throw new UsageException(option + " needs a value");
            }
            return args[i];
        }

        private static int number(String text, String option, int min, int max) {
            try {
                int n = Integer.parseInt(text);
                if (n < min || n > max) {
                    throw new UsageException(option + " must be " + min + ".." + max + ": " + text);
                }
                return n;
            } catch (NumberFormatException e) {
                throw new UsageException(option + " needs a number: " + text);
            }
        }
    }

    /** A command line that cannot be run; a null message asks for the usage alone. */
    static final class UsageException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        UsageException(String message) {
            super(message);
        }
    }

    static final String USAGE = "usage: vhost-user-net --socket PATH [--server | --client] --tap NAME [--queues N] "
            + "[--mtu N] [--stats-seconds S]";

    public static void main(String[] args) throws Exception {
        Options options;
        try {
            options = Options.parse(args);
        } catch (UsageException e) {
            if (e.getMessage() != null) {
                System.err.println("vhost-user-net: " + e.getMessage());
            }
            System.err.println(USAGE);
            System.exit(e.getMessage() == null ? 0 : 2);
            return;
        }
        int status;
        try (EventFd stop = EventFd.create("vhost-user-net stop")) {
            VhostUserNet program = new VhostUserNet(options, stop);
            Thread main = Thread.currentThread();
            Runtime.getRuntime().addShutdownHook(new Thread(() -> program.shutdown(main), "vhost-user-net shutdown"));
            status = program.run();
        }
        System.exit(status);
    }

    static void status(String line) {
        System.out.println(LocalTime.now().format(TIME) + " vhost-user-net: " + line);
        System.out.flush();
    }

    private int run() {
        try (TapDevice tap = TapDevice.create(options.tap(), options.queues(), TapDevice.VHOST_FLAGS)) {
            tap.setLinkUp(true);
            VhostUserNetBackend.Config config = new VhostUserNetBackend.Config(tap, options.queues(), options.mtu(),
                    VhostUserNetBackend.defaultFeatures(options.queues()), VhostUserNetBackend.DEFAULT_PROTOCOL_FEATURES,
                    VhostUserNet::status);
            backend = new VhostUserNetBackend(config);
            status(String.format("TAP %s up, %d queue pair(s), MTU %d; %s on %s", tap.name(), options.queues(),
                    options.mtu(), options.server() ? "listening" : "connecting", options.socket()));
            Thread stats = options.statsSeconds() > 0 ? Thread.ofPlatform().daemon().name("vhost-user-net stats")
                    .start(this::printRates) : null;
            try {
                if (options.server()) {
                    serveAsServer();
                } else {
                    serveAsClient();
                }
            } finally {
                backend.close();
                if (stats != null) {
                    stats.interrupt();
                }
            }
            QueuePairStats s = backend.stats();
            status(String.format("stopped: %d frames to the guest (%d bytes), %d from it (%d bytes), %d dropped, %d tx errors",
                    s.rxFrames(), s.rxBytes(), s.txFrames(), s.txBytes(), s.rxDropped(), s.txErrors()));
            return 0;
        } catch (NativeCallException | RuntimeException e) {
            status("failed: " + e.getMessage());
            return 1;
        } finally {
            finished.countDown();
        }
    }

    private void serveAsServer() throws NativeCallException {
        try {
            Files.deleteIfExists(options.socket()); // a leftover of a killed run; bind needs the path free
        } catch (java.io.IOException e) {
            throw new NativeCallException("unlink", null, 0, options.socket().toString(), e.getMessage());
        }
        try (UnixSocketListener listener = UnixSocketListener.bind(options.socket());
             DescriptorPoller poller = new DescriptorPoller(List.of(listener.fd(), stop.fd()))) {
            while (!stopping) {
                poller.poll(-1);
                if (stopping || poller.isReadable(1)) {
                    return;
                }
                if (!poller.isReadable(0)) {
                    continue;
                }
                UnixSocket socket = listener.accept();
                status("frontend connected on " + options.socket());
                String why = backend.serve(VhostUserConnection.backend(socket));
                status("session ended: " + why);
            }
        }
    }

    private void serveAsClient() throws NativeCallException {
        try (DescriptorPoller waiter = new DescriptorPoller(List.of(stop.fd()))) {
            boolean announced = false;
            while (!stopping) {
                UnixSocket socket;
                try {
                    socket = UnixSocket.connect(options.socket());
                } catch (NativeCallException e) {
                    if (!announced) {
                        status("waiting for a frontend to listen on " + options.socket() + " (" + e.errnoSymbol() + ")");
                        announced = true;
                    }
                    waiter.poll(1000); // retry every second; a stop request wakes this at once
                    continue;
                }
                announced = false;
                status("connected to the frontend on " + options.socket());
                String why = backend.serve(VhostUserConnection.backend(socket));
                status("session ended: " + why);
            }
        }
    }

    private void printRates() {
        QueuePairStats last = null;
        long lastTime = System.nanoTime();
        while (!stopping) {
            try {
                Thread.sleep(options.statsSeconds() * 1000L); // a status line's cadence, not a synchronisation
            } catch (InterruptedException e) {
                return;
            }
            VhostUserNetBackend b = backend;
            if (b == null) {
                continue;
            }
            QueuePairStats now = b.stats();
            long time = System.nanoTime();
            if (last != null && (now.rxFrames() != last.rxFrames() || now.txFrames() != last.txFrames())) {
                double seconds = (time - lastTime) / 1e9;
                status(String.format("%.0f frames/s to the guest, %.0f frames/s from it (totals %d / %d)",
                        (now.rxFrames() - last.rxFrames()) / seconds, (now.txFrames() - last.txFrames()) / seconds,
                        now.rxFrames(), now.txFrames()));
            }
            last = now;
            lastTime = time;
        }
    }

    /** SIGINT/SIGTERM: ends the session and the accept or connect loop, then waits for the main thread to clean up. */
    private void shutdown(Thread main) {
        if (finished.getCount() == 0) {
            return;
        }
        stopping = true;
        try {
            stop.signal();
        } catch (NativeCallException | RuntimeException e) {
            // closed: run() is finishing anyway
        }
        VhostUserNetBackend b = backend;
        if (b != null) {
            b.stopSession();
        }
        try {
            if (!finished.await(10, TimeUnit.SECONDS)) {
                System.err.println("vhost-user-net: did not stop within 10 s of the signal");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}

package io.vhostffm.vhost.vhostuser.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.vhost.device.userspace.QueuePairStats;
import io.vhostffm.vhost.virtio.VirtioFeature;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * QEMU 7.2 (TCG) with a real Linux 6.1 guest whose own virtio-net driver runs over vhost-user on
 * our backend: the guest pings the host side of the TAP, so echo requests cross the transmit ring
 * and replies the receive ring. Checked: every ping answered, the guest's own view (its feature
 * bits, MTU, queues and interface counters), the backend's counters, and that nothing is left open.
 *
 * <p>The cases, one guest boot each (a TCG boot costs 5-8 s, so not every combination):
 * <ul>
 * <li>packed on and off with every feature the backend offers (mergeable buffers, event index,
 *     indirect tables): the two ring formats at their defaults;</li>
 * <li>split with {@code mrg_rxbuf=off}: one receive chain per frame, the layout the mergeable
 *     cases never use;</li>
 * <li>packed with {@code event_idx=off}: the packed ring's event suppression in its plain
 *     enable/disable form (split with event index is the "packed off" case);</li>
 * <li>split with {@code indirect_desc=off}: direct chains only (the split ring is where Linux uses
 *     indirect tables for transmit, so it is where turning them off changes what we parse);</li>
 * <li>packed with two queue pairs ({@code mq=on}, two guest CPUs so the driver uses both): both
 *     pairs start in the backend and the guest lists rx-0, rx-1, tx-0, tx-1;</li>
 * <li>split, MTU 9000 ({@code host_mtu=9000}, VIRTIO_NET_F_MTU offered, the TAP at 9000) with
 *     8000-byte pings: 8042-byte frames each way, received through mergeable buffers (the guest
 *     posts page-sized buffers, so each reply spans several).</li>
 * </ul>
 *
 * <p>The guest kernel and initramfs come from bin/peer-bench (system properties
 * {@code vhostffm.peer.kernel} and {@code vhostffm.peer.initrd}). QEMU 7.2 under TCG crashes when
 * the guest sets DRIVER_OK with MSI-X on; {@code vectors=0} (legacy INTx) avoids it, also with
 * {@code mq=on}.
 */
@Tag("peer")
class QemuLinuxGuestPeerTest {
    private static final int PINGS = 20;
    // Link-local addresses: the guest and the TAP talk on this one link, nothing can route further.
    private static final String GUEST_IP = "169.254.77.2";
    private static final String HOST_IP = "169.254.77.1";
    private static final Duration GUEST_RUN = Duration.ofSeconds(180);
    /** Ethernet (14), IPv4 (20) and ICMP (8) headers around a ping's payload. */
    private static final int PING_OVERHEAD = 42;

    @TempDir
    Path dir;

    /**
     * One guest configuration.
     *
     * @param packed        the device's {@code packed} option
     * @param deviceOptions further {@code virtio-net-pci} options (comma-led, or empty)
     * @param queuePairs    queue pairs (TAP queues, {@code queues=} of the netdev, guest CPUs)
     * @param mtu           the TAP's and the guest's MTU
     * @param pingSize      ping's payload bytes
     */
    record Case(String name, boolean packed, String deviceOptions, int queuePairs, int mtu, int pingSize) {
        @Override
        public String toString() {
            return name;
        }
    }

    static Stream<Case> cases() {
        return Stream.of(
                new Case("packed", true, "", 1, 1500, 56),
                new Case("split", false, "", 1, 1500, 56),
                new Case("split, mrg_rxbuf off", false, ",mrg_rxbuf=off", 1, 1500, 56),
                new Case("packed, event_idx off", true, ",event_idx=off", 1, 1500, 56),
                new Case("split, indirect_desc off", false, ",indirect_desc=off", 1, 1500, 56),
                new Case("packed, 2 queue pairs", true, ",mq=on", 2, 1500, 56),
                new Case("split, MTU 9000", false, ",host_mtu=9000", 1, 9000, 8000));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void linuxGuestPingsThroughTheBackend(Case c) throws Exception {
        try {
            pingThroughTheBackend(c);
        } catch (GuestBoot.Hang e) {
            // The emulated boot hung before /init (see GuestBoot): once more, printed; a second hang fails.
            System.out.println(c + ": " + e.getMessage() + "\nonce more:");
            pingThroughTheBackend(c);
        }
    }

    private void pingThroughTheBackend(Case c) throws Exception {
        String qemu = PeerTools.executable("qemu-system-x86_64");
        Path kernel = artifact("vhostffm.peer.kernel");
        Path initrd = artifact("vhostffm.peer.initrd");
        Map<Integer, String> before = PeerTools.sessionDescriptors();
        Path socket = Files.createTempDirectory(dir, "attempt-").resolve("vhost-user.sock"); // one per boot
        boolean jumbo = c.mtu() > 1500;
        String output;
        long features;
        QueuePairStats stats;
        List<String> status;
        // VIRTIO_NET_F_MTU only for the case that sets host_mtu: QEMU offers it to the guest only then.
        long extra = jumbo ? VirtioFeature.MTU.mask() : 0;
        try (ServedBackend served = new ServedBackend("vuqemu%d", c.queuePairs(), c.mtu(), extra, socket)) {
            run("ip", "addr", "add", HOST_IP + "/24", "dev", served.tap.name());
            if (jumbo) {
                run("ip", "link", "set", "dev", served.tap.name(), "mtu", Integer.toString(c.mtu()));
            }
            String queues = c.queuePairs() > 1 ? ",queues=" + c.queuePairs() : "";
            PeerProcess vm = PeerProcess.start("qemu", List.of(qemu, "-accel", "tcg", "-cpu", "Nehalem", "-m", "256M",
                    "-smp", Integer.toString(c.queuePairs()), "-nodefaults", "-display", "none", "-serial", "stdio",
                    "-no-reboot", "-kernel", kernel.toString(), "-initrd", initrd.toString(),
                    "-append", "console=ttyS0 panic=-1 oops=panic quiet peer.ip=" + GUEST_IP + "/24 peer.host=" + HOST_IP
                            + " peer.count=" + PINGS + " peer.mtu=" + c.mtu() + " peer.size=" + c.pingSize(),
                    "-object", "memory-backend-memfd,id=mem,size=256M,share=on", "-numa", "node,memdev=mem",
                    "-chardev", "socket,id=c0,path=" + socket, "-netdev", "vhost-user,id=n0,chardev=c0" + queues,
                    // vectors=0: QEMU 7.2 under TCG segfaults at DRIVER_OK with MSI-X.
                    "-device", "virtio-net-pci,netdev=n0,packed=" + (c.packed() ? "on" : "off") + c.deviceOptions()
                            + ",vectors=0,mac=52:54:00:12:34:56"));
            try (vm) {
                GuestBoot.awaitInit(vm, served.status);
                vm.await("the guest's end", l -> l.startsWith("peer-guest: done"), GUEST_RUN);
                int exit = vm.awaitExit(Duration.ofSeconds(30));
                assertEquals(0, exit, "QEMU's exit status");
            }
            output = vm.output();
            served.sessionEnd(Duration.ofSeconds(20));
            features = served.backend.ackedFeatures();
            stats = served.backend.stats();
            status = served.status.lines();
        }
        assertTrue(output.contains("peer-guest: done 0"), "the guest's ping failed:\n" + tail(output));
        Matcher summary = Pattern.compile("(\\d+) packets transmitted, (\\d+) packets received").matcher(output);
        assertTrue(summary.find(), "no ping summary in the guest's output");
        assertEquals(PINGS, Integer.parseInt(summary.group(1)), "pings sent");
        assertEquals(PINGS, Integer.parseInt(summary.group(2)), "pings answered");
        // busybox ping: "N bytes from ADDR: seq=..." with N the ICMP length (payload + 8), one line a reply.
        long fullReplies = Pattern.compile("peer-guest: ping: " + (c.pingSize() + 8) + " bytes from " + HOST_IP)
                .matcher(output).results().count();
        assertEquals(PINGS, fullReplies, "replies of " + (c.pingSize() + 8) + " ICMP bytes");

        Matcher guestBits = Pattern.compile("peer-guest: features ([01]{64})").matcher(output);
        assertTrue(guestBits.find(), "the guest printed no virtio feature bits");
        String bits = guestBits.group(1);
        assertEquals('1', bits.charAt(VirtioFeature.VERSION_1.bit()), "VERSION_1 in the guest's feature bits");
        expectFeature(bits, features, VirtioFeature.RING_PACKED, c.packed());
        expectFeature(bits, features, VirtioFeature.MRG_RXBUF, !c.deviceOptions().contains("mrg_rxbuf=off"));
        expectFeature(bits, features, VirtioFeature.EVENT_IDX, !c.deviceOptions().contains("event_idx=off"));
        expectFeature(bits, features, VirtioFeature.INDIRECT_DESC, !c.deviceOptions().contains("indirect_desc=off"));
        expectFeature(bits, features, VirtioFeature.MQ, c.queuePairs() > 1);
        expectFeature(bits, features, VirtioFeature.MTU, jumbo);

        Matcher guestMtu = Pattern.compile("peer-guest: mtu (\\d+)").matcher(output);
        assertTrue(guestMtu.find(), "the guest printed no MTU");
        assertEquals(c.mtu(), Integer.parseInt(guestMtu.group(1)), "the guest's eth0 MTU");
        Matcher guestQueues = Pattern.compile("peer-guest: queues ([^\\n]*)").matcher(output);
        assertTrue(guestQueues.find(), "the guest printed no queue list");
        List<String> expectedQueues = new ArrayList<>();
        for (int q = 0; q < c.queuePairs(); q++) {
            expectedQueues.add("rx-" + q);
            expectedQueues.add("tx-" + q);
        }
        assertEquals(expectedQueues.stream().sorted().toList(),
                Stream.of(guestQueues.group(1).trim().split("\\s+")).sorted().toList(), "the guest's eth0 queues");
        for (int pair = 0; pair < c.queuePairs(); pair++) {
            String started = "queue pair " + pair + " started";
            assertTrue(status.stream().anyMatch(l -> l.startsWith(started)), "the backend never reported '" + started + "'");
        }

        // The guest's eth0 counters: "eth0: rxBytes rxPackets ... txBytes txPackets ..."
        Matcher counters = Pattern.compile("peer-guest: counters\\s*eth0:\\s*(\\d+) (\\d+)(?: \\d+){6} (\\d+) (\\d+)").matcher(output);
        assertTrue(counters.find(), "the guest printed no eth0 counters");
        long guestRxBytes = Long.parseLong(counters.group(1));
        long guestRx = Long.parseLong(counters.group(2));
        long guestTxBytes = Long.parseLong(counters.group(3));
        long guestTx = Long.parseLong(counters.group(4));
        assertTrue(guestTx >= PINGS && guestRx >= PINGS, "guest counters rx " + guestRx + " tx " + guestTx);
        // Everything the guest sent crossed our transmit path, everything it received our receive path.
        assertEquals(guestTx, stats.txFrames(), "frames from the guest (guest tx counter vs backend)");
        assertEquals(guestTxBytes, stats.txBytes(), "bytes from the guest (guest tx counter vs backend)");
        // The host may still send (an ARP probe) after the guest read its counters: at least as many.
        assertTrue(stats.rxFrames() >= guestRx, "frames to the guest: backend " + stats.rxFrames() + ", guest rx counter " + guestRx);
        assertEquals(0, stats.rxDropped() + stats.txErrors(), "backend drops and transmit errors");
        // Every echo request and reply is a whole frame of payload + 42 bytes each way.
        long frame = c.pingSize() + PING_OVERHEAD;
        assertTrue(guestTxBytes >= PINGS * frame && guestRxBytes >= PINGS * frame,
                "guest byte counters rx " + guestRxBytes + " tx " + guestTxBytes + " for " + PINGS + " frames of " + frame);
        System.out.printf("qemu %s: backend features 0x%x, guest features %s; guest eth0 mtu %d, queues %s, rx %d frames "
                + "(%d bytes) tx %d frames (%d bytes); %d/%d pings of %d bytes answered%n", c, features, bits,
                c.mtu(), guestQueues.group(1).trim(), guestRx, guestRxBytes, guestTx, guestTxBytes, PINGS, PINGS, c.pingSize());
        assertEquals(before, PeerTools.sessionDescriptors(), "descriptors left open after the session");
    }

    /** {@code feature} negotiated ({@code expected}) both in the guest's own bits and in what the backend was acked. */
    private static void expectFeature(String guestBits, long backendFeatures, VirtioFeature feature, boolean expected) {
        assertEquals(expected, guestBits.charAt(feature.bit()) == '1', feature + " in the guest's own feature bits " + guestBits);
        assertEquals(expected, feature.in(backendFeatures), feature + " acked to the backend: " + VirtioFeature.describe(backendFeatures));
    }

    private static Path artifact(String property) {
        String value = System.getProperty(property);
        if (value == null || !Files.isRegularFile(Path.of(value))) {
            throw new AssertionError("system property " + property + " names no file (" + value
                    + "); bin/peer-bench provides the guest kernel and initramfs");
        }
        return Path.of(value);
    }

    private static void run(String... command) throws Exception {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertEquals(0, p.waitFor(), String.join(" ", command) + ": " + out);
    }

    private static String tail(String output) {
        String[] lines = output.split("\n");
        return String.join("\n", List.of(lines).subList(Math.max(0, lines.length - 30), lines.length));
    }
}

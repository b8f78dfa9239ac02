package io.vhostffm.vhost.os;

import io.vhostffm.vhost.device.kernel.VhostBackendFeature;
import io.vhostffm.vhost.virtio.VirtioFeature;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.vhostffm.vhost.internal.LinuxConstants;
import io.vhostffm.vhost.internal.Structs;
import java.io.IOException;
import java.lang.foreign.GroupLayout;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.SequenceLayout;
import java.lang.foreign.StructLayout;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * ABI proof: every ioctl number, constant, feature bit, errno, struct size and field offset the
 * Java side defines is printed by a C program compiled with gcc against the system headers,
 * and compared. The C program is generated from the Java definitions themselves (the enums,
 * {@link LinuxConstants} by reflection, {@link Structs#ALL} member by member), so nothing the
 * Java side defines can be missed, and a name the headers lack fails the compile. No gcc or no
 * headers: the test fails and says what to install.
 */
class AbiTest {
    private static final List<String> HEADERS = List.of(
            "stddef.h", "stdio.h", "errno.h", "fcntl.h", "unistd.h", "poll.h", "sched.h", "sys/eventfd.h", "sys/mman.h",
            "sys/socket.h", "sys/uio.h", "sys/un.h", "net/if.h",
            "linux/vhost.h", "linux/vhost_types.h", "linux/if_tun.h", "linux/virtio_ring.h", "linux/virtio_net.h",
            "linux/virtio_config.h", "linux/sockios.h", "linux/if_packet.h", "linux/if_ether.h", "sys/syscall.h",
            "linux/io_uring.h");
    private static final String INSTALL_HINT =
            "install a C compiler and the kernel UAPI headers: apt-get install gcc linux-libc-dev (Debian/Ubuntu)";

    /**
     * Feature macros this system's linux-libc-dev headers do not define (checked: absent from
     * virtio_config.h and virtio_net.h), with their bit numbers from the virtio 1.3 spec (sections
     * 6 and 5.1.3). Each such bit is compared against this number instead of the header; every
     * other bit is compared against its macro.
     */
    static final Map<String, Integer> BITS_THESE_HEADERS_LACK = Map.of(
            "VIRTIO_F_NOTIFICATION_DATA", 38,
            "VIRTIO_F_NOTIF_CONFIG_DATA", 39,
            "VIRTIO_NET_F_VQ_NOTF_COAL", 52,
            "VIRTIO_NET_F_GUEST_USO4", 54,
            "VIRTIO_NET_F_GUEST_USO6", 55,
            "VIRTIO_NET_F_HOST_USO", 56,
            "VIRTIO_NET_F_GUEST_HDRLEN", 59);

    /**
     * TUN offload macros older linux-libc-dev headers do not define, with their values from
     * {@code <linux/if_tun.h>} of Linux 6.2, where they were added. Compared against the macro
     * when the headers define it, else against this number.
     */
    static final Map<String, Integer> TUN_OFFLOADS_OLD_HEADERS_LACK = Map.of(
            "TUN_F_USO4", 0x20,
            "TUN_F_USO6", 0x40);

    /** Label to (C expression, Java value); labels are what the report shows. */
    private record Check(String cExpression, long javaValue) {}

    static Map<String, Check> javaDefinitions() throws IllegalAccessException {
        Map<String, Check> checks = new LinkedHashMap<>();
        for (IoctlRequest r : IoctlRequest.values()) {
            checks.put("ioctl " + r.name(), new Check("(long long)(unsigned long)" + r.name(), r.number()));
        }
        for (VirtioFeature f : VirtioFeature.values()) {
            Integer specBit = BITS_THESE_HEADERS_LACK.get(f.specName());
            if (specBit != null) {
                // the headers here predate the macro: compare against the virtio spec's number
                checks.put("feature " + f.name() + " (spec number, headers lack " + f.specName() + ")",
                        new Check(Long.toString(specBit), f.bit()));
            } else {
                checks.put("feature " + f.name(), new Check(f.specName(), f.bit()));
            }
        }
        for (VhostBackendFeature f : VhostBackendFeature.values()) {
            checks.put("backend feature " + f.name(), new Check(f.cName(), f.bit()));
        }
        for (TunFlag f : TunFlag.values()) {
            checks.put("tun flag " + f.name(), new Check(f.cName(), f.value()));
        }
        for (TunOffload f : TunOffload.values()) {
            checks.put("tun offload " + f.name(), new Check(f.cName(), f.value()));
        }
        for (Field field : LinuxConstants.class.getDeclaredFields()) {
            int m = field.getModifiers();
            if (Modifier.isPublic(m) && Modifier.isStatic(m) && Modifier.isFinal(m)) {
                checks.put("constant " + field.getName(), new Check(field.getName(), ((Number) field.get(null)).longValue()));
            }
        }
        for (int errno = 1; errno <= Errno.MAX; errno++) {
            String symbol = Errno.symbol(errno);
            if (!symbol.startsWith("errno ")) {
                checks.put("errno " + symbol, new Check(symbol, errno));
            }
        }
        for (StructLayout layout : Structs.ALL) {
            String struct = "struct " + layout.name().orElseThrow();
            checks.put("sizeof " + struct, new Check("sizeof(" + struct + ")", layout.byteSize()));
            addMembers(checks, struct, layout, 0);
        }
        return checks;
    }

    /** Every named member: its offset, and its size unless it is a flexible array. */
    private static void addMembers(Map<String, Check> checks, String struct, GroupLayout group, long base) {
        for (MemoryLayout member : group.memberLayouts()) {
            if (member.name().isEmpty()) {
                continue; // padding
            }
            String name = member.name().get();
            long offset = base + group.byteOffset(MemoryLayout.PathElement.groupElement(name));
            checks.put("offsetof " + struct + "." + name, new Check("offsetof(" + struct + ", " + name + ")", offset));
            boolean flexible = member instanceof SequenceLayout s && s.elementCount() == 0;
            if (!flexible) {
                checks.put("sizeof " + struct + "." + name,
                        new Check("sizeof(((" + struct + " *)0)->" + name + ")", member.byteSize()));
            }
            if (member instanceof GroupLayout nested) {
                // members of a nested union/struct are reachable by their own names in C too
                // (ifr_flags is a macro for ifr_ifru.ifru_flags)
                addMembers(checks, struct, nested, offset);
            }
        }
    }

    @Test
    void everyJavaDefinitionMatchesTheSystemHeaders() throws Exception {
        Map<String, Check> checks = javaDefinitions();
        Path dir = Files.createDirectories(Path.of("target", "abi"));
        Path source = dir.resolve("abi.c");
        Files.writeString(source, cProgram(checks));
        Path binary = dir.resolve("abi");

        String compiler = findCompiler();
        Result compile = run(List.of(compiler, "-std=gnu11", "-Wall", "-o", binary.toString(), source.toString()));
        if (compile.status != 0) {
            if (compile.output.contains("No such file or directory") && compile.output.contains(".h")) {
                fail("the system headers are missing (" + firstLine(compile.output) + "): " + INSTALL_HINT);
            }
            fail("gcc could not compile the ABI program " + source.toAbsolutePath()
                    + " (a Java name the headers do not define?):\n" + compile.output);
        }
        Result output = run(List.of(binary.toString()));
        assertEquals(0, output.status, output.output);

        Map<String, Long> fromC = new LinkedHashMap<>();
        for (String line : output.output.split("\n")) {
            int tab = line.lastIndexOf('\t');
            fromC.put(line.substring(0, tab), Long.parseLong(line.substring(tab + 1)));
        }
        List<String> mismatches = new ArrayList<>();
        for (var e : checks.entrySet()) {
            Long c = fromC.get(e.getKey());
            if (c == null) {
                mismatches.add(e.getKey() + ": not printed by the C program");
            } else if (c != e.getValue().javaValue()) {
                mismatches.add(String.format("%s: Java 0x%x, C headers 0x%x", e.getKey(), e.getValue().javaValue(), c));
            }
        }
        assertTrue(mismatches.isEmpty(), "ABI mismatches:\n" + String.join("\n", mismatches));
        assertEquals(checks.size(), fromC.size());
        assertTrue(checks.size() > 300, "the enumeration found " + checks.size() + " definitions");
        System.out.println("ABI: " + checks.size() + " constants, ioctl numbers, sizes and offsets match the system headers");
    }

    @Test
    void theEnumerationReachesEveryKindOfDefinition() throws Exception {
        Map<String, Check> checks = javaDefinitions();
        assertEquals("VHOST_GET_VRING_BASE", checks.get("ioctl VHOST_GET_VRING_BASE").cExpression().replace("(long long)(unsigned long)", ""));
        assertTrue(checks.containsKey("offsetof struct vhost_vring_addr.log_guest_addr"));
        assertTrue(checks.containsKey("offsetof struct ifreq.ifr_flags"));
        assertTrue(checks.containsKey("offsetof struct vhost_memory.regions"));
        assertTrue(checks.containsKey("constant MFD_CLOEXEC"));
        assertTrue(checks.containsKey("errno ENOTSOCK"));
        assertTrue(checks.containsKey("feature RING_PACKED"));
        assertTrue(checks.containsKey("tun flag MULTI_QUEUE"));
        assertTrue(checks.containsKey("backend feature IOTLB_MSG_V2"));
        assertTrue(checks.containsKey("tun offload TSO6"));
    }

    private static String cProgram(Map<String, Check> checks) {
        StringBuilder c = new StringBuilder("/* Generated by AbiTest from the Java definitions; do not edit. */\n#define _GNU_SOURCE\n");
        for (String h : HEADERS) {
            c.append("#include <").append(h).append(">\n");
        }
        // Headers older than the macro: the number it has in the headers that define it.
        TUN_OFFLOADS_OLD_HEADERS_LACK.forEach((macro, value) -> c.append("#ifndef ").append(macro)
                .append("\n#define ").append(macro).append(' ').append(value).append("\n#endif\n"));
        c.append("\nint main(void) {\n");
        for (var e : checks.entrySet()) {
            c.append("    printf(\"%s\\t%lld\\n\", \"").append(e.getKey()).append("\", (long long)(")
                    .append(e.getValue().cExpression()).append("));\n");
        }
        return c.append("    return 0;\n}\n").toString();
    }

    private static String findCompiler() {
        for (String candidate : List.of("gcc", "cc")) {
            for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(":")) {
                if (Files.isExecutable(Path.of(dir, candidate))) {
                    return Path.of(dir, candidate).toString();
                }
            }
        }
        fail("no C compiler (gcc) on the PATH: " + INSTALL_HINT);
        throw new AssertionError();
    }

    private record Result(int status, String output) {}

    private static Result run(List<String> command) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        byte[] out = p.getInputStream().readAllBytes();
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            fail("timed out: " + command);
        }
        return new Result(p.exitValue(), new String(out, StandardCharsets.UTF_8));
    }

    private static String firstLine(String text) {
        int nl = text.indexOf('\n');
        return nl < 0 ? text : text.substring(0, nl);
    }
}

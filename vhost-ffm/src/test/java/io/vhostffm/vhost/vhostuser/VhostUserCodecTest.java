package io.vhostffm.vhost.vhostuser;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.FileDescriptor;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Every request's payload both ways, and every check a malformed message must fail. */
class VhostUserCodecTest {

    private static VhostUserMessage request(VhostUserRequest r, byte[] payload, List<FileDescriptor> fds) {
        return new VhostUserMessage(r.code(), VhostUserMessage.VERSION, payload, fds);
    }

    private static List<FileDescriptor> eventFds(int count) throws Exception {
        List<FileDescriptor> fds = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            fds.add(EventFd.create("codec test " + i).fd());
        }
        return fds;
    }

    private static VhostUserProtocolException rejected(String request, String field, Runnable decode) {
        VhostUserProtocolException e = assertThrows(VhostUserProtocolException.class, decode::run);
        assertEquals(request, e.request(), e.getMessage());
        assertEquals(field, e.field(), e.getMessage());
        return e;
    }

    @ParameterizedTest
    @EnumSource(VhostUserRequest.class)
    void everyRequestNumberMapsBackAndHasAPayloadShape(VhostUserRequest r) {
        assertSame(r, VhostUserRequest.forCode(r.code()));
        assertTrue(r.toString().endsWith("(" + r.code() + ")"));
        assertTrue(r.maxFds() >= 0 && r.maxFds() <= VhostUserCodec.MAX_MEMORY_REGIONS);
    }

    @Test
    void unknownRequestNumbersAreNamed() {
        assertEquals(null, VhostUserRequest.forCode(0));
        assertEquals(null, VhostUserRequest.forCode(99));
        rejected("request 99", "request", () -> VhostUserCodec.checkRequest(new VhostUserMessage(99, 1, new byte[0], List.of())));
    }

    @Test
    void headerChecks() {
        VhostUserCodec.checkHeader(1, VhostUserMessage.VERSION, 0, false);
        VhostUserCodec.checkHeader(1, VhostUserMessage.VERSION | VhostUserMessage.REPLY, 8, true);
        VhostUserCodec.checkHeader(2, VhostUserMessage.VERSION | VhostUserMessage.NEED_REPLY, 8, false);
        rejected("GET_FEATURES(1)", "flags", () -> VhostUserCodec.checkHeader(1, 0, 0, false));
        rejected("GET_FEATURES(1)", "flags", () -> VhostUserCodec.checkHeader(1, 2, 0, false));
        rejected("GET_FEATURES(1)", "flags", () -> VhostUserCodec.checkHeader(1, 1 | 0x10, 0, false));
        rejected("GET_FEATURES(1)", "flags", () -> VhostUserCodec.checkHeader(1, 1 | VhostUserMessage.REPLY, 0, false));
        rejected("GET_FEATURES(1)", "flags", () -> VhostUserCodec.checkHeader(1, 1, 0, true));
        rejected("GET_FEATURES(1)", "size", () -> VhostUserCodec.checkHeader(1, 1, VhostUserMessage.MAX_PAYLOAD + 1, false));
        rejected("GET_FEATURES(1)", "size", () -> VhostUserCodec.checkHeader(1, 1, -1, false));
        rejected("request 77", "flags", () -> VhostUserCodec.checkHeader(77, 0, 0, false));
    }

    @Test
    void headerAndWireBytesAreLittleEndian() {
        VhostUserMessage m = VhostUserMessage.request(VhostUserRequest.SET_FEATURES, true, VhostUserCodec.u64(0x0102030405060708L), List.of());
        byte[] wire = m.wireBytes();
        assertEquals(20, wire.length);
        assertEquals(2, wire[0]);
        assertEquals(VhostUserMessage.VERSION | VhostUserMessage.NEED_REPLY, wire[4]);
        assertEquals(8, wire[8]);
        assertEquals(8, wire[12]);
        assertEquals(1, wire[19]);
        assertTrue(m.needsReply());
        assertFalse(m.isReply());
    }

    @ParameterizedTest
    @EnumSource(value = VhostUserRequest.class, names = {"GET_FEATURES", "SET_OWNER", "RESET_OWNER", "GET_PROTOCOL_FEATURES",
            "GET_QUEUE_NUM", "GET_STATUS", "RESET_DEVICE"})
    void requestsWithoutPayloadTakeNone(VhostUserRequest r) {
        assertSame(r, VhostUserCodec.checkRequest(request(r, new byte[0], List.of())));
        rejected(r.toString(), "size", () -> VhostUserCodec.checkRequest(request(r, new byte[8], List.of())));
    }

    @ParameterizedTest
    @EnumSource(value = VhostUserRequest.class, names = {"SET_FEATURES", "SET_PROTOCOL_FEATURES", "SEND_RARP", "NET_SET_MTU",
            "SET_STATUS"})
    void u64RequestsRoundTrip(VhostUserRequest r) {
        VhostUserMessage m = request(r, VhostUserCodec.u64(0x8000_0000_1234_5678L), List.of());
        assertSame(r, VhostUserCodec.checkRequest(m));
        assertEquals(0x8000_0000_1234_5678L, VhostUserCodec.u64(m));
        rejected(r.toString(), "size", () -> VhostUserCodec.checkRequest(request(r, new byte[4], List.of())));
        rejected(r.toString(), "size", () -> VhostUserCodec.checkRequest(request(r, new byte[9], List.of())));
    }

    @ParameterizedTest
    @EnumSource(value = VhostUserRequest.class, names = {"SET_VRING_NUM", "SET_VRING_BASE", "GET_VRING_BASE", "SET_VRING_ENABLE"})
    void vringStateRequestsRoundTrip(VhostUserRequest r) {
        VhostUserMessage m = request(r, VhostUserCodec.vringState(3, 0x8000_8005L), List.of());
        assertSame(r, VhostUserCodec.checkRequest(m));
        assertEquals(new VringState(3, 0x8000_8005L), VhostUserCodec.vringState(m));
        rejected(r.toString(), "index", () -> VhostUserCodec.vringState(request(r, VhostUserCodec.vringState(256, 0), List.of())));
        rejected(r.toString(), "index", () -> VhostUserCodec.vringState(request(r, VhostUserCodec.vringState(-1, 0), List.of())));
        rejected(r.toString(), "size", () -> VhostUserCodec.checkRequest(request(r, new byte[16], List.of())));
    }

    @Test
    void getVringBaseReplyDecodes() {
        VhostUserMessage reply = VhostUserMessage.reply(VhostUserRequest.GET_VRING_BASE, VhostUserCodec.vringState(1, 32885));
        assertTrue(reply.isReply());
        assertEquals(new VringState(1, 32885), VhostUserCodec.vringState(reply));
    }

    @Test
    void vringAddressRoundTripsAndChecksFlags() {
        VringAddress a = new VringAddress(2, VringAddress.LOG, 0x7f00_0000_1000L, 0x7f00_0000_3000L, 0x7f00_0000_2000L, 0x3000);
        VhostUserMessage m = request(VhostUserRequest.SET_VRING_ADDR, VhostUserCodec.vringAddress(a), List.of());
        assertSame(VhostUserRequest.SET_VRING_ADDR, VhostUserCodec.checkRequest(m));
        assertEquals(a, VhostUserCodec.vringAddress(m));
        assertTrue(VhostUserCodec.vringAddress(m).logged());
        rejected("SET_VRING_ADDR(9)", "flags", () -> VhostUserCodec.vringAddress(request(VhostUserRequest.SET_VRING_ADDR,
                VhostUserCodec.vringAddress(new VringAddress(0, 0x2, 0, 0, 0, 0)), List.of())));
        rejected("SET_VRING_ADDR(9)", "index", () -> VhostUserCodec.vringAddress(request(VhostUserRequest.SET_VRING_ADDR,
                VhostUserCodec.vringAddress(new VringAddress(300, 0, 0, 0, 0, 0)), List.of())));
        rejected("SET_VRING_ADDR(9)", "size", () -> VhostUserCodec.checkRequest(request(VhostUserRequest.SET_VRING_ADDR,
                new byte[32], List.of())));
    }

    @ParameterizedTest
    @EnumSource(value = VhostUserRequest.class, names = {"SET_VRING_KICK", "SET_VRING_CALL", "SET_VRING_ERR"})
    void vringFdRequestsCheckTheNoFdFlagAgainstTheDescriptors(VhostUserRequest r) throws Exception {
        try (VhostUserMessage m = request(r, VhostUserCodec.vringFd(5, false), eventFds(1))) {
            assertEquals(new VringFd(5, false), VhostUserCodec.vringFd(m));
        }
        assertEquals(new VringFd(7, true), VhostUserCodec.vringFd(request(r, VhostUserCodec.vringFd(7, true), List.of())));
        rejected(r.toString(), "fds", () -> VhostUserCodec.vringFd(request(r, VhostUserCodec.vringFd(0, false), List.of())));
        try (VhostUserMessage m = request(r, VhostUserCodec.vringFd(0, true), eventFds(1))) {
            rejected(r.toString(), "fds", () -> VhostUserCodec.vringFd(m));
        }
        rejected(r.toString(), "payload", () -> VhostUserCodec.vringFd(request(r, VhostUserCodec.u64(0x200), List.of())));
        try (VhostUserMessage m = request(r, VhostUserCodec.vringFd(0, false), eventFds(2))) {
            rejected(r.toString(), "fds", () -> VhostUserCodec.checkRequest(m));
        }
    }

    private static MemoryRegion region(long gpa, long size, long uaddr) {
        return new MemoryRegion(gpa, size, uaddr, 0);
    }

    @Test
    void memoryTableRoundTripsWithOneDescriptorPerRegion() throws Exception {
        List<MemoryRegion> regions = List.of(region(0, 0xa0000, 0x7f00_0000_0000L), region(0x100000, 0x7ff00000L, 0x7f00_1000_0000L));
        try (VhostUserMessage m = request(VhostUserRequest.SET_MEM_TABLE, VhostUserCodec.memoryTable(regions), eventFds(2))) {
            assertSame(VhostUserRequest.SET_MEM_TABLE, VhostUserCodec.checkRequest(m));
            assertEquals(regions, VhostUserCodec.memoryTable(m));
        }
        // Some frontends always send the full eight-region table.
        byte[] full = new byte[VhostUserCodec.MEMORY_TABLE_HEADER + 8 * VhostUserCodec.MEMORY_REGION_SIZE];
        byte[] one = VhostUserCodec.memoryTable(List.of(region(0, 0x1000, 0x1000)));
        System.arraycopy(one, 0, full, 0, one.length);
        try (VhostUserMessage m = request(VhostUserRequest.SET_MEM_TABLE, full, eventFds(1))) {
            assertEquals(1, VhostUserCodec.memoryTable(m).size());
        }
    }

    private static void memoryTableRejected(String field, List<MemoryRegion> regions, int fds) throws Exception {
        try (VhostUserMessage m = request(VhostUserRequest.SET_MEM_TABLE, VhostUserCodec.memoryTable(regions), eventFds(fds))) {
            rejected("SET_MEM_TABLE(5)", field, () -> VhostUserCodec.memoryTable(m));
        }
    }

    @Test
    void memoryTableRejectsEveryMalformedTable() throws Exception {
        memoryTableRejected("nregions", List.of(), 0);
        List<MemoryRegion> nine = new ArrayList<>();
        for (int i = 0; i < 9; i++) {
            nine.add(region(0x10000L * i, 0x1000, 0x7f00_0000_0000L + 0x10000L * i));
        }
        try (VhostUserMessage m = request(VhostUserRequest.SET_MEM_TABLE, VhostUserCodec.memoryTable(nine), eventFds(8))) {
            rejected("SET_MEM_TABLE(5)", "nregions", () -> VhostUserCodec.memoryTable(m));
        }
        memoryTableRejected("fds", List.of(region(0, 0x1000, 0x1000)), 0);
        memoryTableRejected("fds", List.of(region(0, 0x1000, 0x1000)), 2);
        memoryTableRejected("regions[0].memory_size", List.of(region(0, 0, 0x1000)), 1);
        memoryTableRejected("regions[0].memory_size", List.of(region(0, -4096, 0x1000)), 1);
        memoryTableRejected("regions[0].guest_phys_addr", List.of(region(0x7fff_ffff_ffff_f000L + 0x7fff_ffff_ffff_f000L, 0x2000, 0x1000)), 1);
        memoryTableRejected("regions[0].userspace_addr", List.of(region(0, 0x2000, -0x1000L)), 1);
        memoryTableRejected("regions[0].mmap_offset", List.of(new MemoryRegion(0, 0x2000, 0x1000, -0x1000L)), 1);
        memoryTableRejected("regions[1].guest_phys_addr", List.of(region(0, 0x2000, 0x10000), region(0x1000, 0x1000, 0x20000)), 2);
        memoryTableRejected("regions[1].userspace_addr", List.of(region(0, 0x2000, 0x10000), region(0x4000, 0x1000, 0x11000)), 2);
        byte[] cut = VhostUserCodec.memoryTable(List.of(region(0, 0x1000, 0x1000)));
        try (VhostUserMessage m = request(VhostUserRequest.SET_MEM_TABLE, java.util.Arrays.copyOf(cut, cut.length - 1), eventFds(1))) {
            rejected("SET_MEM_TABLE(5)", "size", () -> VhostUserCodec.memoryTable(m));
        }
        rejected("SET_MEM_TABLE(5)", "size", () -> VhostUserCodec.checkRequest(request(VhostUserRequest.SET_MEM_TABLE, new byte[4], List.of())));
    }

    @Test
    void memoryTablePaddingMustBeZero() throws Exception {
        byte[] table = VhostUserCodec.memoryTable(List.of(region(0, 0x1000, 0x1000)));
        table[7] = 0x19;
        try (VhostUserMessage m = request(VhostUserRequest.SET_MEM_TABLE, table, eventFds(1))) {
            rejected("SET_MEM_TABLE(5)", "padding", () -> VhostUserCodec.memoryTable(m));
        }
    }

    @Test
    void unknownRequestNumbersAreNamedUnsignedEverywhere() {
        int code = 0xf8000001;
        VhostUserMessage m = new VhostUserMessage(code, VhostUserMessage.VERSION, new byte[0], List.of());
        assertEquals("request 4160749569", m.requestName());
        rejected("request 4160749569", "request", () -> VhostUserCodec.checkRequest(m));
        rejected("request 4160749569", "size", () -> VhostUserCodec.checkHeader(code, VhostUserMessage.VERSION, -1, false));
    }

    private static VhostUserMessage reply(int code, byte[] payload, List<FileDescriptor> fds) {
        return new VhostUserMessage(code, VhostUserMessage.VERSION | VhostUserMessage.REPLY, payload, fds);
    }

    @Test
    void repliesAnswerTheRequestAskedWithEightBytesAndNoDescriptor() throws Exception {
        VhostUserCodec.checkReply(reply(1, VhostUserCodec.u64(7), List.of()), VhostUserRequest.GET_FEATURES);
        VhostUserCodec.checkReply(reply(5, VhostUserCodec.u64(0), List.of()), VhostUserRequest.SET_MEM_TABLE);
        rejected("GET_FEATURES(1)", "flags", () -> VhostUserCodec.checkReply(
                request(VhostUserRequest.GET_FEATURES, VhostUserCodec.u64(7), List.of()), VhostUserRequest.GET_FEATURES));
        rejected("GET_STATUS(40)", "request", () -> VhostUserCodec.checkReply(
                reply(40, VhostUserCodec.u64(7), List.of()), VhostUserRequest.GET_FEATURES));
        rejected("request 4160749569", "request", () -> VhostUserCodec.checkReply(
                reply(0xf8000001, VhostUserCodec.u64(7), List.of()), VhostUserRequest.GET_FEATURES));
        rejected("GET_CONFIG(24)", "request", () -> VhostUserCodec.checkReply(
                reply(24, VhostUserCodec.u64(0), List.of()), VhostUserRequest.GET_CONFIG));
        rejected("GET_QUEUE_NUM(17)", "size", () -> VhostUserCodec.checkReply(
                reply(17, new byte[4], List.of()), VhostUserRequest.GET_QUEUE_NUM));
        try (VhostUserMessage m = reply(17, VhostUserCodec.u64(2), eventFds(1))) {
            rejected("GET_QUEUE_NUM(17)", "fds", () -> VhostUserCodec.checkReply(m, VhostUserRequest.GET_QUEUE_NUM));
        }
    }

    @Test
    void logAreaNeedsOneDescriptorAndAPositiveSize() throws Exception {
        try (VhostUserMessage m = request(VhostUserRequest.SET_LOG_BASE, VhostUserCodec.logArea(new LogArea(8192, 0)), eventFds(1))) {
            assertEquals(new LogArea(8192, 0), VhostUserCodec.logArea(m));
        }
        rejected("SET_LOG_BASE(6)", "fds", () -> VhostUserCodec.logArea(request(VhostUserRequest.SET_LOG_BASE,
                VhostUserCodec.logArea(new LogArea(8192, 0)), List.of())));
        try (VhostUserMessage m = request(VhostUserRequest.SET_LOG_BASE, VhostUserCodec.logArea(new LogArea(0, 0)), eventFds(1))) {
            rejected("SET_LOG_BASE(6)", "mmap_size", () -> VhostUserCodec.logArea(m));
        }
        try (VhostUserMessage m = request(VhostUserRequest.SET_LOG_BASE, VhostUserCodec.logArea(new LogArea(8192, -4096)), eventFds(1))) {
            rejected("SET_LOG_BASE(6)", "mmap_offset", () -> VhostUserCodec.logArea(m));
        }
    }

    @ParameterizedTest
    @EnumSource(value = VhostUserRequest.class, names = {"IOTLB_MSG", "GET_CONFIG", "SET_CONFIG", "POSTCOPY_ADVISE",
            "GET_INFLIGHT_FD", "ADD_MEM_REG", "GET_MAX_MEM_SLOTS"})
    void requestsNotServedAreRefusedByName(VhostUserRequest r) {
        rejected(r.toString(), "request", () -> VhostUserCodec.checkRequest(request(r, new byte[0], List.of())));
    }

    @Test
    void closingAMessageClosesTheDescriptorsNotTaken() throws Exception {
        List<FileDescriptor> fds = eventFds(2);
        VhostUserMessage m = request(VhostUserRequest.SET_MEM_TABLE, new byte[0], fds);
        FileDescriptor taken = m.takeFd(0);
        assertThrows(IllegalStateException.class, () -> m.takeFd(0));
        m.close();
        assertTrue(taken.isOpen());
        assertFalse(fds.get(1).isOpen());
        taken.close();
    }

    @Test
    void protocolFeaturesAreNamed() {
        assertEquals("MQ|REPLY_ACK|STATUS", VhostUserProtocolFeature.describe(0x10009));
        assertEquals("MQ|LOG_SHMFD|RARP|REPLY_ACK|NET_MTU|BACKEND_REQ|CRYPTO_SESSION|BACKEND_SEND_FD|HOST_NOTIFIER|STATUS",
                VhostUserProtocolFeature.describe(0x10cbf));
        assertEquals("none", VhostUserProtocolFeature.describe(0));
        assertEquals("bit 40", VhostUserProtocolFeature.describe(1L << 40));
    }
}

package io.vhostffm.vhost.vhostuser.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.FileDescriptor;
import io.vhostffm.vhost.os.MemfdGuestMemory;
import io.vhostffm.vhost.virtio.VirtioFeature;
import io.vhostffm.vhost.vhostuser.MemoryRegion;
import io.vhostffm.vhost.vhostuser.VhostUserCodec;
import io.vhostffm.vhost.vhostuser.VhostUserConnection;
import io.vhostffm.vhost.vhostuser.VhostUserMessage;
import io.vhostffm.vhost.vhostuser.VhostUserProtocolFeature;
import io.vhostffm.vhost.vhostuser.VhostUserRequest;
import io.vhostffm.vhost.vhostuser.VringAddress;
import java.util.List;

/**
 * The frontend side of the tests that talk vhost-user to a real backend by hand: whole requests
 * over a {@link VhostUserConnection}, and the usual steps of a session (negotiation, a one-region
 * memory table, a split ring's setup) with the layout those tests share.
 *
 * <p>Guest memory is one memfd region of {@link #MEMORY} bytes at guest-physical 0, which the
 * frontend pretends to have mapped at {@link #FRONTEND_VA}. Ring {@code i} lies at guest-physical
 * {@link #ringBase ringBase(i)}: descriptors there, the available ring 4 KiB above, the used ring
 * 8 KiB above (room for 256 entries each).
 */
final class HandWrittenFrontend {
    static final long FRONTEND_VA = 0x7f00_0000_0000L;
    static final long MEMORY = 1 << 20;
    static final int RING_SIZE = 256;
    static final long AVAIL_OFFSET = 0x1000;
    static final long USED_OFFSET = 0x2000;

    private final VhostUserConnection connection;

    HandWrittenFrontend(VhostUserConnection connection) {
        this.connection = connection;
    }

    VhostUserConnection connection() {
        return connection;
    }

    /** Guest-physical address of ring {@code index}'s descriptor table. */
    static long ringBase(int index) {
        return 0x10000L * (index + 1);
    }

    void send(VhostUserRequest r, byte[] payload, List<FileDescriptor> fds) throws Exception {
        connection.send(VhostUserMessage.request(r, false, payload, fds));
    }

    /** Sends a request that is always answered and returns the answer, checking its request code. */
    VhostUserMessage ask(VhostUserRequest r, byte[] payload) throws Exception {
        connection.send(VhostUserMessage.request(r, false, payload, List.of()));
        VhostUserMessage reply = connection.receive();
        assertEquals(r.code(), reply.code(), "reply to " + r);
        return reply;
    }

    /** Checks the offer and acks VERSION_1, MRG_RXBUF and protocol features (REPLY_ACK only). */
    void negotiate() throws Exception {
        long offered = VhostUserCodec.u64(ask(VhostUserRequest.GET_FEATURES, new byte[0]));
        assertEquals(VhostUserNetBackend.DEFAULT_FEATURES, offered);
        send(VhostUserRequest.SET_FEATURES, VhostUserCodec.u64(VirtioFeature.VERSION_1.mask() | VirtioFeature.MRG_RXBUF.mask()
                | VhostUserProtocolFeature.PROTOCOL_FEATURES_BIT), List.of());
        send(VhostUserRequest.SET_PROTOCOL_FEATURES, VhostUserCodec.u64(VhostUserProtocolFeature.REPLY_ACK.mask()), List.of());
    }

    /** The memory table: {@code guest}'s first region, {@link #MEMORY} bytes at {@link #FRONTEND_VA}. */
    void memTable(MemfdGuestMemory guest) throws Exception {
        send(VhostUserRequest.SET_MEM_TABLE, VhostUserCodec.memoryTable(List.of(new MemoryRegion(0, MEMORY, FRONTEND_VA, 0))),
                List.of(guest.memfdRegions().get(0).fd()));
    }

    /** Ring {@code index} at {@link #ringBase}, split, {@link #RING_SIZE} entries, from 0, enabled. */
    void ring(int index, EventFd kick, EventFd call) throws Exception {
        long base = FRONTEND_VA + ringBase(index);
        send(VhostUserRequest.SET_VRING_NUM, VhostUserCodec.vringState(index, RING_SIZE), List.of());
        send(VhostUserRequest.SET_VRING_BASE, VhostUserCodec.vringState(index, 0), List.of());
        send(VhostUserRequest.SET_VRING_ADDR, VhostUserCodec.vringAddress(new VringAddress(index, 0, base, base + USED_OFFSET,
                base + AVAIL_OFFSET, 0)), List.of());
        send(VhostUserRequest.SET_VRING_KICK, VhostUserCodec.vringFd(index, false), List.of(kick.fd()));
        send(VhostUserRequest.SET_VRING_CALL, VhostUserCodec.vringFd(index, false), List.of(call.fd()));
        send(VhostUserRequest.SET_VRING_ENABLE, VhostUserCodec.vringState(index, 1), List.of());
    }
}

package io.vhostffm.migration.net;

import io.vhostffm.migration.MigrationException;
import io.vhostffm.migration.MigrationPeerException;
import io.vhostffm.migration.MigrationPhase;
import io.vhostffm.vhost.device.DirtyLog;
import io.vhostffm.vring.GuestMemory;
import io.vhostffm.vring.GuestRegion;
import java.io.EOFException;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;

/**
 * Guest RAM for a migration between two hosts (no shared memfds): precopy driven by the dirty
 * log, on a channel of its own next to the device stream. Enough RAM migration for a complete
 * migration in tests and the demo; the device part is the product.
 *
 * <p>Source: {@link Source#sendAll} (every non-zero page, the log cleared first so that whatever
 * is written meanwhile shows up dirty), then {@link Source#iterate} (send the dirty pages, clear,
 * until a round is small), then at stop-and-copy, after the datapath stopped,
 * {@link Source#finalPass} (the last dirty pages and the end). Whoever writes guest memory marks
 * the log: vhost (VHOST_F_LOG_ALL), the userspace datapath and the control queue (through the
 * device's dirty log), and the vCPUs (here the fake guest; on a real host KVM's dirty log).
 *
 * <p>Wire: records of an 8-byte big-endian guest address and one 4 KiB page; the address
 * {@code -1} ends a round, {@code -2} ends the migration. The destination refuses an address
 * outside its memory or not page-aligned, naming it and the byte offset. A failure of the peer or
 * the connection (a write or read that failed or timed out, the end of the connection before the
 * end marker) is a {@link MigrationPeerException} in phase RAM_PRECOPY on either side.
 */
public final class RamPrecopy {
    private static final long PAGE = DirtyLog.PAGE_SIZE;
    private static final long END_OF_ROUND = -1;
    private static final long END = -2;

    private RamPrecopy() {}

    /** The sending side. */
    public static final class Source {
        private final GuestMemory memory;
        private final DirtyLog log;
        private final WritableByteChannel out;
        private final ByteBuffer record = ByteBuffer.allocate(8 + (int) PAGE);
        private long pagesSent;
        private long bytesSent;
        private int rounds;

        public Source(GuestMemory memory, DirtyLog log, WritableByteChannel out) {
            this.memory = memory;
            this.log = log;
            this.out = out;
        }

        /** Round 0: the log is cleared, then every page that is not all zero is sent. */
        public long sendAll() throws MigrationException {
            try {
                return sendAllOrFail();
            } catch (IOException e) {
                throw failed(e);
            }
        }

        private static MigrationPeerException failed(IOException e) {
            return MigrationPeerException.of(MigrationPhase.RAM_PRECOPY, "the destination's RAM connection", e);
        }

        private long sendAllOrFail() throws IOException {
            log.clear();
            long sent = 0;
            for (GuestRegion r : memory.regions()) {
                for (long off = 0; off < r.size(); off += PAGE) {
                    MemorySegment page = r.segment().asSlice(off, PAGE);
                    if (page.mismatch(ZERO) != -1) {
                        sendPage(r.guestAddress() + off, page);
                        sent++;
                    }
                }
            }
            endRound(END_OF_ROUND);
            return sent;
        }

        /**
         * Dirty rounds until one sends at most {@code smallEnough} pages or {@code maxRounds} ran.
         *
         * @return the pages of the last round
         */
        public long iterate(int maxRounds, long smallEnough) throws MigrationException {
            try {
                long last = Long.MAX_VALUE;
                for (int i = 0; i < maxRounds && last > smallEnough; i++) {
                    last = sendDirty();
                    endRound(END_OF_ROUND);
                }
                return last;
            } catch (IOException e) {
                throw failed(e);
            }
        }

        /** The last dirty pages (guest paused, datapath stopped), then the end. */
        public long finalPass() throws MigrationException {
            try {
                long n = sendDirty();
                endRound(END);
                return n;
            } catch (IOException e) {
                throw failed(e);
            }
        }

        private long sendDirty() throws IOException {
            long[] pages = log.fetchAndClear();
            long n = 0;
            for (long address : pages) {
                int region = memory.findRegion(address, PAGE);
                if (region >= 0) { // the log also covers holes; nothing lives there
                    GuestRegion r = memory.region(region);
                    sendPage(address, r.segment().asSlice(address - r.guestAddress(), PAGE));
                    n++;
                }
            }
            return n;
        }

        private void sendPage(long address, MemorySegment page) throws IOException {
            record.clear();
            record.putLong(address);
            record.put(page.asByteBuffer());
            record.flip();
            writeFully(record);
            pagesSent++;
        }

        private void endRound(long marker) throws IOException {
            ByteBuffer b = ByteBuffer.allocate(8).putLong(marker).flip();
            writeFully(b);
            rounds++;
        }

        private void writeFully(ByteBuffer b) throws IOException {
            while (b.hasRemaining()) {
                bytesSent += out.write(b);
            }
        }

        public long pagesSent() {
            return pagesSent;
        }

        public long bytesSent() {
            return bytesSent;
        }

        public int rounds() {
            return rounds;
        }
    }

    private static final MemorySegment ZERO = MemorySegment.ofArray(new byte[(int) PAGE]);

    /** The receiving side: writes every page into its own guest memory until the end. */
    public static final class Destination {
        private final GuestMemory memory;
        private final ReadableByteChannel in;
        private final ByteBuffer address = ByteBuffer.allocate(8);
        private final ByteBuffer page = ByteBuffer.allocate((int) PAGE);
        private long offset;
        private long pages;

        public Destination(GuestMemory memory, ReadableByteChannel in) {
            this.memory = memory;
            this.in = in;
        }

        /**
         * Reads until the end marker.
         *
         * @throws MigrationException naming the byte offset of a bad address
         * @throws MigrationPeerException (phase RAM_PRECOPY) when the source or the connection
         *     failed, or the connection ended before the end marker (naming the byte offset)
         */
        public long receiveAll() throws MigrationException {
            while (true) {
                long at = offset;
                readFully(address);
                long a = address.getLong(0);
                if (a == END) {
                    return pages;
                }
                if (a == END_OF_ROUND) {
                    continue;
                }
                int region = (a & (PAGE - 1)) == 0 ? memory.findRegion(a, PAGE) : -1;
                if (region < 0) {
                    throw new MigrationException(String.format("RAM precopy: page address 0x%x at byte offset %d is not a "
                            + "page of guest memory", a, at));
                }
                readFully(page);
                GuestRegion r = memory.region(region);
                MemorySegment.copy(MemorySegment.ofArray(page.array()), 0, r.segment(), a - r.guestAddress(), PAGE);
                pages++;
            }
        }

        private void readFully(ByteBuffer b) throws MigrationException {
            b.clear();
            while (b.hasRemaining()) {
                int n;
                try {
                    n = in.read(b);
                } catch (IOException e) {
                    throw MigrationPeerException.of(MigrationPhase.RAM_PRECOPY, "the source's RAM connection",
                            new IOException("RAM precopy: read failed at byte offset " + (offset + b.position()) + ": "
                                    + e.getMessage(), e));
                }
                if (n < 0) {
                    throw MigrationPeerException.of(MigrationPhase.RAM_PRECOPY, "the source's RAM connection",
                            new EOFException("RAM precopy: the source closed the connection at byte offset "
                                    + (offset + b.position())));
                }
            }
            offset += b.capacity();
        }

        public long pages() {
            return pages;
        }
    }
}

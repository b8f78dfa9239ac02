package io.vhostffm.jmh;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.vring.DeviceQueue;
import io.vhostffm.vring.QueuePosition;
import io.vhostffm.vring.QueueState;
import io.vhostffm.vring.VhostVringBase;
import java.lang.reflect.Field;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;
import org.openjdk.jmh.infra.Control;

/**
 * Runs each benchmark's set-up and a few invocations directly, without JMH, and checks they do
 * the work they claim: a benchmark over a broken fixture would measure nothing.
 */
class BenchmarkFixturesTest {

    @ParameterizedTest
    @CsvSource({"split, 1", "split, 8", "packed, 1", "packed, 8", "split, 1024", "packed, 1024"})
    void indexResyncAppliesTheFinalIndicesAndEncodesTheBases(String format, int queues) throws Exception {
        IndexResyncBenchmark bench = new IndexResyncBenchmark();
        bench.format = format;
        bench.queues = queues;
        bench.setUp();
        try {
            checkResync(bench, format, queues, bench.resyncAndEncodeBase());
            // Scramble the queues, then the production path must reach the same state and bases.
            DeviceQueue[] devices = field(bench, "devices");
            for (DeviceQueue d : devices) {
                d.resync(format.equals("packed") ? QueuePosition.packed(1, false, 1, false, 0)
                        : QueuePosition.split(1, 1, 0));
            }
            java.util.Arrays.fill((int[]) field(bench, "vringBases"), -1);
            checkResync(bench, format, queues, bench.queueResync());
        } finally {
            bench.tearDown();
        }
    }

    private static void checkResync(IndexResyncBenchmark bench, String format, int queues, int[] bases)
            throws Exception {
        DeviceQueue[] devices = field(bench, "devices");
        List<QueuePosition>[] finals = field(bench, "finals");
        // The last round applied set (rounds - 1) & 1 to every queue.
        int rounds = IndexResyncBenchmark.RESYNCS_PER_INVOCATION / queues;
        List<QueuePosition> last = finals[(rounds - 1) & 1];
        boolean packed = format.equals("packed");
        int[] expected = new int[queues];
        for (int q = 0; q < queues; q++) {
            QueuePosition f = last.get(q);
            QueueState state = devices[q].saveState();
            assertEquals(packed, f.packed(), "queue " + q + " format");
            assertEquals(f, state.position(), "queue " + q + " position: indices, wrap counters, inuse");
            assertEquals(f.lastAvailIdx(), state.shadowAvailIdx(), "queue " + q + " shadow := last avail");
            assertEquals(false, state.signalledUsedValid(), "queue " + q + " signalled_used_valid");
            expected[q] = packed
                    ? VhostVringBase.encodeKernelPacked(f.lastAvailIdx(), f.lastAvailWrapCounter(), f.usedIdx(),
                            f.usedWrapCounter())
                    : VhostVringBase.encodeSplit(f.lastAvailIdx());
        }
        assertArrayEquals(expected, bases);
    }

    @ParameterizedTest
    @CsvSource({"split, 1", "split, 2", "split, 4", "split, indirect4",
                "packed, 1", "packed, 2", "packed, 4", "packed, indirect4"})
    void takePublishServesWholeBatchesRoundAfterRound(String format, String chain) {
        TakePublishBenchmark bench = new TakePublishBenchmark();
        bench.format = format;
        bench.chain = chain;
        bench.setUp();
        try {
            // Each method throws unless it served exactly BATCH chains; several rounds make the
            // driver recycle descriptors (and the packed ring wrap: 1024 slots, 256+ per round).
            for (int round = 0; round < 6; round++) {
                bench.refill();
                bench.takePublishEach();
                bench.refill();
                bench.takeAllPublishBatch();
            }
        } finally {
            bench.tearDown();
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"split", "packed"})
    void pingPongRoundTripsBetweenTwoThreads(String format) throws Exception {
        RingPingPongBenchmark bench = new RingPingPongBenchmark();
        bench.format = format;
        bench.setUp();
        try {
            RingPingPongBenchmark.DriverScratch driverScratch = new RingPingPongBenchmark.DriverScratch();
            RingPingPongBenchmark.DeviceScratch deviceScratch = new RingPingPongBenchmark.DeviceScratch();
            deviceScratch.setUp(bench);
            Control control = new Control();
            int trips = 10_000;
            CompletableFuture<Integer> device = CompletableFuture.supplyAsync(() -> {
                int ids = 0;
                for (int i = 0; i < trips; i++) {
                    ids += bench.device(deviceScratch, control) >= 0 ? 1 : 0;
                }
                return ids;
            });
            long writtenTotal = 0;
            for (int i = 0; i < trips; i++) {
                int written = bench.driver(driverScratch, control);
                assertEquals(1536, written, "round trip " + i + ": the device reports the whole writable buffer");
                writtenTotal += written;
            }
            assertEquals(trips, device.get(60, TimeUnit.SECONDS), "every take succeeded");
            assertEquals(1536L * trips, writtenTotal);
        } finally {
            bench.tearDown();
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 16})
    void deltaDetectionComparesAFullStateAndFindsTheOneChange(int pairs) {
        DeltaDetectionBenchmark bench = new DeltaDetectionBenchmark();
        bench.pairs = pairs;
        bench.setUp();
        assertEquals(DeltaDetectionBenchmark.MAC_ENTRIES,
                bench.live.net().macTable().unicastCount() + bench.live.net().macTable().multicastCount(), "full MAC table");
        assertEquals(DeltaDetectionBenchmark.RSS_TABLE_LENGTH, bench.live.net().rss().indirectionTable().length);
        long vlans = java.util.Arrays.stream(bench.live.net().vlanTable()).map(Long::bitCount).sum();
        assertEquals(DeltaDetectionBenchmark.VLANS_ALLOWED, vlans, "VLANs allowed");
        assertEquals(pairs, bench.live.net().queuePairs());
        // A deep copy: equal content, no shared array, so the check really compares the arrays.
        org.junit.jupiter.api.Assertions.assertNotSame(bench.live, bench.snapshot);
        assertEquals(bench.live, bench.snapshot);
        for (int i = 0; i < 3; i++) {
            assertEquals(true, bench.noDelta(), "no delta");
            assertEquals(false, bench.oneDeltaDetect(), "one delta detected");
            assertEquals(java.util.List.of("net.rss.indirectionTable"), bench.oneDeltaFields());
        }
    }

    @ParameterizedTest
    @CsvSource({"java, 64, 1, shared, writev", "java, 1514, 1, shared, writev", "c, 64, 1, shared, writev",
            "c, 1514, 1, shared, writev", "java, 64, 2, shared, writev", "java, 1514, 2, shared, writev",
            "java, 64, 2, per-pair, writev", "java, 1514, 2, per-pair, writev", "c, 64, 2, shared, writev",
            "c, 1514, 2, shared, writev", "java, 64, 1, shared, io_uring", "java, 1514, 2, shared, io_uring",
            "java, 64, 2, per-pair, io_uring"})
    void userspaceDatapathMovesEveryFrameThroughARealTap(String impl, int frameSize, int pairs, String workers,
            String io) throws Exception {
        UserspaceDatapathBenchmark bench = new UserspaceDatapathBenchmark();
        bench.frameSize = frameSize;
        bench.impl = impl;
        bench.pairs = pairs;
        bench.workers = workers;
        bench.io = io;
        bench.setUp();
        String tap = bench.guest.tap.name();
        assertEquals(true, java.nio.file.Files.exists(java.nio.file.Path.of("/sys/class/net", tap)), "TAP " + tap);
        try {
            // More than a ring's worth each way: slots and descriptors are recycled.
            for (int i = 0; i < 20; i++) {
                bench.transmit();
            }
            for (int i = 0; i < 20; i++) {
                bench.receive();
            }
            assertEquals(bench.framesSent, bench.framesArrived, "every frame arrived");
            assertEquals(40L * UserspaceDatapathBenchmark.BATCH, bench.framesArrived);
            assertEquals(pairs, bench.guest.tap.queues().size());
            assertEquals(pairs, bench.rxPerQueue.length);
            long received = 0;
            for (int q = 0; q < pairs; q++) {
                // The flows spread over every TAP queue, so every pair's receive ring carried frames.
                assertTrue(bench.rxPerQueue[q] > 0, "frames out of TAP queue " + q + ": "
                        + java.util.Arrays.toString(bench.rxPerQueue));
                received += bench.rxPerQueue[q];
            }
            assertEquals(20L * UserspaceDatapathBenchmark.BATCH, received);
            if (impl.equals("java")) {
                for (int p = 0; p < pairs; p++) {
                    // Each transmit queue got its share back used from the datapath (the last batch may be in flight).
                    assertTrue(bench.txCompleted[p] >= 19L * UserspaceDatapathBenchmark.BATCH / pairs,
                            "frames completed on transmit queue " + p + ": " + java.util.Arrays.toString(bench.txCompleted));
                }
            }
        } finally {
            bench.tearDown();
        }
        assertEquals(false, java.nio.file.Files.exists(java.nio.file.Path.of("/sys/class/net", tap)),
                "TAP " + tap + " removed");
    }

    @ParameterizedTest
    @CsvSource({"java-write, 64", "java-io_uring, 64", "java-io_uring-linked, 64", "c-writev, 64", "c-io_uring, 64", "java-write, 1514",
            "java-io_uring, 1514", "c-writev, 1514", "c-io_uring, 1514"})
    void tapBatchWritesPutEveryFrameOnTheTap(String impl, int frameSize) throws Exception {
        TapBatchWriteBenchmark bench = new TapBatchWriteBenchmark();
        bench.frameSize = frameSize;
        bench.impl = impl;
        bench.setUp();
        String tap = bench.tapName();
        int batches = 5;
        try (io.vhostffm.vhost.os.PacketSocket socket = io.vhostffm.vhost.os.PacketSocket.bind(tap);
                java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined()) {
            socket.setReceiveBuffer(1 << 22);
            long packet = io.vhostffm.testkit.FakeGuest.HEADER + frameSize - 4;
            for (int i = 0; i < batches; i++) {
                long result = bench.write();
                // Java returns the bytes written, C the frames.
                assertEquals(impl.startsWith("java") ? TapBatchWriteBenchmark.BATCH * packet : TapBatchWriteBenchmark.BATCH,
                        result, impl + " batch " + i);
            }
            java.lang.foreign.MemorySegment buffer = arena.allocate(2048);
            int ours = 0;
            long n;
            while ((n = socket.receive(buffer, 1000)) >= 0) {
                if (n == frameSize - 4 && buffer.get(java.lang.foreign.ValueLayout.JAVA_BYTE, 12) == (byte) 0x88
                        && buffer.get(java.lang.foreign.ValueLayout.JAVA_BYTE, 13) == (byte) 0xb5) {
                    ours++;
                }
                if (ours == batches * TapBatchWriteBenchmark.BATCH) {
                    break;
                }
            }
            assertEquals(batches * TapBatchWriteBenchmark.BATCH, ours, impl + ": frames that left the TAP");
        } finally {
            bench.tearDown();
        }
        assertEquals(false, java.nio.file.Files.exists(java.nio.file.Path.of("/sys/class/net", tap)),
                "TAP " + tap + " removed");
    }

    @SuppressWarnings("unchecked")
    private static <T> T field(Object target, String name) throws ReflectiveOperationException {
        Field field = target.getClass().getDeclaredField(name);
        field.setAccessible(true);
        T value = (T) field.get(target);
        assertNotNull(value, name);
        return value;
    }
}

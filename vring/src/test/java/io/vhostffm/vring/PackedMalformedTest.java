package io.vhostffm.vring;

import static io.vhostffm.vring.PackedFixture.HIGH_BASE;
import static io.vhostffm.vring.PackedFixture.HIGH_SIZE;
import static io.vhostffm.vring.PackedFixture.HOLE;
import static io.vhostffm.vring.PackedFixture.PAYLOAD;
import static io.vhostffm.vring.PackedFixture.RING;
import static io.vhostffm.vring.PackedFixture.TABLES;
import static io.vhostffm.vring.PackedRing.VIRTQ_DESC_F_INDIRECT;
import static io.vhostffm.vring.PackedRing.VIRTQ_DESC_F_NEXT;
import static io.vhostffm.vring.PackedRing.VIRTQ_DESC_F_WRITE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.vring.VirtqueueException.Rule;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

/**
 * Every malformed chain the device must refuse: the exception names the rule, queue, head,
 * descriptor (and indirect entry), address and length; the queue is broken; no used descriptor
 * is published, not even for a good chain taken before.
 */
class PackedMalformedTest {
    private static final int NONE = VirtqueueException.NONE;

    /**
     * Makes a good chain available and takes it, then the malformed one (written by
     * {@code writeBad}, starting at ring index 1); checks the failure and that nothing was used.
     */
    private static VirtqueueException refuse(PackedFixture f, Runnable writeBad, Rule rule, int descriptor,
                                             int indirectEntry, long address, long length) {
        int good = f.driver.add(new long[] {PAYLOAD}, new int[] {8}, 1, 0);
        DescriptorChain chain = f.device.newChain();
        assertTrue(f.device.take(chain));
        assertEquals(good, chain.headId());
        int usedFlagsBefore = f.ringFlags(0);
        writeBad.run();

        VirtqueueException e = assertThrows(VirtqueueException.class, () -> f.device.take(chain));
        assertEquals(rule, e.rule(), e.getMessage());
        assertEquals(7, e.queueIndex());
        assertEquals(1, e.head(), e.getMessage());
        assertEquals(descriptor, e.descriptorIndex(), e.getMessage());
        assertEquals(indirectEntry, e.indirectIndex(), e.getMessage());
        assertEquals(address, e.address(), e.getMessage());
        assertEquals(length, e.length(), e.getMessage());
        assertTrue(e.getMessage().contains("virtqueue 7"), e.getMessage());
        assertTrue(e.getMessage().contains(String.format("0x%x", address)), e.getMessage());
        assertTrue(f.device.isBroken());

        // Broken: nothing more is taken or published, not even the good chain.
        VirtqueueException broken = assertThrows(VirtqueueException.class, () -> f.device.take(chain));
        assertEquals(Rule.QUEUE_BROKEN, broken.rule());
        assertSame(e, broken.getCause());
        assertEquals(Rule.QUEUE_BROKEN,
                assertThrows(VirtqueueException.class, () -> f.device.publishUsed(good, 0)).rule());
        assertEquals(Rule.QUEUE_BROKEN, assertThrows(VirtqueueException.class,
                () -> f.device.publishUsedBatch(new int[] {good}, new int[] {0}, 1)).rule());
        assertEquals(usedFlagsBefore, f.ringFlags(0));
        assertFalse(f.driver.hasUsed());
        assertEquals(1, f.device.lastAvailIdx(), "the bad chain was not consumed");
        assertEquals(0, f.device.usedIdx());
        return e;
    }

    private static void raw(PackedFixture f, long[] addrs, int[] lens, int[] ids, int[] flags) {
        f.driver.addRaw(addrs, lens, ids, flags, addrs.length);
    }

    @Test
    void bufferInAHole() {
        PackedFixture f = new PackedFixture(8, false);
        VirtqueueException e = refuse(f, () -> raw(f, new long[] {PAYLOAD, HOLE}, new int[] {8, 64},
                        new int[] {0, 1}, new int[] {VIRTQ_DESC_F_NEXT, 0}),
                Rule.BUFFER_OUTSIDE_GUEST_MEMORY, 2, NONE, HOLE, 64);
        assertTrue(e.getMessage().contains("hole"), e.getMessage());
    }

    @Test
    void bufferCrossingTheEndOfARegion() {
        PackedFixture f = new PackedFixture(8, false);
        long addr = HIGH_BASE + HIGH_SIZE - 16;
        VirtqueueException e = refuse(f, () -> raw(f, new long[] {addr}, new int[] {32}, new int[] {1}, new int[] {0}),
                Rule.BUFFER_OUTSIDE_GUEST_MEMORY, 1, NONE, addr, 32);
        assertTrue(e.getMessage().contains("crosses the end"), e.getMessage());
    }

    @Test
    void bufferWhoseEndOverflowsTheAddressSpace() {
        PackedFixture f = new PackedFixture(8, false);
        long addr = 0xFFFF_FFFF_FFFF_FFF0L;
        refuse(f, () -> raw(f, new long[] {addr}, new int[] {0x100}, new int[] {1}, new int[] {0}),
                Rule.BUFFER_OUTSIDE_GUEST_MEMORY, 1, NONE, addr, 0x100);
    }

    @Test
    void readableAfterWritable() {
        PackedFixture f = new PackedFixture(8, false);
        refuse(f, () -> raw(f, new long[] {PAYLOAD, PAYLOAD + 64, PAYLOAD + 128}, new int[] {8, 8, 8},
                        new int[] {0, 0, 1}, new int[] {VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 0}),
                Rule.READABLE_AFTER_WRITABLE, 3, NONE, PAYLOAD + 128, 8);
    }

    @Test
    void nextChainRunningIntoItsOwnStart() {
        // Descriptors 1 to 7 all say NEXT: the walk crosses the ring end to index 0, which holds
        // the good chain's descriptor from the previous lap, not available on this one.
        PackedFixture f = new PackedFixture(8, false);
        long[] addrs = new long[7];
        int[] lens = new int[7];
        int[] ids = new int[7];
        int[] flags = new int[7];
        for (int i = 0; i < 7; i++) {
            addrs[i] = PAYLOAD + 16L * i;
            lens[i] = 16;
            flags[i] = VIRTQ_DESC_F_NEXT;
        }
        VirtqueueException e = refuse(f, () -> raw(f, addrs, lens, ids, flags),
                Rule.DESCRIPTOR_NOT_AVAILABLE, 0, NONE, PAYLOAD, 8);
        assertTrue(e.getMessage().contains("wrap counter 0"), e.getMessage());
    }

    @Test
    void nextChainAsLongAsTheQueueAndStillGoing() {
        // A full ring of NEXT descriptors, all marked available on the laps they lie on.
        PackedFixture f = new PackedFixture(4, false, 2, true);
        long[] addrs = {PAYLOAD, PAYLOAD, PAYLOAD, PAYLOAD};
        int[] lens = {8, 8, 8, 8};
        f.driver.addRaw(addrs, lens, new int[4], new int[] {VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_NEXT,
                VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_NEXT}, 4);
        DescriptorChain chain = f.device.newChain();
        VirtqueueException e = assertThrows(VirtqueueException.class, () -> f.device.take(chain));
        assertEquals(Rule.CHAIN_TOO_LONG, e.rule(), e.getMessage());
        assertEquals(2, e.head());
        assertEquals(1, e.descriptorIndex()); // 2, 3, 0, 1: the 4th still has NEXT
        assertTrue(f.device.isBroken());
        assertFalse(f.driver.hasUsed());
    }

    @Test
    void indirectWithNext() {
        PackedFixture f = new PackedFixture(8, false);
        refuse(f, () -> raw(f, new long[] {TABLES, PAYLOAD}, new int[] {32, 8}, new int[] {0, 1},
                        new int[] {VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 0}),
                Rule.INDIRECT_WITH_NEXT, 1, NONE, TABLES, 32);
    }

    @Test
    void indirectInsideANextChain() {
        PackedFixture f = new PackedFixture(8, false);
        refuse(f, () -> raw(f, new long[] {PAYLOAD, TABLES}, new int[] {8, 32}, new int[] {0, 1},
                        new int[] {VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_INDIRECT}),
                Rule.INDIRECT_WITH_NEXT, 2, NONE, TABLES, 32);
    }

    /** Writes a two-entry indirect table at TABLES, the second entry with {@code flags2}. */
    private static void table(PackedFixture f, long addr2, int len2, int flags2) {
        MemorySegment t = f.at(TABLES, 32);
        t.set(ValueLayout.JAVA_LONG_UNALIGNED, 0, PAYLOAD);
        t.set(ValueLayout.JAVA_INT_UNALIGNED, 8, 8);
        t.set(ValueLayout.JAVA_SHORT_UNALIGNED, 14, (short) VIRTQ_DESC_F_WRITE);
        t.set(ValueLayout.JAVA_LONG_UNALIGNED, 16, addr2);
        t.set(ValueLayout.JAVA_INT_UNALIGNED, 24, len2);
        t.set(ValueLayout.JAVA_SHORT_UNALIGNED, 30, (short) flags2);
    }

    @Test
    void indirectInsideIndirect() {
        PackedFixture f = new PackedFixture(8, false);
        refuse(f, () -> {
            table(f, TABLES + 0x100, 16, VIRTQ_DESC_F_INDIRECT);
            raw(f, new long[] {TABLES}, new int[] {32}, new int[] {1}, new int[] {VIRTQ_DESC_F_INDIRECT});
        }, Rule.INDIRECT_IN_INDIRECT, 1, 1, TABLES + 0x100, 16);
    }

    @Test
    void readableAfterWritableInsideAnIndirectTable() {
        PackedFixture f = new PackedFixture(8, false);
        refuse(f, () -> {
            table(f, PAYLOAD + 64, 8, 0);
            raw(f, new long[] {TABLES}, new int[] {32}, new int[] {1}, new int[] {VIRTQ_DESC_F_INDIRECT});
        }, Rule.READABLE_AFTER_WRITABLE, 1, 1, PAYLOAD + 64, 8);
    }

    @Test
    void bufferOutsideGuestMemoryInsideAnIndirectTable() {
        PackedFixture f = new PackedFixture(8, false);
        refuse(f, () -> {
            table(f, HOLE, 8, VIRTQ_DESC_F_WRITE);
            raw(f, new long[] {TABLES}, new int[] {32}, new int[] {1}, new int[] {VIRTQ_DESC_F_INDIRECT});
        }, Rule.BUFFER_OUTSIDE_GUEST_MEMORY, 1, 1, HOLE, 8);
    }

    @Test
    void indirectTableLengthNotAMultipleOf16() {
        PackedFixture f = new PackedFixture(8, false);
        refuse(f, () -> raw(f, new long[] {TABLES}, new int[] {24}, new int[] {1}, new int[] {VIRTQ_DESC_F_INDIRECT}),
                Rule.INDIRECT_TABLE_LENGTH, 1, NONE, TABLES, 24);
    }

    @Test
    void indirectTableOfLengthZero() {
        PackedFixture f = new PackedFixture(8, false);
        refuse(f, () -> raw(f, new long[] {TABLES}, new int[] {0}, new int[] {1}, new int[] {VIRTQ_DESC_F_INDIRECT}),
                Rule.INDIRECT_TABLE_LENGTH, 1, NONE, TABLES, 0);
    }

    @Test
    void indirectTableOutsideGuestMemory() {
        PackedFixture f = new PackedFixture(8, false);
        refuse(f, () -> raw(f, new long[] {HOLE}, new int[] {32}, new int[] {1}, new int[] {VIRTQ_DESC_F_INDIRECT}),
                Rule.INDIRECT_TABLE_OUTSIDE_GUEST_MEMORY, 1, NONE, HOLE, 32);
    }

    @Test
    void indirectTableLongerThanTheQueue() {
        PackedFixture f = new PackedFixture(8, false);
        refuse(f, () -> raw(f, new long[] {TABLES}, new int[] {16 * 9}, new int[] {1}, new int[] {VIRTQ_DESC_F_INDIRECT}),
                Rule.CHAIN_TOO_LONG, 1, NONE, TABLES, 16 * 9);
    }

    @Test
    void totalLengthOverflowingThirtyTwoBits() {
        // 1025 indirect entries, each the whole 4 MiB low region: 4100 MiB > 2^32 - 1 bytes.
        PackedFixture f = new PackedFixture(2048, false);
        int entries = 1025;
        refuse(f, () -> {
            MemorySegment t = f.at(TABLES, 16L * entries);
            for (int i = 0; i < entries; i++) {
                t.set(ValueLayout.JAVA_LONG_UNALIGNED, 16L * i, 0);
                t.set(ValueLayout.JAVA_INT_UNALIGNED, 16L * i + 8, (int) PackedFixture.LOW_SIZE);
                t.set(ValueLayout.JAVA_SHORT_UNALIGNED, 16L * i + 14, (short) 0);
            }
            raw(f, new long[] {TABLES}, new int[] {16 * entries}, new int[] {1}, new int[] {VIRTQ_DESC_F_INDIRECT});
        }, Rule.TOTAL_LENGTH_OVERFLOW, 1, 1023, 0, PackedFixture.LOW_SIZE);
    }

    @Test
    void laterDescriptorNotMarkedAvailable() {
        PackedFixture f = new PackedFixture(8, false);
        refuse(f, () -> {
            raw(f, new long[] {PAYLOAD, PAYLOAD + 64}, new int[] {8, 8}, new int[] {0, 1}, new int[] {VIRTQ_DESC_F_NEXT, 0});
            // Descriptor 2 loses its avail bits after the head was published.
            f.at(RING + 16 * 2 + 14, 2).set(ValueLayout.JAVA_SHORT_UNALIGNED, 0, (short) 0);
        }, Rule.DESCRIPTOR_NOT_AVAILABLE, 2, NONE, PAYLOAD + 64, 8);
    }

    @Test
    void bufferIdNotBelowTheQueueSize() {
        PackedFixture f = new PackedFixture(8, false);
        refuse(f, () -> raw(f, new long[] {PAYLOAD, PAYLOAD}, new int[] {8, 8}, new int[] {0, 8},
                        new int[] {VIRTQ_DESC_F_NEXT, 0}),
                Rule.BUFFER_ID_INVALID, 2, NONE, PAYLOAD, 8);
    }

    @Test
    void bufferIdAlreadyInFlight() {
        PackedFixture f = new PackedFixture(8, false);
        // The good chain got id 0 (the driver's first); the bad one reuses it.
        VirtqueueException e = refuse(f, () -> raw(f, new long[] {PAYLOAD}, new int[] {8}, new int[] {0}, new int[] {0}),
                Rule.BUFFER_ID_INVALID, 1, NONE, PAYLOAD, 8);
        assertTrue(e.getMessage().contains("in flight"), e.getMessage());
    }

    @Test
    void restoreMendsABrokenQueue() {
        PackedFixture f = new PackedFixture(8, false);
        refuse(f, () -> raw(f, new long[] {HOLE}, new int[] {8}, new int[] {1}, new int[] {0}),
                Rule.BUFFER_OUTSIDE_GUEST_MEMORY, 1, NONE, HOLE, 8);
        // Restore the state from before: one chain in use, used position 0, last avail 1.
        f.device.restoreState(f.state.withPosition(QueuePosition.packed(1, true, 0, true, 1)), RestoreMode.CLASSIC);
        assertFalse(f.device.isBroken());
        f.device.publishUsedRestored(0, 1, 0);
        int[] ids = new int[1];
        assertEquals(1, f.driver.collectUsed(ids, new int[1], 1));
        assertEquals(0, ids[0]);
    }
}

package io.vhostffm.vring;

import static io.vhostffm.vring.VirtqFlags.VIRTQ_DESC_F_INDIRECT;
import static io.vhostffm.vring.VirtqFlags.VIRTQ_DESC_F_NEXT;
import static io.vhostffm.vring.VirtqFlags.VIRTQ_DESC_F_WRITE;
import static io.vhostffm.vring.VirtqueueException.NONE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.vring.VirtqueueException.Rule;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Every malformed chain a guest can build: each gives a {@link VirtqueueException} naming queue,
 * head, descriptor (and indirect entry), address and length; the queue breaks and publishes no
 * used element for the chain.
 */
class SplitMalformedChainTest {
    private static final int QUEUE = 7;
    private static final long TABLE = SplitRig.BUFFERS + 0x8000;

    private SplitRig rig;
    private SplitDeviceQueue device;
    private DescriptorChain chain;

    @BeforeEach
    void setUp() {
        rig = new SplitRig(QUEUE, 8, false);
        device = rig.device(rig.driver(0));
        chain = device.newChain();
        // One good chain first: it is served and published; the malformed one after it is not.
        rig.writeDescriptor(rig.desc, 5, SplitRig.BUFFERS, 64, VIRTQ_DESC_F_WRITE, 0);
        rig.pushAvail(5);
        assertTrue(device.take(chain));
        device.publishUsed(chain, 64);
        assertEquals(1, rig.usedIdx());
    }

    @AfterEach
    void tearDown() {
        rig.close();
    }

    @Test
    void bufferBeyondAllRegions() {
        rig.writeDescriptor(rig.desc, 0, 0x4000_0000L, 16, 0, 0);
        assertViolation(Rule.BUFFER_OUTSIDE_GUEST_MEMORY, 0, 0, NONE, 0x4000_0000L, 16, "hole");
    }

    @Test
    void bufferCrossingTheEndOfARegion() {
        long address = SplitRig.BUFFERS + rig.bufferRegionSize - 8;
        rig.writeDescriptor(rig.desc, 0, SplitRig.BUFFERS, 8, VIRTQ_DESC_F_NEXT, 3);
        rig.writeDescriptor(rig.desc, 3, address, 16, 0, 0);
        assertViolation(Rule.BUFFER_OUTSIDE_GUEST_MEMORY, 0, 3, NONE, address, 16, "crosses the end");
    }

    @Test
    void bufferInAHole() {
        rig.writeDescriptor(rig.desc, 2, SplitRig.HOLE, 8, VIRTQ_DESC_F_WRITE, 0);
        rig.pushAvail(2);
        assertViolationAfterPush(Rule.BUFFER_OUTSIDE_GUEST_MEMORY, 2, 2, NONE, SplitRig.HOLE, 8, "hole");
    }

    @Test
    void bufferWhoseEndOverflowsTheAddressSpace() {
        rig.writeDescriptor(rig.desc, 0, -16L, 32, 0, 0);
        assertViolation(Rule.BUFFER_OUTSIDE_GUEST_MEMORY, 0, 0, NONE, -16L, 32, "overflows");
    }

    @Test
    void loopInTheDescriptorTable() {
        rig.writeDescriptor(rig.desc, 0, SplitRig.BUFFERS, 8, VIRTQ_DESC_F_NEXT, 1);
        rig.writeDescriptor(rig.desc, 1, SplitRig.BUFFERS, 8, VIRTQ_DESC_F_NEXT, 0);
        // Eight descriptors are walked (0,1,0,1,...), the ninth step is the violation.
        assertViolation(Rule.CHAIN_TOO_LONG, 0, 0, NONE, SplitRig.BUFFERS, 8, "more than 8");
    }

    @Test
    void chainLongerThanTheQueueThroughAnIndirectTable() {
        for (int i = 0; i < 9; i++) {
            rig.writeDescriptor(TABLE, i, SplitRig.BUFFERS + i, 1, i < 8 ? VIRTQ_DESC_F_NEXT : 0, i + 1);
        }
        rig.writeDescriptor(rig.desc, 0, TABLE, 9 * 16, VIRTQ_DESC_F_INDIRECT, 0);
        chain = new DescriptorChain(32); // a roomier holder does not lift the queue's limit
        assertViolation(Rule.CHAIN_TOO_LONG, 0, 0, 8, SplitRig.BUFFERS + 8, 1, "more than 8 buffers");
    }

    @Test
    void loopInsideAnIndirectTable() {
        rig.writeDescriptor(TABLE, 0, SplitRig.BUFFERS, 1, VIRTQ_DESC_F_NEXT, 1);
        rig.writeDescriptor(TABLE, 1, SplitRig.BUFFERS, 1, VIRTQ_DESC_F_NEXT, 0);
        rig.writeDescriptor(rig.desc, 0, TABLE, 2 * 16, VIRTQ_DESC_F_INDIRECT, 0);
        assertViolation(Rule.CHAIN_TOO_LONG, 0, 0, 0, SplitRig.BUFFERS, 1, "table's 2 entries");
    }

    @Test
    void indirectInsideIndirect() {
        rig.writeDescriptor(TABLE, 0, SplitRig.BUFFERS, 8, VIRTQ_DESC_F_NEXT, 1);
        rig.writeDescriptor(TABLE, 1, TABLE + 0x100, 16, VIRTQ_DESC_F_INDIRECT, 0);
        rig.writeDescriptor(rig.desc, 0, TABLE, 2 * 16, VIRTQ_DESC_F_INDIRECT, 0);
        assertViolation(Rule.INDIRECT_IN_INDIRECT, 0, 0, 1, TABLE + 0x100, 16, "flags 0x4");
    }

    @Test
    void indirectTableLengthNotAMultipleOf16() {
        rig.writeDescriptor(rig.desc, 0, TABLE, 24, VIRTQ_DESC_F_INDIRECT, 0);
        assertViolation(Rule.INDIRECT_TABLE_LENGTH, 0, 0, NONE, TABLE, 24, "length 24");
    }

    @Test
    void indirectTableOfLengthZero() {
        rig.writeDescriptor(rig.desc, 0, TABLE, 0, VIRTQ_DESC_F_INDIRECT, 0);
        assertViolation(Rule.INDIRECT_TABLE_LENGTH, 0, 0, NONE, TABLE, 0, "length 0");
    }

    @Test
    void indirectTableInAHole() {
        rig.writeDescriptor(rig.desc, 0, SplitRig.HOLE, 32, VIRTQ_DESC_F_INDIRECT, 0);
        assertViolation(Rule.INDIRECT_TABLE_OUTSIDE_GUEST_MEMORY, 0, 0, NONE, SplitRig.HOLE, 32, "hole");
    }

    @Test
    void indirectTogetherWithNext() {
        rig.writeDescriptor(TABLE, 0, SplitRig.BUFFERS, 8, 0, 0);
        rig.writeDescriptor(rig.desc, 0, TABLE, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
        assertViolation(Rule.INDIRECT_WITH_NEXT, 0, 0, NONE, TABLE, 16, "flags 0x5");
    }

    @Test
    void nextOutOfRangeInsideAnIndirectTable() {
        rig.writeDescriptor(TABLE, 0, SplitRig.BUFFERS, 8, VIRTQ_DESC_F_NEXT, 2);
        rig.writeDescriptor(TABLE, 1, SplitRig.BUFFERS, 8, 0, 0);
        rig.writeDescriptor(rig.desc, 0, TABLE, 2 * 16, VIRTQ_DESC_F_INDIRECT, 0);
        assertViolation(Rule.NEXT_OUT_OF_RANGE, 0, 0, 0, SplitRig.BUFFERS, 8, "next 2, table entries 2");
    }

    @Test
    void writableBeforeReadable() {
        rig.writeDescriptor(rig.desc, 0, SplitRig.BUFFERS, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
        rig.writeDescriptor(rig.desc, 1, SplitRig.BUFFERS + 8, 8, 0, 0);
        assertViolation(Rule.READABLE_AFTER_WRITABLE, 0, 1, NONE, SplitRig.BUFFERS + 8, 8, "after 1 writable");
    }

    @Test
    void writableBeforeReadableInsideAnIndirectTable() {
        rig.writeDescriptor(TABLE, 0, SplitRig.BUFFERS, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
        rig.writeDescriptor(TABLE, 1, SplitRig.BUFFERS + 8, 8, 0, 0);
        rig.writeDescriptor(rig.desc, 0, TABLE, 2 * 16, VIRTQ_DESC_F_INDIRECT, 0);
        assertViolation(Rule.READABLE_AFTER_WRITABLE, 0, 0, 1, SplitRig.BUFFERS + 8, 8, "after 1 writable");
    }

    @Test
    void headOutOfRange() {
        rig.pushAvail(8);
        assertViolationAfterPush(Rule.HEAD_OUT_OF_RANGE, 8, NONE, NONE, 0, 0, "queue size 8");
    }

    @Test
    void nextOutOfRange() {
        rig.writeDescriptor(rig.desc, 0, SplitRig.BUFFERS, 8, VIRTQ_DESC_F_NEXT, 8);
        assertViolation(Rule.NEXT_OUT_OF_RANGE, 0, 0, NONE, SplitRig.BUFFERS, 8, "next 8");
    }

    @Test
    void availIndexJumpingMoreThanTheQueueSize() {
        rig.setAvailIdx(rig.availIdx() + 9);
        VirtqueueException e = assertThrows(VirtqueueException.class, () -> device.take(chain));
        assertEquals(Rule.INDEX_JUMP, e.rule());
        assertEquals("avail.idx", e.field());
        assertTrue(e.getMessage().contains("virtqueue 7") && e.getMessage().contains("avail.idx 10")
                && e.getMessage().contains("9 ahead of our 1") && e.getMessage().contains("queue size 8"),
                e.getMessage());
        assertBrokenAndNothingPublished(e);
    }

    @Test
    void totalLengthOverflowingLe32() {
        rig.close();
        // 32768 descriptors of 128 KiB each, all inside guest memory, add up to exactly 2^32.
        rig = new SplitRig(QUEUE, 32768, false, 0x20000);
        device = rig.device(rig.driver(0));
        chain = device.newChain();
        for (int i = 0; i < 32768; i++) {
            rig.writeDescriptor(rig.desc, i, SplitRig.BUFFERS, 0x20000,
                    VIRTQ_DESC_F_WRITE | (i < 32767 ? VIRTQ_DESC_F_NEXT : 0), i + 1);
        }
        rig.pushAvail(0);
        VirtqueueException e = assertThrows(VirtqueueException.class, () -> device.take(chain));
        assertEquals(Rule.TOTAL_LENGTH_OVERFLOW, e.rule());
        assertEquals(0, e.head());
        assertEquals(32767, e.descriptorIndex());
        assertEquals(SplitRig.BUFFERS, e.address());
        assertTrue(e.getMessage().contains("writable total would be 4294967296"), e.getMessage());
        assertTrue(device.isBroken());
        assertEquals(0, rig.usedIdx());
    }

    /** Pushes head 0 and checks the take fails as described. */
    private void assertViolation(Rule rule, int head, int descriptor, int indirect, long address, long length,
            String detail) {
        rig.pushAvail(head);
        assertViolationAfterPush(rule, head, descriptor, indirect, address, length, detail);
    }

    private void assertViolationAfterPush(Rule rule, int head, int descriptor, int indirect, long address,
            long length, String detail) {
        VirtqueueException e = assertThrows(VirtqueueException.class, () -> device.take(chain));
        String message = e.getMessage();
        assertEquals(rule, e.rule(), message);
        assertEquals(QUEUE, e.queueIndex());
        assertEquals(head, e.head(), message);
        assertEquals(descriptor, e.descriptorIndex(), message);
        assertEquals(indirect, e.indirectIndex(), message);
        assertEquals(address, e.address(), message);
        assertEquals(length, e.length(), message);
        assertTrue(message.startsWith("virtqueue 7: " + rule.description()), message);
        assertTrue(message.contains("head " + head), message);
        if (descriptor != NONE) {
            assertTrue(message.contains("descriptor " + descriptor), message);
        }
        if (indirect != NONE) {
            assertTrue(message.contains("indirect entry " + indirect), message);
        }
        assertTrue(message.contains(String.format("addr 0x%x, len %d", address, length)), message);
        assertTrue(message.contains(detail), message);
        assertBrokenAndNothingPublished(e);
    }

    private void assertBrokenAndNothingPublished(VirtqueueException cause) {
        assertTrue(device.isBroken());
        assertEquals(1, rig.usedIdx(), "no used element for the malformed chain");
        VirtqueueException again = assertThrows(VirtqueueException.class, () -> device.take(chain));
        assertEquals(Rule.QUEUE_BROKEN, again.rule());
        assertSame(cause, again.getCause());
        assertThrows(VirtqueueException.class, () -> device.publishUsed(0, 0));
        assertThrows(VirtqueueException.class, () -> device.publishUsedBatch(new int[] {0}, new int[] {0}, 1));
        assertEquals(1, rig.usedIdx());
        // Restoring the queue is the way back (once the guest has withdrawn the bad chain).
        rig.setAvailIdx(1);
        device.restoreState(device.saveState(), RestoreMode.CLASSIC);
        assertTrue(!device.isBroken());
        assertTrue(!device.take(chain));
    }
}

package io.vhostffm.vring;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import io.vhostffm.vring.VirtqueueException.Rule;
import java.util.EnumSet;
import java.util.Set;

/**
 * Coverage-guided fuzzing of the device side's chain walking: the fuzzer writes the whole low
 * region of guest memory (descriptor table or ring, available ring or event areas, indirect
 * tables) and the high one (buffers, more tables), then the device takes and publishes chains
 * until the ring runs dry or breaks.
 *
 * <p>Invariants, checked on every input: a take either yields a chain whose buffers all lie in
 * guest memory (in the host segment of their region, readable before writable, lengths adding up)
 * or throws a {@link VirtqueueException} with one of the chain rules; after that the queue is
 * broken, every further take or publish throws {@link Rule#QUEUE_BROKEN} and guest memory is
 * byte for byte what it was before the failing take (nothing published); the canaries around and
 * between the regions are intact.
 *
 * <p>Without {@code JAZZER_FUZZ=1} these run the stored inputs under {@code ChainWalkFuzzTestInputs}.
 */
class ChainWalkFuzzTest {
    /** The rules a guest can break by what it writes into a ring (device side). */
    private static final Set<Rule> WALK_RULES = EnumSet.of(Rule.BUFFER_OUTSIDE_GUEST_MEMORY,
            Rule.INDIRECT_TABLE_OUTSIDE_GUEST_MEMORY, Rule.HEAD_OUT_OF_RANGE, Rule.NEXT_OUT_OF_RANGE,
            Rule.CHAIN_TOO_LONG, Rule.INDIRECT_IN_INDIRECT, Rule.INDIRECT_TABLE_LENGTH, Rule.INDIRECT_WITH_NEXT,
            Rule.READABLE_AFTER_WRITABLE, Rule.TOTAL_LENGTH_OVERFLOW, Rule.INDEX_JUMP, Rule.DESCRIPTOR_NOT_AVAILABLE,
            Rule.BUFFER_ID_INVALID);
    private static final int QUEUE = 3;
    // Ring areas inside the low region, placed for the largest queue (16).
    private static final long DESC = GuardedGuestMemory.LOW;
    private static final long DRIVER_AREA = DESC + 0x100;
    private static final long DEVICE_AREA = DESC + 0x200;
    /**
     * Guest memory, made once and reset for each input (regions loaded, canaries painted again):
     * allocating and freeing it per execution cost more than the walk it guards.
     */
    private static final GuardedGuestMemory GUEST = new GuardedGuestMemory();

    @FuzzTest
    void splitChains(FuzzedDataProvider data) {
        int size = 1 << data.consumeInt(0, 4);
        boolean eventIdx = data.consumeBoolean();
        GuardedGuestMemory guest = GUEST;
        guest.reset(data.consumeBytes((int) GuardedGuestMemory.LOW_SIZE), data.consumeRemainingAsBytes());
        SplitDeviceQueue queue;
        try {
            queue = new SplitDeviceQueue(QUEUE, guest.memory,
                    QueueState.fresh(QueueGeometry.split(size, DESC, DRIVER_AREA, DEVICE_AREA, eventIdx)), RestoreMode.CLASSIC);
        } catch (VirtqueueException e) {
            // used.idx and avail.idx in guest memory are the fuzzer's; a restore may refuse them.
            assertTrue(e.rule() == Rule.INDEX_JUMP || e.rule() == Rule.INVALID_STATE, e::toString);
            guest.checkGuards();
            return;
        }
        drain(guest, queue, size, () -> Short.toUnsignedInt(guest.memory.readLe16(DEVICE_AREA + 2)));
    }

    @FuzzTest
    void packedChains(FuzzedDataProvider data) {
        int size = data.consumeInt(1, 16);
        boolean eventIdx = data.consumeBoolean();
        GuardedGuestMemory guest = GUEST;
        guest.reset(data.consumeBytes((int) GuardedGuestMemory.LOW_SIZE), data.consumeRemainingAsBytes());
        PackedDeviceQueue queue = new PackedDeviceQueue(QUEUE, guest.memory,
                QueueState.fresh(QueueGeometry.packed(size, DESC, DRIVER_AREA, DEVICE_AREA, eventIdx)), RestoreMode.CLASSIC);
        drain(guest, queue, size, queue::usedIdx);
    }

    /**
     * Takes and publishes chains until none is left or the queue breaks; {@code usedIdx} reads the
     * queue's used position (split: used.idx in guest memory; packed: the queue's used index).
     */
    private static void drain(GuardedGuestMemory guest, DeviceQueue queue, int size,
            java.util.function.IntSupplier usedIdx) {
        DescriptorChain chain = queue.newChain();
        // A ring of `size` entries yields at most 2 * size chains before the index-jump rule or
        // the lap check stops it; the bound keeps a target run short.
        for (int round = 0; round < 4 * size + 4; round++) {
            guest.save();
            int usedBefore = usedIdx.getAsInt();
            boolean taken;
            try {
                taken = queue.take(chain);
            } catch (VirtqueueException e) {
                checkBroken(guest, queue, e, usedBefore, usedIdx);
                return;
            }
            guest.checkGuards();
            if (!taken) {
                return;
            }
            checkChain(guest, chain, size);
            // Write a recognisable pattern into every writable buffer, as a device would.
            for (int i = chain.readableCount(); i < chain.bufferCount(); i++) {
                chain.buffer(i).fill((byte) 0x5A);
            }
            queue.publishUsed(chain, (int) Math.min(chain.writableLength(), 0xFFFF_FFFFL));
            assertEquals((usedBefore + (queue.isPacked() ? chain.descriptorCount() : 1))
                    % (queue.isPacked() ? size : 0x10000), usedIdx.getAsInt() % (queue.isPacked() ? size : 0x10000),
                    "used index after one publish");
            guest.checkGuards();
        }
    }

    private static void checkBroken(GuardedGuestMemory guest, DeviceQueue queue, VirtqueueException e,
            int usedBefore, java.util.function.IntSupplier usedIdx) {
        assertTrue(WALK_RULES.contains(e.rule()), () -> "unexpected rule " + e.rule() + ": " + e.getMessage());
        assertEquals(QUEUE, e.queueIndex(), "queue named");
        assertTrue(queue.isBroken(), "queue broken after " + e.rule());
        DescriptorChain another = queue.newChain();
        assertEquals(Rule.QUEUE_BROKEN, assertThrows(VirtqueueException.class, () -> queue.take(another)).rule());
        assertEquals(Rule.QUEUE_BROKEN, assertThrows(VirtqueueException.class, () -> queue.publishUsed(0, 0)).rule());
        assertEquals(Rule.QUEUE_BROKEN, assertThrows(VirtqueueException.class,
                () -> queue.publishUsedBatch(new int[] {0}, new int[] {0}, 1)).rule());
        assertEquals(usedBefore, usedIdx.getAsInt(), "used index moved on a broken queue");
        long changed = guest.changedSinceSave();
        assertEquals(-1, changed, () -> "a broken queue wrote into guest memory at 0x" + Long.toHexString(changed));
        guest.checkGuards();
    }

    private static void checkChain(GuardedGuestMemory guest, DescriptorChain chain, int size) {
        assertTrue(chain.bufferCount() >= 1 && chain.bufferCount() <= size, chain::toString);
        assertTrue(chain.headId() >= 0 && chain.headId() < size, chain::toString);
        long readable = 0;
        long writable = 0;
        for (int i = 0; i < chain.bufferCount(); i++) {
            guest.checkInside(chain.buffer(i), chain.address(i), chain.length(i));
            assertEquals(i >= chain.readableCount(), chain.isWritable(i));
            if (chain.isWritable(i)) {
                writable += chain.length(i);
            } else {
                readable += chain.length(i);
            }
        }
        assertEquals(chain.readableCount() + chain.writableCount(), chain.bufferCount());
        assertEquals(readable, chain.readableLength());
        assertEquals(writable, chain.writableLength());
        assertTrue(readable <= 0xFFFF_FFFFL && writable <= 0xFFFF_FFFFL, chain::toString);
    }
}

package io.vhostffm.vring;

import static io.vhostffm.vring.VirtqFlags.VIRTQ_DESC_F_INDIRECT;
import static io.vhostffm.vring.VirtqFlags.VIRTQ_DESC_F_NEXT;
import static io.vhostffm.vring.VirtqFlags.VIRTQ_DESC_F_WRITE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.EnumMap;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Random descriptor tables, indirect tables and ring indices written straight into guest memory:
 * a take either succeeds with every buffer inside guest memory and the chain's invariants
 * holding, or throws {@link VirtqueueException}. Nothing else (no IndexOutOfBounds, no crash).
 */
class SplitFuzzTest {
    private static final int SIZE = 16;
    private static final long TABLES = SplitRig.BUFFERS + 0x1_0000;

    @Test
    void randomRingsGiveAChainOrAVirtqueueException() {
        SplittableRandom random = new SplittableRandom(0x5eed);
        Map<VirtqueueException.Rule, Integer> seen = new EnumMap<>(VirtqueueException.Rule.class);
        int taken = 0;
        try (SplitRig rig = new SplitRig(9, SIZE, random.nextBoolean(), 0x2_0000)) {
            SplitDeviceQueue device = rig.device(rig.driver(0));
            DescriptorChain chain = device.newChain();
            for (int round = 0; round < 20_000; round++) {
                for (int i = 0; i < SIZE; i++) {
                    rig.writeDescriptor(rig.desc, i, randomAddress(random, rig), randomLength(random),
                            randomFlags(random), random.nextInt(SIZE + 2));
                }
                for (int i = 0; i < 8; i++) {
                    rig.writeDescriptor(TABLES, i, randomAddress(random, rig), randomLength(random),
                            randomFlags(random) & (random.nextInt(8) == 0 ? 0xffff : ~VIRTQ_DESC_F_INDIRECT),
                            random.nextInt(10));
                }
                int last = device.saveState().position().lastAvailIdx();
                rig.slice(rig.avail + 4 + 2L * (last & (SIZE - 1)), 2)
                        .set(SplitRig.LE16, 0, (short) random.nextInt(SIZE + 1));
                rig.setAvailIdx(random.nextInt(10) == 0 ? random.nextInt(0x10000) : last + 1);
                try {
                    if (device.take(chain)) {
                        taken++;
                        checkChain(rig, chain);
                        device.publishUsed(chain, 0);
                    }
                } catch (VirtqueueException e) {
                    seen.merge(e.rule(), 1, Integer::sum);
                    assertEquals(9, e.queueIndex());
                    assertTrue(device.isBroken());
                    rig.setAvailIdx(last);
                    device.restoreState(device.saveState(), RestoreMode.CLASSIC);
                }
            }
        }
        // The generator must reach both outcomes and a spread of rules, or it tests little.
        assertTrue(taken > 500, "chains taken: " + taken);
        assertTrue(seen.size() >= 8, "rules hit: " + seen);
        System.out.println("SplitFuzzTest: " + taken + " chains taken, violations " + seen);
    }

    private static void checkChain(SplitRig rig, DescriptorChain chain) {
        long readable = 0;
        long writable = 0;
        assertTrue(chain.bufferCount() >= 1 && chain.bufferCount() <= SIZE);
        for (int i = 0; i < chain.bufferCount(); i++) {
            assertTrue(rig.memory.contains(chain.address(i), chain.length(i)));
            assertEquals(i >= chain.readableCount(), chain.isWritable(i));
            assertEquals(chain.length(i), chain.buffer(i).byteSize());
            if (chain.isWritable(i)) {
                writable += chain.length(i);
            } else {
                readable += chain.length(i);
            }
        }
        assertEquals(readable, chain.readableLength());
        assertEquals(writable, chain.writableLength());
    }

    private static long randomAddress(SplittableRandom random, SplitRig rig) {
        return switch (random.nextInt(6)) {
            case 0 -> random.nextLong();
            case 1 -> SplitRig.HOLE + random.nextInt(0x1000);
            case 2 -> SplitRig.BUFFERS + rig.bufferRegionSize - random.nextInt(64);
            case 3 -> TABLES;
            default -> SplitRig.BUFFERS + random.nextInt(0x1000);
        };
    }

    private static int randomLength(SplittableRandom random) {
        return switch (random.nextInt(5)) {
            case 0 -> random.nextInt();
            case 1 -> 16 * random.nextInt(10);
            default -> random.nextInt(256);
        };
    }

    private static int randomFlags(SplittableRandom random) {
        int flags = 0;
        if (random.nextInt(3) != 0) {
            flags |= VIRTQ_DESC_F_NEXT;
        }
        if (random.nextInt(3) == 0) {
            flags |= VIRTQ_DESC_F_WRITE;
        }
        if (random.nextInt(6) == 0) {
            flags |= VIRTQ_DESC_F_INDIRECT;
        }
        return flags;
    }
}

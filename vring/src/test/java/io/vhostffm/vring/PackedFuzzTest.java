package io.vhostffm.vring;

import static io.vhostffm.vring.PackedFixture.HIGH_BASE;
import static io.vhostffm.vring.PackedFixture.HOLE;
import static io.vhostffm.vring.PackedFixture.LOW_SIZE;
import static io.vhostffm.vring.PackedFixture.TABLES;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Random descriptor rings and indirect tables, as a hostile guest could write them: every take
 * either yields a chain whose buffers all lie in guest memory, or throws a
 * {@link VirtqueueException}; nothing else escapes, and publishing what was taken works.
 */
class PackedFuzzTest {

    @Test
    void randomRingsNeverEscapeGuestMemory() {
        Random random = new Random(0x9ac4ed);
        for (int round = 0; round < 1500; round++) {
            int size = 1 + random.nextInt(16);
            int start = random.nextInt(size);
            boolean wrap = random.nextBoolean();
            try (PackedFixture f = new PackedFixture(size, random.nextBoolean(), start, wrap)) {
                fuzzRound(random, f, size, start, wrap);
            }
        }
        System.out.printf("packed fuzz: %d chains taken, %d refused: %s%n", taken, refused, rules);
        assertTrue(taken > 100 && refused > 100, "taken " + taken + ", refused " + refused);
        assertTrue(rules.size() >= 8, "rules hit: " + rules.keySet());
    }

    private int taken;
    private int refused;
    private final java.util.EnumMap<VirtqueueException.Rule, Integer> rules = new java.util.EnumMap<>(VirtqueueException.Rule.class);

    private void fuzzRound(Random random, PackedFixture f, int size, int start, boolean wrap) {
        MemorySegment ring = f.at(PackedFixture.RING, 16L * size);
        for (int i = 0; i < size; i++) {
            writeDescriptor(random, ring, 16L * i, size);
            // Mostly available on the lap the position is on, sometimes anything.
            boolean lap = i >= start ? wrap : !wrap;
            int flags = (random.nextInt(3) == 0 ? PackedRing.VIRTQ_DESC_F_NEXT : 0)
                    | (random.nextInt(3) == 0 ? PackedRing.VIRTQ_DESC_F_WRITE : 0)
                    | (random.nextInt(8) == 0 ? PackedRing.VIRTQ_DESC_F_INDIRECT : 0)
                    | (random.nextInt(20) == 0 ? random.nextInt(0x10000) : PackedRing.availFlags(lap));
            ring.set(ValueLayout.JAVA_SHORT_UNALIGNED, 16L * i + 14, (short) flags);
        }
        MemorySegment tables = f.at(TABLES, 16L * 64);
        for (int i = 0; i < 64; i++) {
            writeDescriptor(random, tables, 16L * i, size);
            tables.set(ValueLayout.JAVA_SHORT_UNALIGNED, 16L * i + 14, (short) (random.nextInt(4) == 0 ? 6 : 2 * random.nextInt(2)));
        }
        DescriptorChain chain = f.device.newChain();
        try {
            // Used descriptors are never available again, so this ends; bounded all the same.
            for (int takes = 0; takes < 4 * size && f.device.take(chain); takes++) {
                taken++;
                for (int i = 0; i < chain.bufferCount(); i++) {
                    assertTrue(f.memory.contains(chain.address(i), chain.length(i)), chain.toString());
                    // Touch both ends of every buffer through its region: must stay in bounds.
                    if (chain.length(i) > 0) {
                        chain.regionSegment(i).get(ValueLayout.JAVA_BYTE, chain.regionOffset(i));
                        chain.regionSegment(i).get(ValueLayout.JAVA_BYTE, chain.regionOffset(i) + chain.length(i) - 1);
                    }
                }
                f.device.publishUsed(chain, 0);
            }
        } catch (VirtqueueException e) {
            refused++;
            rules.merge(e.rule(), 1, Integer::sum);
            assertTrue(f.device.isBroken());
        }
    }

    private static void writeDescriptor(Random random, MemorySegment at, long offset, int size) {
        long addr = switch (random.nextInt(20)) {
            case 0, 1 -> HOLE;
            case 2, 3 -> random.nextLong();
            case 4, 5, 6 -> TABLES + 16L * random.nextInt(64);
            case 7, 8, 9 -> HIGH_BASE + random.nextInt(1 << 20);
            default -> PackedFixture.PAYLOAD + random.nextInt(1 << 16);
        };
        int len = switch (random.nextInt(20)) {
            case 0 -> random.nextInt();
            case 1 -> (int) LOW_SIZE;
            case 2, 3, 4, 5 -> 16 * random.nextInt(2 * size + 2);
            default -> random.nextInt(4096);
        };
        at.set(ValueLayout.JAVA_LONG_UNALIGNED, offset, addr);
        at.set(ValueLayout.JAVA_INT_UNALIGNED, offset + 8, len);
        at.set(ValueLayout.JAVA_SHORT_UNALIGNED, offset + 12, (short) random.nextInt(size + 2));
    }
}

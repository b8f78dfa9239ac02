package io.vhostffm.vring.jcstress;

import static org.openjdk.jcstress.annotations.Expect.ACCEPTABLE;
import static org.openjdk.jcstress.annotations.Expect.FORBIDDEN;

import io.vhostffm.vring.DescriptorChain;
import io.vhostffm.vring.PackedDeviceQueue;
import io.vhostffm.vring.PackedDriverQueue;
import io.vhostffm.vring.QueueState;
import io.vhostffm.vring.RestoreMode;
import java.lang.foreign.ValueLayout;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.IIII_Result;

/**
 * Packed ring, device to driver: the device writes into the writable buffer in place,
 * {@link PackedDeviceQueue#publishUsed} writes the used descriptor's id and length plainly, then
 * release-stores its flags with the AVAIL/USED bits of the used wrap counter;
 * {@link PackedDriverQueue#collectUsed} acquire-loads the flags. A driver that finds the
 * descriptor used must see the written length and the payload.
 *
 * <p>The element under test is written to slot 0 right after the used wrap counter flipped
 * (chain A took slot 3 of the previous lap and was used and collected). The slot's stale contents
 * are the driver's own available descriptor: flags AVAIL for wrap 1 (not used), length 8 where the
 * device writes 5, payload 0. The stale id there is 1 as well, so the id alone cannot tell.
 *
 * <p>Result: elements collected (-1 on an exception), id, written length, low 32 bits of the
 * payload.
 */
@JCStressTest
@Outcome(id = "0, 0, 0, 0", expect = ACCEPTABLE, desc = "The driver looked before the device published.")
@Outcome(id = "1, 1, 5, 757575", expect = ACCEPTABLE, desc = "The driver collected id 1 with its length and payload.")
@Outcome(expect = FORBIDDEN, desc = "The driver saw the USED bit but a stale length or payload.")
@State
public class PackedUsedOrderingTest {
    static final long PAYLOAD = 757575;

    final RingMemory ring = new RingMemory();
    final PackedDriverQueue driver;
    final PackedDeviceQueue device;
    final DescriptorChain chain;
    final int[] ids = new int[RingMemory.QUEUE_SIZE];
    final int[] lens = new int[RingMemory.QUEUE_SIZE];
    final long bufferB = RingMemory.buffer(1);

    public PackedUsedOrderingTest() {
        QueueState state = PackedRings.startingAtLastSlotOfSecondLap(false);
        driver = new PackedDriverQueue(0, ring.memory, state);
        device = new PackedDeviceQueue(0, ring.memory, state, RestoreMode.CLASSIC);
        chain = device.newChain();
        driver.add(new long[] {RingMemory.buffer(0)}, new int[] {8}, 0, 1);   // A: slot 3, id 0
        driver.add(new long[] {bufferB}, new int[] {8}, 0, 1);                // B: slot 0, id 1
        device.take(chain);
        device.publishUsed(chain, 8);
        if (driver.collectUsed(ids, lens, RingMemory.QUEUE_SIZE) != 1 || ids[0] != 0) {
            throw new IllegalStateException("setup: chain A not returned");
        }
        if (!device.take(chain) || chain.headId() != 1) {
            throw new IllegalStateException("setup: chain B not taken as id 1: " + chain);
        }
    }

    @Actor
    public void device() {
        // Plain store into the device-writable buffer, in place.
        chain.regionSegment(0).set(ValueLayout.JAVA_LONG, chain.regionOffset(0), PAYLOAD);
        device.publishUsed(chain, 5);               // id, len plainly; release the flags
    }

    @Actor
    public void driver(IIII_Result r) {
        try {
            int n = driver.collectUsed(ids, lens, RingMemory.QUEUE_SIZE);   // acquire the flags
            r.r1 = n;
            if (n > 0) {
                r.r2 = ids[0];
                r.r3 = lens[0];
                r.r4 = (int) ring.readPayload(bufferB);
            }
        } catch (RuntimeException e) {
            r.r1 = -1;
        }
    }
}

package io.vhostffm.vring.jcstress;

import static io.vhostffm.vring.jcstress.RingMemory.QUEUE_SIZE;
import static io.vhostffm.vring.jcstress.RingMemory.SPLIT_AVAIL;
import static io.vhostffm.vring.jcstress.RingMemory.SPLIT_DESC;
import static io.vhostffm.vring.jcstress.RingMemory.SPLIT_USED;
import static org.openjdk.jcstress.annotations.Expect.ACCEPTABLE;
import static org.openjdk.jcstress.annotations.Expect.FORBIDDEN;

import io.vhostffm.vring.DescriptorChain;
import io.vhostffm.vring.RestoreMode;
import io.vhostffm.vring.SplitDeviceQueue;
import io.vhostffm.vring.SplitDriverQueue;
import java.lang.foreign.ValueLayout;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.IIII_Result;

/**
 * Split ring, device to driver: the device writes into the chain's writable buffer in place,
 * {@link SplitDeviceQueue#publishUsed} writes the used element (id, len) and release-stores
 * used.idx; {@link SplitDriverQueue#collectUsed} acquire-loads used.idx. A driver that sees the
 * new index must see the element's id and length and the payload the device wrote.
 *
 * <p>Stale values are distinguishable: chain A (head 0) was used and collected before, so the
 * chain under test is head 1 and its used slot still holds zeros; a stale id 0 is not in flight
 * (collectUsed throws, result -1), a stale length is 0, a stale payload 0. Indices start at 65535,
 * so the element under test is published by used.idx going from 0 to 1 after the wrap.
 *
 * <p>Result: elements collected (-1 on an exception), id, written length, low 32 bits of the
 * payload the driver read in its buffer.
 */
@JCStressTest
@Outcome(id = "0, 0, 0, 0", expect = ACCEPTABLE, desc = "The driver looked before the device published.")
@Outcome(id = "1, 1, 8, 535353", expect = ACCEPTABLE, desc = "The driver collected head 1 with its length and payload.")
@Outcome(expect = FORBIDDEN, desc = "The driver saw used.idx but a stale element or payload.")
@State
public class SplitUsedOrderingTest {
    static final long PAYLOAD = 535353;

    final RingMemory ring = new RingMemory();
    final SplitDriverQueue driver;
    final SplitDeviceQueue device;
    final DescriptorChain chain;
    final int[] ids = new int[QUEUE_SIZE];
    final int[] lens = new int[QUEUE_SIZE];
    final long bufferB = RingMemory.buffer(1);

    public SplitUsedOrderingTest() {
        driver = new SplitDriverQueue(0, ring.memory, QUEUE_SIZE, SPLIT_DESC, SPLIT_AVAIL, SPLIT_USED, false, 0xffff);
        device = new SplitDeviceQueue(0, ring.memory, driver.initialDeviceState(), RestoreMode.CLASSIC);
        chain = device.newChain();
        // Chain A (head 0) goes round once; chain B (head 1) stays taken, for the device actor.
        driver.add(new long[] {RingMemory.buffer(0)}, new int[] {8}, 0, 1);
        driver.add(new long[] {bufferB}, new int[] {8}, 0, 1);
        device.take(chain);
        device.publishUsed(chain, 8);
        if (driver.collectUsed(ids, lens, QUEUE_SIZE) != 1 || ids[0] != 0) {
            throw new IllegalStateException("setup: chain A not returned");
        }
        if (!device.take(chain) || chain.headId() != 1) {
            throw new IllegalStateException("setup: chain B not taken as head 1: " + chain);
        }
    }

    @Actor
    public void device() {
        // Plain store into the device-writable buffer, in place.
        chain.regionSegment(0).set(ValueLayout.JAVA_LONG, chain.regionOffset(0), PAYLOAD);
        device.publishUsed(chain, 8);               // used element, release used.idx
    }

    @Actor
    public void driver(IIII_Result r) {
        try {
            int n = driver.collectUsed(ids, lens, QUEUE_SIZE);   // acquire used.idx, plain reads
            r.r1 = n;
            if (n > 0) {
                r.r2 = ids[0];
                r.r3 = lens[0];
                r.r4 = (int) ring.readPayload(bufferB);          // plain load of the buffer
            }
        } catch (RuntimeException e) {
            r.r1 = -1;
        }
    }
}

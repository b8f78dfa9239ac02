package io.vhostffm.vring.jcstress;

import static org.openjdk.jcstress.annotations.Expect.ACCEPTABLE;
import static org.openjdk.jcstress.annotations.Expect.FORBIDDEN;

import io.vhostffm.vring.DescriptorChain;
import io.vhostffm.vring.PackedDeviceQueue;
import io.vhostffm.vring.PackedDriverQueue;
import io.vhostffm.vring.QueueState;
import io.vhostffm.vring.RestoreMode;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.IIIIIII_Result;

/**
 * Packed ring, a used batch across the ring end: {@link PackedDeviceQueue#publishUsedBatch}
 * writes the used descriptors in slot 3 (wrap counter 0) and slot 0 (wrap counter 1), the
 * second's flags plainly, then the first's flags with release. The driver polls slot 3 first,
 * so it sees the whole batch, with lengths and payloads, or nothing (spec "Multi-buffer
 * requests").
 *
 * <p>Result: elements collected (-1 on an exception), both ids, both lengths, low 32 bits of
 * both payloads.
 */
@JCStressTest
@Outcome(id = "0, 0, 0, 0, 0, 0, 0", expect = ACCEPTABLE, desc = "The driver looked before the device published.")
@Outcome(id = "2, 0, 1, 5, 6, 111, 222", expect = ACCEPTABLE, desc = "The driver collected the whole batch.")
@Outcome(expect = FORBIDDEN, desc = "Half a batch, or a stale element or payload.")
@State
public class PackedUsedBatchOrderingTest {
    final RingMemory ring = new RingMemory();
    final PackedDriverQueue driver;
    final PackedDeviceQueue device;
    final DescriptorChain chain;
    final int[] ids = new int[RingMemory.QUEUE_SIZE];
    final int[] lens = new int[RingMemory.QUEUE_SIZE];
    final int[] batchIds = {0, 1};
    final int[] batchLens = {5, 6};

    public PackedUsedBatchOrderingTest() {
        QueueState state = PackedRings.startingAtLastSlotOfSecondLap(false);
        driver = new PackedDriverQueue(0, ring.memory, state);
        device = new PackedDeviceQueue(0, ring.memory, state, RestoreMode.CLASSIC);
        chain = device.newChain();
        driver.add(new long[] {RingMemory.buffer(0)}, new int[] {8}, 0, 1);   // slot 3, id 0
        driver.add(new long[] {RingMemory.buffer(1)}, new int[] {8}, 0, 1);   // slot 0, id 1
        if (!device.take(chain) || !device.take(chain)) {
            throw new IllegalStateException("setup: chains not taken");
        }
    }

    @Actor
    public void device() {
        // Plain stores into the device-writable buffers, in place.
        ring.writePayload(RingMemory.buffer(0), 111);
        ring.writePayload(RingMemory.buffer(1), 222);
        device.publishUsedBatch(batchIds, batchLens, 2);   // second's flags plain, first's release
    }

    @Actor
    public void driver(IIIIIII_Result r) {
        try {
            int n = driver.collectUsed(ids, lens, RingMemory.QUEUE_SIZE);   // acquire each slot's flags
            r.r1 = n;
            if (n > 0) {
                r.r2 = ids[0];
                r.r3 = n > 1 ? ids[1] : -1;
                r.r4 = lens[0];
                r.r5 = n > 1 ? lens[1] : -1;
                r.r6 = (int) ring.readPayload(RingMemory.buffer(0));
                r.r7 = (int) ring.readPayload(RingMemory.buffer(1));
            }
        } catch (RuntimeException e) {
            r.r1 = -1;
        }
    }
}

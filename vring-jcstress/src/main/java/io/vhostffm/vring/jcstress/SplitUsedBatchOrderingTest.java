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
import org.openjdk.jcstress.infra.results.IIIIIII_Result;

/**
 * Split ring, a used batch: {@link SplitDeviceQueue#publishUsedBatch} writes two used elements
 * and release-stores used.idx once, 65535 to 1 across the 16-bit wrap. The driver sees both
 * elements, with their lengths and the payloads the device wrote, or neither.
 *
 * <p>Result: elements collected (-1 on an exception), both ids, both lengths, low 32 bits of
 * both payloads.
 */
@JCStressTest
@Outcome(id = "0, 0, 0, 0, 0, 0, 0", expect = ACCEPTABLE, desc = "The driver looked before the device published.")
@Outcome(id = "2, 0, 1, 5, 6, 111, 222", expect = ACCEPTABLE, desc = "The driver collected the whole batch.")
@Outcome(expect = FORBIDDEN, desc = "Half a batch, or a stale element or payload.")
@State
public class SplitUsedBatchOrderingTest {
    final RingMemory ring = new RingMemory();
    final SplitDriverQueue driver;
    final SplitDeviceQueue device;
    final DescriptorChain chain;
    final int[] ids = new int[QUEUE_SIZE];
    final int[] lens = new int[QUEUE_SIZE];
    final int[] batchIds = {0, 1};
    final int[] batchLens = {5, 6};

    public SplitUsedBatchOrderingTest() {
        driver = new SplitDriverQueue(0, ring.memory, QUEUE_SIZE, SPLIT_DESC, SPLIT_AVAIL, SPLIT_USED, false, 0xffff);
        device = new SplitDeviceQueue(0, ring.memory, driver.initialDeviceState(), RestoreMode.CLASSIC);
        chain = device.newChain();
        driver.add(new long[] {RingMemory.buffer(0)}, new int[] {8}, 0, 1);   // head 0
        driver.add(new long[] {RingMemory.buffer(1)}, new int[] {8}, 0, 1);   // head 1
        if (!device.take(chain) || !device.take(chain)) {
            throw new IllegalStateException("setup: chains not taken");
        }
    }

    @Actor
    public void device() {
        // Plain stores into the device-writable buffers, in place.
        ring.writePayload(RingMemory.buffer(0), 111);
        ring.writePayload(RingMemory.buffer(1), 222);
        device.publishUsedBatch(batchIds, batchLens, 2);   // two elements, one release of used.idx
    }

    @Actor
    public void driver(IIIIIII_Result r) {
        try {
            int n = driver.collectUsed(ids, lens, QUEUE_SIZE);   // acquire used.idx
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

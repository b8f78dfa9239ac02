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
import org.openjdk.jcstress.infra.results.III_Result;

/**
 * Split ring, driver to device: {@link SplitDriverQueue#add} writes the payload's descriptor and
 * the avail ring entry, then release-stores avail.idx; {@link SplitDeviceQueue#take}
 * acquire-loads avail.idx. A device that sees the new index must see the chain's descriptor (its
 * address and length) and the payload the driver wrote before adding it.
 *
 * <p>Stale values are distinguishable: chain A (head 0, 8 bytes, payload {@link #OLD_PAYLOAD}) is
 * already in flight, so the chain under test gets head 1 in an avail ring slot still holding 0;
 * reading the stale slot gives chain A's 8-byte buffer, a stale descriptor 1 gives length 0,
 * stale payload 0. The ring starts at index 65535, so the chain under test is published by the
 * 16-bit wrap of avail.idx from 0 to 1 after chain A wrapped it from 65535 to 0.
 *
 * <p>Result: taken (1/0, -1 on an exception), length of the first buffer, low 32 bits of the
 * payload the device read through the chain's segment.
 */
@JCStressTest
@Outcome(id = "0, 0, 0", expect = ACCEPTABLE, desc = "The device looked before the driver published.")
@Outcome(id = "1, 16, 424242", expect = ACCEPTABLE, desc = "The device took the chain with its descriptor and payload.")
@Outcome(expect = FORBIDDEN, desc = "The device saw avail.idx but a stale ring entry, descriptor or payload.")
@State
public class SplitAvailOrderingTest {
    static final long PAYLOAD = 424242;
    static final long OLD_PAYLOAD = 777;

    final RingMemory ring = new RingMemory();
    final SplitDriverQueue driver;
    final SplitDeviceQueue device;
    final DescriptorChain chain;
    final long[] addresses = {RingMemory.buffer(1)};
    final int[] lengths = {16};

    public SplitAvailOrderingTest() {
        driver = new SplitDriverQueue(0, ring.memory, QUEUE_SIZE, SPLIT_DESC, SPLIT_AVAIL, SPLIT_USED, false, 0xffff);
        device = new SplitDeviceQueue(0, ring.memory, driver.initialDeviceState(), RestoreMode.CLASSIC);
        chain = device.newChain();
        ring.writePayload(RingMemory.buffer(0), OLD_PAYLOAD);
        driver.add(new long[] {RingMemory.buffer(0)}, new int[] {8}, 1, 0);
        if (!device.take(chain) || chain.headId() != 0) {
            throw new IllegalStateException("setup: chain A not taken as head 0: " + chain);
        }
    }

    @Actor
    public void driver() {
        ring.writePayload(addresses[0], PAYLOAD);   // plain store: the guest fills its buffer
        driver.add(addresses, lengths, 1, 0);        // descriptor, ring entry, release avail.idx
    }

    @Actor
    public void device(III_Result r) {
        try {
            if (device.take(chain)) {                // acquire avail.idx, plain reads after it
                r.r1 = 1;
                r.r2 = (int) chain.length(0);
                // Plain load of the payload in place, through the chain's region segment.
                r.r3 = (int) chain.regionSegment(0).get(ValueLayout.JAVA_LONG, chain.regionOffset(0));
            }
        } catch (RuntimeException e) {
            r.r1 = -1;
        }
    }
}

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
 * Packed ring, driver to device: {@link PackedDriverQueue#add} writes the descriptor's address,
 * length and buffer id plainly, then release-stores its flags with the AVAIL/USED bits of the
 * driver's wrap counter; {@link PackedDeviceQueue#take} acquire-loads the flags. A device that
 * finds the descriptor available must see its address, length, id and the payload.
 *
 * <p>The chain under test lands in slot 0 right after the wrap counters flipped (chain A, id 0,
 * took slot 3 of the previous lap and is still in flight). Stale values are distinguishable: the
 * slot's stale flags mean "used on the previous lap" (not available), a stale id 0 is in flight
 * (take throws, result -1), a stale length is 0, a stale payload 0.
 *
 * <p>Result: taken (1/0, -1 on an exception), buffer id, length, low 32 bits of the payload.
 */
@JCStressTest
@Outcome(id = "0, 0, 0, 0", expect = ACCEPTABLE, desc = "The device looked before the driver published.")
@Outcome(id = "1, 1, 16, 646464", expect = ACCEPTABLE, desc = "The device took buffer id 1 with its descriptor and payload.")
@Outcome(expect = FORBIDDEN, desc = "The device saw the AVAIL bit but a stale id, descriptor or payload.")
@State
public class PackedAvailOrderingTest {
    static final long PAYLOAD = 646464;

    final RingMemory ring = new RingMemory();
    final PackedDriverQueue driver;
    final PackedDeviceQueue device;
    final DescriptorChain chain;
    final long[] addresses = {RingMemory.buffer(1)};
    final int[] lengths = {16};

    public PackedAvailOrderingTest() {
        QueueState state = PackedRings.startingAtLastSlotOfSecondLap(false);
        driver = new PackedDriverQueue(0, ring.memory, state);
        device = new PackedDeviceQueue(0, ring.memory, state, RestoreMode.CLASSIC);
        chain = device.newChain();
        driver.add(new long[] {RingMemory.buffer(0)}, new int[] {8}, 1, 0);
        if (!device.take(chain) || chain.headId() != 0) {
            throw new IllegalStateException("setup: chain A not taken as id 0: " + chain);
        }
    }

    @Actor
    public void driver() {
        ring.writePayload(addresses[0], PAYLOAD);   // plain store: the guest fills its buffer
        driver.add(addresses, lengths, 1, 0);        // addr, len, id plainly; release the flags
    }

    @Actor
    public void device(IIII_Result r) {
        try {
            if (device.take(chain)) {                // acquire the head's flags
                r.r1 = 1;
                r.r2 = chain.headId();
                r.r3 = (int) chain.length(0);
                r.r4 = (int) chain.regionSegment(0).get(ValueLayout.JAVA_LONG, chain.regionOffset(0));
            }
        } catch (RuntimeException e) {
            r.r1 = -1;
        }
    }
}

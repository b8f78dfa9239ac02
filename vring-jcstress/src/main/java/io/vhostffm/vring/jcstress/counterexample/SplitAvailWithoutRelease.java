package io.vhostffm.vring.jcstress.counterexample;

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
import io.vhostffm.vring.jcstress.RingMemory;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.III_Result;

/**
 * A deliberately broken publish: a copy of {@link SplitDriverQueue#add} that stores avail.idx
 * with a plain store instead of a release, against the real {@link SplitDeviceQueue#take}
 * (acquire). The Java memory model allows the device to see the new index before the payload or
 * descriptor; on x86 (TSO: stores are not reordered by the hardware) only the JIT could reorder
 * them, so this one rarely or never fails there. It would on weakly ordered CPUs (AArch64, POWER).
 *
 * <p>NOT part of the build's run; see docs/jcstress.md. Same setup and outcomes as
 * {@code SplitAvailOrderingTest}.
 */
@JCStressTest
@Outcome(id = "0, 0, 0", expect = ACCEPTABLE, desc = "The device looked before the driver published.")
@Outcome(id = "1, 16, 424242", expect = ACCEPTABLE, desc = "The device took the chain with its descriptor and payload.")
@Outcome(expect = FORBIDDEN, desc = "The device saw avail.idx but a stale ring entry, descriptor or payload.")
@State
public class SplitAvailWithoutRelease {
    private static final VarHandle U16 = ValueLayout.JAVA_SHORT.varHandle();
    private static final VarHandle U32 = ValueLayout.JAVA_INT.varHandle();
    private static final VarHandle U64 = ValueLayout.JAVA_LONG.varHandle();

    final RingMemory ring = new RingMemory();
    final SplitDeviceQueue device;
    final DescriptorChain chain;

    public SplitAvailWithoutRelease() {
        SplitDriverQueue driver = new SplitDriverQueue(0, ring.memory, QUEUE_SIZE, SPLIT_DESC, SPLIT_AVAIL, SPLIT_USED,
                false, 0xffff);
        device = new SplitDeviceQueue(0, ring.memory, driver.initialDeviceState(), RestoreMode.CLASSIC);
        chain = device.newChain();
        ring.writePayload(RingMemory.buffer(0), 777);
        driver.add(new long[] {RingMemory.buffer(0)}, new int[] {8}, 1, 0);   // chain A: head 0, avail.idx 0
        if (!device.take(chain)) {
            throw new IllegalStateException("setup: chain A not taken");
        }
    }

    @Actor
    public void brokenDriver() {
        ring.writePayload(RingMemory.buffer(1), 424242);
        U64.set(ring.segment, SPLIT_DESC + 16, RingMemory.buffer(1));
        U32.set(ring.segment, SPLIT_DESC + 16 + 8, 16);
        U16.set(ring.segment, SPLIT_DESC + 16 + 12, (short) 0);
        U16.set(ring.segment, SPLIT_AVAIL + 4, (short) 1);
        // BROKEN: SplitDriverQueue.add stores avail.idx with setRelease.
        U16.set(ring.segment, SPLIT_AVAIL + 2, (short) 1);
    }

    @Actor
    public void device(III_Result r) {
        try {
            if (device.take(chain)) {
                r.r1 = 1;
                r.r2 = (int) chain.length(0);
                r.r3 = (int) chain.regionSegment(0).get(ValueLayout.JAVA_LONG, chain.regionOffset(0));
            }
        } catch (RuntimeException e) {
            r.r1 = -1;
        }
    }
}

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
import io.vhostffm.vring.VirtqFlags;
import io.vhostffm.vring.jcstress.RingMemory;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.II_Result;

/**
 * A deliberately broken kick decision, to show that the harness catches a lost wakeup: a copy of
 * {@link SplitDriverQueue#add} and {@link SplitDriverQueue#needsKick} (event idx) without the full
 * fence between the release store of avail.idx and the load of avail_event, against the real
 * {@link SplitDeviceQueue#enableNotifications}. The release store may still sit in the store
 * buffer when the load runs, so the driver reads the stale avail_event while the device, fenced,
 * reads the stale avail.idx: the FORBIDDEN "0, 0" outcome. It shows within seconds on x86.
 *
 * <p>NOT part of the build's run (the runner selects only the package above); run it by hand, see
 * docs/jcstress.md. Same setup as {@code SplitNotificationHandshakeTest.KickEventIdx}.
 */
@JCStressTest
@Outcome(id = {"1, 0", "0, 1", "1, 1"}, expect = ACCEPTABLE, desc = "The driver kicks or the device sees chain B.")
@Outcome(id = "0, 0", expect = FORBIDDEN, desc = "Lost wakeup: expected here, the driver has no fence.")
@State
public class SplitKickWithoutFence {
    private static final VarHandle U16 = ValueLayout.JAVA_SHORT.varHandle();
    private static final VarHandle U32 = ValueLayout.JAVA_INT.varHandle();
    private static final VarHandle U64 = ValueLayout.JAVA_LONG.varHandle();
    private static final long AVAIL_IDX = SPLIT_AVAIL + 2;
    private static final long AVAIL_RING = SPLIT_AVAIL + 4;
    private static final long AVAIL_EVENT = SPLIT_USED + 4 + 8L * QUEUE_SIZE;

    final RingMemory ring = new RingMemory();
    final SplitDeviceQueue device;

    public SplitKickWithoutFence() {
        SplitDriverQueue driver = new SplitDriverQueue(0, ring.memory, QUEUE_SIZE, SPLIT_DESC, SPLIT_AVAIL, SPLIT_USED,
                true, 0xffff);
        device = new SplitDeviceQueue(0, ring.memory, driver.initialDeviceState(), RestoreMode.CLASSIC);
        DescriptorChain chain = device.newChain();
        device.disableNotifications();
        driver.add(new long[] {RingMemory.buffer(0)}, new int[] {8}, 1, 0);   // chain A: head 0, avail.idx 0
        if (!device.take(chain)) {
            throw new IllegalStateException("setup: chain A not taken");
        }
    }

    @Actor
    public void brokenDriver(II_Result r) {
        // Chain B, head 1, in avail ring slot 0: plain stores, as SplitDriverQueue.add.
        U64.set(ring.segment, SPLIT_DESC + 16, RingMemory.buffer(1));
        U32.set(ring.segment, SPLIT_DESC + 16 + 8, 8);
        U16.set(ring.segment, SPLIT_DESC + 16 + 12, (short) 0);
        U16.set(ring.segment, AVAIL_RING, (short) 1);
        U16.setRelease(ring.segment, AVAIL_IDX, (short) 1);
        // BROKEN: SplitDriverQueue.needsKick has VarHandle.fullFence() here.
        int availEvent = Short.toUnsignedInt((short) U16.get(ring.segment, AVAIL_EVENT));
        r.r1 = VirtqFlags.needEvent(availEvent, 1, 0) ? 1 : 0;
    }

    @Actor
    public void device(II_Result r) {
        r.r2 = device.enableNotifications() ? 1 : 0;
    }
}

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
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.II_Result;

/**
 * Split ring notification handshakes: the store-load (Dekker) pattern around the full fences.
 * One side publishes its index, fences, and reads the other side's event index or flags to decide
 * whether to notify; the other side, about to sleep, writes its event index or flags, fences, and
 * re-reads the index. The lost wakeup, neither a notification nor work seen on the re-check, must
 * never happen: on x86 it shows within a second when either fence is missing (see
 * {@code counterexample.SplitKickWithoutFence}).
 *
 * <p>Result: notification sent (1/0), sleeper saw the work on its re-check (1/0).
 */
public final class SplitNotificationHandshakeTest {
    private SplitNotificationHandshakeTest() {
    }

    /** A split ring whose driver added chain A and whose device took it with notifications off. */
    static class KickRig {
        final RingMemory ring = new RingMemory();
        final SplitDriverQueue driver;
        final SplitDeviceQueue device;
        final long[] addresses = {RingMemory.buffer(1)};
        final int[] lengths = {8};

        KickRig(boolean eventIdx) {
            driver = new SplitDriverQueue(0, ring.memory, QUEUE_SIZE, SPLIT_DESC, SPLIT_AVAIL, SPLIT_USED, eventIdx, 0xffff);
            device = new SplitDeviceQueue(0, ring.memory, driver.initialDeviceState(), RestoreMode.CLASSIC);
            DescriptorChain chain = device.newChain();
            // The device is busy: no kicks (flags: NO_NOTIFY; event idx: avail_event stops moving).
            device.disableNotifications();
            driver.add(new long[] {RingMemory.buffer(0)}, new int[] {8}, 1, 0);
            driver.needsKick();
            if (!device.take(chain)) {
                throw new IllegalStateException("setup: chain A not taken");
            }
        }

        /** Driver: makes chain B available (release avail.idx), then fence and read avail_event/flags. */
        int addAndDecideKick() {
            driver.add(addresses, lengths, 1, 0);
            return driver.needsKick() ? 1 : 0;
        }

        /** Device going idle: write avail_event/flags, fence, acquire-re-read avail.idx. */
        int enableAndRecheck() {
            return device.enableNotifications() ? 1 : 0;
        }
    }

    /** Kick decision under VIRTIO_F_EVENT_IDX: avail.idx against avail_event. */
    @JCStressTest
    @Outcome(id = {"1, 0", "0, 1", "1, 1"}, expect = ACCEPTABLE, desc = "The driver kicks or the device sees chain B.")
    @Outcome(id = "0, 0", expect = FORBIDDEN, desc = "Lost wakeup: no kick and the device sleeps with chain B pending.")
    @State
    public static class KickEventIdx extends KickRig {
        public KickEventIdx() {
            super(true);
        }

        @Actor
        public void driver(II_Result r) {
            r.r1 = addAndDecideKick();
        }

        @Actor
        public void device(II_Result r) {
            r.r2 = enableAndRecheck();
        }
    }

    /** Kick decision without event idx: avail.idx against VIRTQ_USED_F_NO_NOTIFY in used.flags. */
    @JCStressTest
    @Outcome(id = {"1, 0", "0, 1", "1, 1"}, expect = ACCEPTABLE, desc = "The driver kicks or the device sees chain B.")
    @Outcome(id = "0, 0", expect = FORBIDDEN, desc = "Lost wakeup: no kick and the device sleeps with chain B pending.")
    @State
    public static class KickFlags extends KickRig {
        public KickFlags() {
            super(false);
        }

        @Actor
        public void driver(II_Result r) {
            r.r1 = addAndDecideKick();
        }

        @Actor
        public void device(II_Result r) {
            r.r2 = enableAndRecheck();
        }
    }

    /**
     * A split ring whose device took chains A and B, returned A with a notification decision
     * already made (so signalled_used is valid), and whose driver collected A and then turned
     * used notifications off.
     */
    static class InterruptRig {
        final RingMemory ring = new RingMemory();
        final SplitDriverQueue driver;
        final SplitDeviceQueue device;
        final DescriptorChain chain;
        final int[] ids = new int[QUEUE_SIZE];
        final int[] lens = new int[QUEUE_SIZE];

        InterruptRig(boolean eventIdx) {
            driver = new SplitDriverQueue(0, ring.memory, QUEUE_SIZE, SPLIT_DESC, SPLIT_AVAIL, SPLIT_USED, eventIdx, 0xffff);
            device = new SplitDeviceQueue(0, ring.memory, driver.initialDeviceState(), RestoreMode.CLASSIC);
            chain = device.newChain();
            driver.add(new long[] {RingMemory.buffer(0)}, new int[] {8}, 0, 1);
            driver.add(new long[] {RingMemory.buffer(1)}, new int[] {8}, 0, 1);
            device.take(chain);
            device.publishUsed(chain, 8);
            device.needsNotification();
            if (driver.collectUsed(ids, lens, QUEUE_SIZE) != 1 || !device.take(chain)) {
                throw new IllegalStateException("setup: chain A not returned or chain B not taken");
            }
            // The driver is busy: no interrupts (flags: NO_INTERRUPT; event idx: used_event behind).
            driver.disableUsedNotifications();
        }

        /** Device: publishes chain B (release used.idx), then fence and read used_event/flags. */
        int publishAndDecideInterrupt() {
            device.publishUsed(chain, 8);
            return device.needsNotification() ? 1 : 0;
        }

        /** Driver going idle: write used_event/flags, fence, acquire-re-read used.idx. */
        int enableAndRecheck() {
            return driver.enableUsedNotifications() ? 1 : 0;
        }
    }

    /** Interrupt decision under VIRTIO_F_EVENT_IDX: used.idx against used_event. */
    @JCStressTest
    @Outcome(id = {"1, 0", "0, 1", "1, 1"}, expect = ACCEPTABLE, desc = "The device interrupts or the driver sees chain B used.")
    @Outcome(id = "0, 0", expect = FORBIDDEN, desc = "Lost wakeup: no interrupt and the driver sleeps with chain B used.")
    @State
    public static class InterruptEventIdx extends InterruptRig {
        public InterruptEventIdx() {
            super(true);
        }

        @Actor
        public void device(II_Result r) {
            r.r1 = publishAndDecideInterrupt();
        }

        @Actor
        public void driver(II_Result r) {
            r.r2 = enableAndRecheck();
        }
    }

    /** Interrupt decision without event idx: used.idx against VIRTQ_AVAIL_F_NO_INTERRUPT. */
    @JCStressTest
    @Outcome(id = {"1, 0", "0, 1", "1, 1"}, expect = ACCEPTABLE, desc = "The device interrupts or the driver sees chain B used.")
    @Outcome(id = "0, 0", expect = FORBIDDEN, desc = "Lost wakeup: no interrupt and the driver sleeps with chain B used.")
    @State
    public static class InterruptFlags extends InterruptRig {
        public InterruptFlags() {
            super(false);
        }

        @Actor
        public void device(II_Result r) {
            r.r1 = publishAndDecideInterrupt();
        }

        @Actor
        public void driver(II_Result r) {
            r.r2 = enableAndRecheck();
        }
    }
}

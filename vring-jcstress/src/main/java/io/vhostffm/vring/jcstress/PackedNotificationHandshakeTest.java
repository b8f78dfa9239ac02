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
import org.openjdk.jcstress.infra.results.II_Result;

/**
 * Packed ring notification handshakes through the event suppression structures: the
 * store-load (Dekker) pattern around the full fences, as in {@link SplitNotificationHandshakeTest}.
 * The publishing side release-stores descriptor flags, fences, and reads the other side's event
 * suppression flags (and offset/wrap under event idx); the side going idle writes ENABLE (or DESC
 * with its position and wrap counter), fences, and re-reads the descriptor flags. The chain under
 * test sits in slot 0 just after the wrap counters flipped.
 *
 * <p>Result: notification sent (1/0), sleeper saw the work on its re-check (1/0).
 */
public final class PackedNotificationHandshakeTest {
    private PackedNotificationHandshakeTest() {
    }

    /** A packed ring whose driver added chain A and whose device took it with notifications off. */
    static class KickRig {
        final RingMemory ring = new RingMemory();
        final PackedDriverQueue driver;
        final PackedDeviceQueue device;
        final long[] addresses = {RingMemory.buffer(1)};
        final int[] lengths = {8};

        KickRig(boolean eventIdx) {
            QueueState state = PackedRings.startingAtLastSlotOfSecondLap(eventIdx);
            driver = new PackedDriverQueue(0, ring.memory, state);
            device = new PackedDeviceQueue(0, ring.memory, state, RestoreMode.CLASSIC);
            device.disableNotifications();                 // device event flags: DISABLE
            driver.add(new long[] {RingMemory.buffer(0)}, new int[] {8}, 1, 0);
            driver.needsKick();
            if (!device.take(device.newChain())) {
                throw new IllegalStateException("setup: chain A not taken");
            }
        }

        /** Driver: makes chain B available (release flags), then fence and read the device event. */
        int addAndDecideKick() {
            driver.add(addresses, lengths, 1, 0);
            return driver.needsKick() ? 1 : 0;
        }

        /** Device going idle: ENABLE or DESC at (last avail, wrap), fence, acquire-re-read the flags. */
        int enableAndRecheck() {
            return device.enableNotifications() ? 1 : 0;
        }
    }

    /** Kick decision under VIRTIO_F_EVENT_IDX (device event flags DESC, offset and wrap). */
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

    /** Kick decision without event idx (device event flags DISABLE / ENABLE). */
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
     * A packed ring whose device took chains A and B, returned A with a notification decision
     * already made, and whose driver collected A and then turned used notifications off.
     */
    static class InterruptRig {
        final RingMemory ring = new RingMemory();
        final PackedDriverQueue driver;
        final PackedDeviceQueue device;
        final DescriptorChain chain;
        final int[] ids = new int[RingMemory.QUEUE_SIZE];
        final int[] lens = new int[RingMemory.QUEUE_SIZE];

        InterruptRig(boolean eventIdx) {
            QueueState state = PackedRings.startingAtLastSlotOfSecondLap(eventIdx);
            driver = new PackedDriverQueue(0, ring.memory, state);
            device = new PackedDeviceQueue(0, ring.memory, state, RestoreMode.CLASSIC);
            chain = device.newChain();
            driver.add(new long[] {RingMemory.buffer(0)}, new int[] {8}, 0, 1);
            driver.add(new long[] {RingMemory.buffer(1)}, new int[] {8}, 0, 1);
            device.take(chain);
            device.publishUsed(chain, 8);
            device.needsNotification();
            if (driver.collectUsed(ids, lens, RingMemory.QUEUE_SIZE) != 1 || !device.take(chain)) {
                throw new IllegalStateException("setup: chain A not returned or chain B not taken");
            }
            driver.disableUsedNotifications();             // driver event flags: DISABLE
        }

        /** Device: publishes chain B (release flags), then fence and read the driver event. */
        int publishAndDecideInterrupt() {
            device.publishUsed(chain, 8);
            return device.needsNotification() ? 1 : 0;
        }

        /** Driver going idle: ENABLE or DESC at (next used, wrap), fence, acquire-re-read the flags. */
        int enableAndRecheck() {
            return driver.enableUsedNotifications() ? 1 : 0;
        }
    }

    /** Interrupt decision under VIRTIO_F_EVENT_IDX (driver event flags DESC, offset and wrap). */
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

    /** Interrupt decision without event idx (driver event flags DISABLE / ENABLE). */
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

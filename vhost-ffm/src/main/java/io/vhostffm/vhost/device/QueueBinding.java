package io.vhostffm.vhost.device;

import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vring.QueuePosition;
import io.vhostffm.vring.QueueState;
import java.util.Objects;

/**
 * One data virtqueue as a backend gets it: where it is and how far it got ({@link QueueState},
 * untrusted: a backend validates it against guest memory), and its two eventfds. The eventfds
 * belong to {@link NetDeviceRuntime} (the hypervisor wires kick to the guest's notify writes,
 * e.g. a KVM ioeventfd, and call to its interrupt, e.g. an irqfd); a backend never closes them.
 *
 * @param index the virtqueue index (rx {@code 2i}, tx {@code 2i+1})
 * @param state the queue's geometry and position
 * @param kick signalled by the driver when it made buffers available
 * @param call signalled by the backend to interrupt the driver
 */
public record QueueBinding(int index, QueueState state, EventFd kick, EventFd call) {
    public QueueBinding {
        Objects.requireNonNull(state, "state");
        Objects.requireNonNull(kick, "kick");
        Objects.requireNonNull(call, "call");
    }

    /** Whether this is a receive queue (even index). */
    public boolean isRx() {
        return index % 2 == 0;
    }

    /** The queue pair this queue belongs to. */
    public int pair() {
        return index / 2;
    }

    /** This binding with the queue at another position (same rings). */
    public QueueBinding withPosition(QueuePosition position) {
        return new QueueBinding(index, state.withPosition(position), kick, call);
    }
}

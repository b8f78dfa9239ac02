package io.vhostffm.testkit;

import io.vhostffm.vhost.device.QueueBinding;
import io.vhostffm.vhost.device.userspace.QueuePairConfig;
import io.vhostffm.vhost.os.EventFd;
import io.vhostffm.vhost.os.NativeCallException;
import io.vhostffm.vhost.os.TapDevice;
import io.vhostffm.vhost.virtio.net.VirtioNetDevice;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * A transport of its own for a device model driven without a {@code NetDeviceRuntime}: one kick
 * and one call eventfd per virtqueue, and the queue registers kept here, so a test can hand a
 * backend or the userspace datapath the bindings ({@link #queueBindings}, {@link #queuePairConfigs})
 * a runtime would have built.
 */
public final class EventFdTransport implements GuestTransport, AutoCloseable {
    private final VirtioNetDevice model;
    private final EventFd[] kicks;
    private final EventFd[] calls;

    /** Eventfds for {@code queues} virtqueues of {@code model}. */
    public EventFdTransport(VirtioNetDevice model, int queues) throws NativeCallException {
        this.model = model;
        this.kicks = new EventFd[queues];
        this.calls = new EventFd[queues];
        try {
            for (int q = 0; q < queues; q++) {
                kicks[q] = EventFd.create("virtqueue " + q + " kick");
                calls[q] = EventFd.create("virtqueue " + q + " call");
            }
        } catch (NativeCallException | RuntimeException e) {
            close();
            throw e;
        }
    }

    @Override
    public int status() {
        return model.status();
    }

    @Override
    public int writeStatus(int status) {
        return model.writeStatus(status);
    }

    @Override
    public long deviceFeatures() {
        return model.deviceFeatures();
    }

    @Override
    public void writeDriverFeatures(long features) {
        model.writeDriverFeatures(features);
    }

    @Override
    public Optional<String> lastError() {
        return model.lastError();
    }

    @Override
    public void configureQueue(int queue, int size, long desc, long driverArea, long deviceArea) {
        // Nothing to keep: the bindings are built from the guest's own queues (initialDeviceState).
    }

    @Override
    public void kick(int queue) throws NativeCallException {
        kicks[queue].signal();
    }

    /** The eventfd the device reads for virtqueue {@code queue}'s kicks. */
    public EventFd kickFd(int queue) {
        return kicks[queue];
    }

    @Override
    public EventFd call(int queue) {
        return calls[queue];
    }

    /** Every data virtqueue of {@code guest} as a backend's binding, from the state a fresh device starts in. */
    public List<QueueBinding> queueBindings(FakeGuest guest) {
        List<QueueBinding> out = new ArrayList<>();
        for (int q = 0; q < 2 * guest.pairs(); q++) {
            out.add(new QueueBinding(q, guest.initialDeviceState(q), kicks[q], calls[q]));
        }
        return out;
    }

    /** Every queue pair of {@code guest} as the userspace datapath's configuration, on {@code tap}'s queues. */
    public List<QueuePairConfig> queuePairConfigs(FakeGuest guest, TapDevice tap) {
        List<QueuePairConfig> out = new ArrayList<>();
        for (int p = 0; p < guest.pairs(); p++) {
            out.add(new QueuePairConfig(p, guest.initialDeviceState(2 * p), guest.initialDeviceState(2 * p + 1),
                    kicks[2 * p], calls[2 * p], kicks[2 * p + 1], calls[2 * p + 1], tap.queue(p)));
        }
        return out;
    }

    @Override
    public void close() {
        for (int q = 0; q < kicks.length; q++) {
            if (kicks[q] != null) {
                kicks[q].close();
            }
            if (calls[q] != null) {
                calls[q].close();
            }
        }
    }
}

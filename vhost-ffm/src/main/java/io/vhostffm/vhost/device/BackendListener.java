package io.vhostffm.vhost.device;

/**
 * How a backend's datapath reports what it cannot handle itself. {@link NetDeviceRuntime}
 * implements it: bad guest input puts the device into DEVICE_NEEDS_RESET and stops its datapath
 * (or, when the backend stopped only the queue pair at fault, leaves the other pairs moving until
 * the driver resets); the process and other devices carry on.
 */
public interface BackendListener {

    /**
     * The guest broke the rules on a queue (a descriptor outside guest memory, a malformed chain,
     * an impossible index; for the kernel backend, vhost's ring error eventfd fired). May be
     * called from any thread, more than once.
     *
     * @param queueIndex the virtqueue, or -1 when the backend cannot tell which
     * @param reason what was wrong, naming queue, index, address as far as known
     */
    void badGuestInput(int queueIndex, String reason);

    /**
     * The guest broke the rules on a queue and the backend stopped that queue's pair alone (its
     * thread ended, nothing more is read from or written to its rings); the backend's other pairs
     * keep carrying frames. The device still goes to DEVICE_NEEDS_RESET (virtio: the driver must
     * reset it), but need not stop the backend for it: the driver's reset does. May be called from
     * any thread, once per pair stopped. The default treats it as {@link #badGuestInput}.
     *
     * @param queueIndex the virtqueue at fault, or -1 when the backend cannot tell which
     * @param reason what was wrong, naming queue, index, address and rule as far as known
     */
    default void queuePairStopped(int queueIndex, String reason) {
        badGuestInput(queueIndex, reason);
    }

    /**
     * The backend was closed while a device still used it (started or prestarted): its datapath
     * is gone. {@link NetDeviceRuntime} puts the device in DEVICE_NEEDS_RESET naming the backend,
     * and does not stop the closed backend again. The default treats it as a fault of no queue.
     *
     * @param backend the closed backend
     */
    default void backendClosed(NetBackend backend) {
        badGuestInput(-1, backend + " was closed while the device used it");
    }

    /**
     * The process behind the backend is gone (a vhost-user backend's socket reached end of stream
     * or was reset, or it signalled its ring error eventfd and then hung up): its datapath moves no
     * more frames, and the backend can no longer be asked where the queues stand. Called at most
     * once per backend, from the backend's own watcher thread. {@link NetDeviceRuntime} switches
     * to its fallback backend when it has one ({@link NetDeviceRuntime#setFallbackBackend}), else
     * puts the device in DEVICE_NEEDS_RESET naming the backend and the reason. The default treats
     * it as a fault of no queue.
     *
     * @param backend the backend whose peer is gone
     * @param reason what was seen, e.g. {@code the peer closed the connection}
     */
    default void backendGone(NetBackend backend, String reason) {
        badGuestInput(-1, backend + " is gone: " + reason);
    }
}

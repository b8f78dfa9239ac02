package io.vhostffm.vhost.device;

import io.vhostffm.vhost.device.kernel.VhostNetBackend;

import io.vhostffm.vhost.virtio.net.RssState;
import io.vhostffm.vhost.virtio.net.RxFilter;
import io.vhostffm.vring.QueuePosition;
import java.io.IOException;
import java.util.List;

/**
 * A virtio-net datapath: what moves frames between the guest's data virtqueues and the host
 * network, for one device. Two implementations: the kernel's vhost-net
 * ({@link VhostNetBackend}) and the Java userspace datapath. The control queue is never a
 * backend's business: {@link NetDeviceRuntime} serves it in Java for both.
 *
 * <h2>Queues</h2>
 * A backend serves {@link #maxQueuePairs()} pairs; pair {@code i} is virtqueues {@code rx = 2i}
 * and {@code tx = 2i + 1} (virtio 5.1.2). The queues handed to {@link #prestart} are the data
 * queues the driver set up, in virtqueue order; {@link #stop} gives their final states back in
 * the same order. A queue's position ({@link QueuePosition}) is all that moves between a stop and
 * the next (quick)start: the ring geometry stays in the {@link BackendStart}.
 *
 * <h2>Life cycle</h2>
 * <pre>
 *   new ─▶ prestart(start) ─▶ quickstart(states) ─▶ running ─▶ stop() ─▶ prestart ... ─▶ close()
 *             │                                      ▲
 *             └──────────── start(start) ────────────┘  (= prestart + quickstart, in one go)
 * </pre>
 * {@link #start} is the classic start. The two halves exist for early live migration:
 * {@link #prestart} does every step that does not move a frame while the guest still
 * runs on the source (kernel: SET_FEATURES, SET_MEM_TABLE, per queue SET_VRING_NUM, BASE, ADDR,
 * KICK, CALL, ERR, and SET_LOG_BASE; no backend bound), and {@link #quickstart} does only what
 * must wait for the final indices (kernel: per queue SET_VRING_BASE, then NET_SET_BACKEND per
 * enabled queue), so the destination's switchover is as short as possible and its ioctls can be
 * counted. A failure in either leaves the backend stopped (as after {@link #stop}) and the caller
 * free to fall back to another backend.
 *
 * <h2>Threads</h2>
 * Life-cycle methods are called by {@link NetDeviceRuntime} with the device model's lock held,
 * one at a time. A backend reports bad guest input found by its datapath through
 * {@link BackendStart#listener()}, from any thread, and must not call back into the runtime
 * synchronously from a life-cycle method.
 *
 * <h2>Ownership</h2>
 * A backend does not own the network endpoint it is given (a {@code TapDevice}): the hypervisor
 * does, so two backends can take turns on the same TAP (a live switch) and the endpoint can be
 * handed to another process ({@link #transfer()}). {@link #close()} releases only what the
 * backend opened itself (vhost-net descriptors, threads, eventfds of its own).
 */
public interface NetBackend extends AutoCloseable {

    /**
     * What this backend's datapath can carry, for feature negotiation (kernel: VHOST_GET_FEATURES
     * plus what the TAP offers; never RING_PACKED).
     */
    BackendCapabilities capabilities();

    /** Queue pairs this backend can serve (the TAP's queue count). */
    int maxQueuePairs();

    /**
     * The first half of a start: everything that needs no final ring index. Queues are not
     * processed afterwards; {@link #quickstart} starts them.
     *
     * @throws IOException when a step fails (the ioctl's {@code NativeCallException}); the
     *     backend is then stopped
     * @throws IllegalArgumentException when {@code start} asks what this backend cannot do
     *     (RING_PACKED on kernel vhost-net, more pairs than {@link #maxQueuePairs()})
     */
    void prestart(BackendStart start) throws IOException;

    /**
     * The second half of a start: sets every queue's position from {@code finalPositions} (the
     * same queues as the {@link BackendStart#queues()} of the last {@link #prestart}, in that
     * order; the ring geometry was set by prestart) and starts moving frames on the enabled pairs.
     * Both backends resync through vring's {@code QueueResync}, which checks each position against
     * its queue (naming queue and field) and, for the kernel, derives the SET_VRING_BASE values.
     * After a restore under EVENT_IDX the caller notifies each queue once (a stale
     * {@code avail_event} could otherwise leave the guest never kicking).
     *
     * @throws IOException when a step fails; the backend is then stopped
     * @throws io.vhostffm.vring.VirtqueueException when a position does not fit its queue; the
     *     backend is then stopped
     * @throws IllegalStateException when not prestarted
     */
    void quickstart(List<QueuePosition> finalPositions) throws IOException;

    /**
     * A rehearsal of {@link #quickstart} on the prestarted state, during a migration's precopy
     * (the guest still runs on the source and may share this process's rings and TAP): runs
     * quickstart's own code with {@code positions} up to, not including, its first write to
     * guest memory, a TAP, an eventfd or the kernel, so that the code is loaded, linked and warm
     * when the switchover runs it. The backend stays prestarted; the quickstart sets every
     * position again. The default does nothing (a backend without a rehearsal).
     *
     * @throws io.vhostffm.vring.VirtqueueException when a position does not fit its queue
     * @throws IllegalStateException when not prestarted
     */
    default void rehearseQuickstart(List<QueuePosition> positions) throws IOException {
    }

    /**
     * A classic start: {@link #prestart} then {@link #quickstart} with the positions of
     * {@code start}, or the backend's own one sequence (kernel: QEMU's order, SET_VRING_BASE with
     * the other per-queue steps, NET_SET_BACKEND last; userspace: the queues opened with a classic
     * restore, which checks the indices found in guest memory).
     */
    default void start(BackendStart start) throws IOException {
        prestart(start);
        quickstart(start.positions());
    }

    /** Whether {@link #quickstart} or {@link #start} succeeded and {@link #stop} was not called since. */
    boolean isRunning();

    /**
     * Stops moving frames and returns each queue's position, in the order of
     * {@link BackendStart#queues()}: what another backend (or a migration destination) resumes
     * from, losing and duplicating nothing. Kernel: NET_SET_BACKEND(-1), then GET_VRING_BASE
     * (last_avail_idx), used idx read from the used ring. Stops a prestarted backend too (then
     * the positions are the prestarted ones). The backend can be prestarted again afterwards.
     *
     * @throws IOException when the final state cannot be read; the datapath is stopped anyway
     * @throws IllegalStateException when neither started nor prestarted
     */
    List<QueuePosition> stop() throws IOException;

    /**
     * Stops as {@link #stop()} does, but may return before the backend's own threads have ended:
     * as soon as nothing of it touches the rings, guest memory or the TAP any more. For a stop
     * inside a migration's downtime, where a thread's exit is not worth waiting for.
     * {@link #awaitStopped()} waits for what is left, and every other method of the backend
     * waits for it first. The default is {@link #stop()}.
     *
     * @throws IOException as {@link #stop()}
     */
    default List<QueuePosition> quiesce() throws IOException {
        return stop();
    }

    /**
     * Waits (bounded) for the threads a {@link #quiesce()} left running to end, and closes what
     * they used; nothing when nothing is left. The default does nothing.
     */
    default void awaitStopped() {}

    /**
     * Turns a queue pair on or off while running or prestarted (VQ_PAIRS_SET): a disabled pair
     * moves no frame and its TAP queue is detached (TUNSETQUEUE), so the host does not steer
     * frames to it; its ring state is kept for when it is enabled again.
     */
    void setQueuePairEnabled(int pair, boolean enabled) throws IOException;

    /**
     * VQ_PAIRS_SET in one step: of the first {@code configured} pairs, {@code 0 .. active-1} on and
     * the rest off, as {@link #setQueuePairEnabled} would leave them. The default asks
     * {@link #setQueuePairEnabled} pair by pair; a backend for which each change costs a restart of
     * its datapath overrides it to restart once (with hundreds of pairs, once per pair would keep
     * the control queue's answer waiting for seconds).
     */
    default void setActiveQueuePairs(int configured, int active) throws IOException {
        for (int p = 0; p < configured; p++) {
            setQueuePairEnabled(p, p < active);
        }
    }

    /**
     * The guest's receive offloads changed: {@code tunOffloadFlags} is the TUNSETOFFLOAD argument
     * ({@code TunOffloads.fromGuestOffloads}). Valid in any state; remembered for the next start.
     */
    void setOffloads(int tunOffloadFlags) throws IOException;

    /**
     * The receive filter changed. A userspace datapath filters with it; the kernel's vhost-net
     * cannot filter (the default does nothing, as QEMU with vhost).
     */
    default void setRxFilter(RxFilter filter) throws IOException {}

    /**
     * RSS or hash reporting changed. A userspace datapath steers and reports hashes with it; the
     * kernel's vhost-net cannot (the default does nothing; the kernel backend does not offer RSS).
     */
    default void setRss(RssState rss) throws IOException {}

    /**
     * Starts dirty page logging into {@code log}: from now on every guest page the datapath
     * writes (used rings, receive buffers) is marked in it before the guest can see the write
     * completed. Valid while running or prestarted (kernel: SET_FEATURES with VHOST_F_LOG_ALL,
     * SET_VRING_ADDR with VHOST_VRING_F_LOG and log_guest_addr = the used ring, SET_LOG_BASE).
     */
    void startDirtyLog(DirtyLog log) throws IOException;

    /** Stops dirty page logging (kernel: the flags above cleared). */
    void stopDirtyLog() throws IOException;

    /**
     * What another process on this host needs to rebuild this backend on the same network
     * endpoint: the endpoint's descriptors (TAP queue fds, sent with SCM_RIGHTS; still owned by
     * the endpoint here) and its description. The destination rebuilds a backend of either kind
     * from it with a {@link NetBackendFactory}: the device never looks inside.
     */
    BackendTransfer transfer();

    /**
     * Releases what the backend opened (stopping it first if running). Idempotent. Closing a
     * backend a device still uses (started or prestarted) is not silent: the backend tells its
     * start's {@link BackendListener#backendClosed}, and the device enters DEVICE_NEEDS_RESET
     * naming it. Close a backend after {@link NetDeviceRuntime#switchBackend} replaced it, or
     * after the device is closed.
     */
    @Override
    void close();
}

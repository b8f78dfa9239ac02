package io.vhostffm.migration.net;

import java.util.List;

/**
 * The migration section of a device's virtqueue layouts: every data queue in virtqueue order
 * ({@code 2i} rx, {@code 2i+1} tx), then the control queue if there is one.
 *
 * @param dataQueues the data queues, virtqueue order from 0
 * @param controlQueue zero or one entry: the control queue (its {@code queue} is its virtqueue index)
 */
public record QueueLayouts(List<QueueLayout> dataQueues, List<QueueLayout> controlQueue) {

    /** Checks the shape (untrusted when decoded): data queues numbered from 0, at most one control queue. */
    public QueueLayouts {
        dataQueues = List.copyOf(dataQueues);
        controlQueue = List.copyOf(controlQueue);
        if (dataQueues.size() % 2 != 0) {
            throw new IllegalArgumentException("dataQueues: " + dataQueues.size() + " queues; a device has whole pairs");
        }
        for (int i = 0; i < dataQueues.size(); i++) {
            if (dataQueues.get(i).queue() != i) {
                throw new IllegalArgumentException("dataQueues[" + i + "]: is virtqueue " + dataQueues.get(i).queue());
            }
        }
        if (controlQueue.size() > 1) {
            throw new IllegalArgumentException("controlQueue: " + controlQueue.size() + " entries, at most one");
        }
    }

    /** No queue set up (a device before DRIVER_OK). */
    public static QueueLayouts none() {
        return new QueueLayouts(List.of(), List.of());
    }

    /** The control queue's virtqueue index, or -1. */
    public int controlQueueIndex() {
        return controlQueue.isEmpty() ? -1 : controlQueue.get(0).queue();
    }
}

package io.vhostffm.vring;

/**
 * Flag bits and ring constants of the virtio 1.x rings, under the names of the specification
 * and of {@code <linux/virtio_ring.h>}.
 */
public final class VirtqFlags {
    /** Descriptor continues via the {@code next} field (split) or the next ring slot (packed). */
    public static final int VIRTQ_DESC_F_NEXT = 1;
    /** Buffer is device-writable (otherwise device-readable). */
    public static final int VIRTQ_DESC_F_WRITE = 2;
    /** Buffer holds a table of indirect descriptors (VIRTIO_F_INDIRECT_DESC). */
    public static final int VIRTQ_DESC_F_INDIRECT = 4;
    /** Packed: the avail flag of a descriptor (bit 7). */
    public static final int VIRTQ_DESC_F_AVAIL = 1 << 7;
    /** Packed: the used flag of a descriptor (bit 15). */
    public static final int VIRTQ_DESC_F_USED = 1 << 15;

    /** Split, in avail.flags: the driver asks for no used-buffer notifications. */
    public static final int VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
    /** Split, in used.flags: the device asks for no available-buffer notifications. */
    public static final int VIRTQ_USED_F_NO_NOTIFY = 1;

    /** Bytes of one descriptor (split table entry, packed ring entry, indirect table entry). */
    public static final int DESCRIPTOR_SIZE = 16;

    private VirtqFlags() {
    }

    /**
     * {@code vring_need_event}: whether moving an index from {@code oldIdx} to {@code newIdx}
     * passed {@code eventIdx}, i.e. {@code eventIdx} is in {@code [oldIdx, newIdx)} modulo 2^16.
     * All three are 16-bit values.
     */
    public static boolean needEvent(int eventIdx, int newIdx, int oldIdx) {
        return ((newIdx - eventIdx - 1) & 0xffff) < ((newIdx - oldIdx) & 0xffff);
    }
}

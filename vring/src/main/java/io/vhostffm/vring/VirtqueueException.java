package io.vhostffm.vring;

/**
 * A virtqueue rule broken by the other side (the guest driver, or a device as seen by a driver),
 * or untrusted queue state that does not hold up when restored.
 *
 * <p>The message names the queue index, the chain's head, the descriptor index (and the entry in
 * an indirect table when the fault lies there), the guest address and length involved, and the
 * {@link Rule} that broke. For state errors it names the field and its value instead.
 *
 * <p>When a device queue throws this from {@code take}, the queue is <em>broken</em>: nothing is
 * published for the faulty chain, and every further take or publish throws a
 * {@link Rule#QUEUE_BROKEN} exception until the queue is restored from a state again. This is the
 * device-side equivalent of virtio's DEVICE_NEEDS_RESET: a guest that corrupts its ring gets no
 * more service from that queue, and the host never touches memory outside the guest's.
 */
public final class VirtqueueException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** Value of {@link #head()}, {@link #descriptorIndex()}, {@link #indirectIndex()} when not applicable. */
    public static final int NONE = -1;

    /** The rule that broke, named after the virtio 1.x specification's wording where it has one. */
    public enum Rule {
        /** A buffer's {@code [addr, addr + len)} is not held whole by one guest memory region. */
        BUFFER_OUTSIDE_GUEST_MEMORY("buffer not inside guest memory"),
        /** An indirect table's {@code [addr, addr + len)} is not held whole by one guest memory region. */
        INDIRECT_TABLE_OUTSIDE_GUEST_MEMORY("indirect descriptor table not inside guest memory"),
        /** A head taken from the available ring is not below the queue size. */
        HEAD_OUT_OF_RANGE("head index not below the queue size"),
        /** A {@code next} field points past the descriptor table (or past the indirect table). */
        NEXT_OUT_OF_RANGE("next index outside the descriptor table"),
        /** More descriptors than the queue size were walked: a loop, or a chain longer than allowed. */
        CHAIN_TOO_LONG("descriptor loop or chain longer than the queue size"),
        /** A descriptor inside an indirect table has VIRTQ_DESC_F_INDIRECT set. */
        INDIRECT_IN_INDIRECT("indirect descriptor inside an indirect table"),
        /** An indirect table's length is zero or not a multiple of 16 (the descriptor size). */
        INDIRECT_TABLE_LENGTH("indirect table length zero or not a multiple of 16"),
        /** A descriptor has both VIRTQ_DESC_F_INDIRECT and VIRTQ_DESC_F_NEXT set. */
        INDIRECT_WITH_NEXT("VIRTQ_DESC_F_INDIRECT together with VIRTQ_DESC_F_NEXT"),
        /** A device-readable buffer follows a device-writable one. */
        READABLE_AFTER_WRITABLE("device-readable descriptor after a device-writable one"),
        /** The readable or the writable lengths of a chain add up past 2^32 - 1 (a le32 length). */
        TOTAL_LENGTH_OVERFLOW("total chain length does not fit in 32 bits"),
        /** The other side's index moved by more than the queue size ({@code idx - last > size}). */
        INDEX_JUMP("ring index moved by more than the queue size"),
        /** A used element names an id that is not below the queue size or not in flight (driver side). */
        USED_ID_INVALID("used element id not a chain in flight"),
        /** Packed: a descriptor after the head of a NEXT chain lacks the avail bits of its lap. */
        DESCRIPTOR_NOT_AVAILABLE("descriptor of a chain not marked available"),
        /** Packed: the buffer id of an available chain is not below the queue size, or already in flight. */
        BUFFER_ID_INVALID("buffer id not below the queue size or already in flight"),
        /** Saved queue state that does not hold up: a size, alignment, address or index. */
        INVALID_STATE("invalid queue state"),
        /** The queue broke earlier; it serves nothing until restored. */
        QUEUE_BROKEN("queue is broken by an earlier violation");

        private final String description;

        Rule(String description) {
            this.description = description;
        }

        /** A short sentence saying what the rule forbids. */
        public String description() {
            return description;
        }
    }

    private final Rule rule;
    private final int queueIndex;
    private final int head;
    private final int descriptorIndex;
    private final int indirectIndex;
    private final long address;
    private final long length;
    private final String field;

    private VirtqueueException(Rule rule, int queueIndex, int head, int descriptorIndex, int indirectIndex,
            long address, long length, String field, String message, Throwable cause) {
        super(message, cause);
        this.rule = rule;
        this.queueIndex = queueIndex;
        this.head = head;
        this.descriptorIndex = descriptorIndex;
        this.indirectIndex = indirectIndex;
        this.address = address;
        this.length = length;
        this.field = field;
    }

    /**
     * A violation found while walking a descriptor chain or reading a ring.
     *
     * @param descriptorIndex index in the descriptor table, or {@link #NONE}
     * @param indirectIndex   entry in the indirect table the descriptor points to, or {@link #NONE}
     * @param length          the length involved (unsigned 32-bit values are passed widened)
     * @param detail          what exactly was seen, e.g. why the range is not in guest memory
     */
    public static VirtqueueException chain(Rule rule, int queueIndex, int head, int descriptorIndex,
            int indirectIndex, long address, long length, String detail) {
        StringBuilder sb = new StringBuilder(128);
        sb.append("virtqueue ").append(queueIndex).append(": ").append(rule.description());
        sb.append(" (head ").append(head == NONE ? "?" : Integer.toString(head));
        if (descriptorIndex != NONE) {
            sb.append(", descriptor ").append(descriptorIndex);
        }
        if (indirectIndex != NONE) {
            sb.append(", indirect entry ").append(indirectIndex);
        }
        sb.append(String.format(", addr 0x%x, len %d)", address, length));
        if (detail != null && !detail.isEmpty()) {
            sb.append(": ").append(detail);
        }
        return new VirtqueueException(rule, queueIndex, head, descriptorIndex, indirectIndex, address, length,
                null, sb.toString(), null);
    }

    /** A field of restored queue state that does not hold up; names the field and its value. */
    public static VirtqueueException state(int queueIndex, String field, long value, String detail) {
        String message = String.format("virtqueue %d: invalid queue state: %s = %d (0x%x): %s",
                queueIndex, field, value, value, detail);
        return new VirtqueueException(Rule.INVALID_STATE, queueIndex, NONE, NONE, NONE, 0, 0, field, message, null);
    }

    /** The other side's ring index moved by more than the queue size. */
    public static VirtqueueException indexJump(int queueIndex, String field, int index, int last, int size) {
        String message = String.format(
                "virtqueue %d: %s: %s %d is %d ahead of our %d, more than the queue size %d",
                queueIndex, Rule.INDEX_JUMP.description(), field, index, (index - last) & 0xffff, last, size);
        return new VirtqueueException(Rule.INDEX_JUMP, queueIndex, NONE, NONE, NONE, 0, 0, field, message, null);
    }

    /** Thrown on any use of a queue that broke earlier; the earlier violation is the cause. */
    public static VirtqueueException broken(int queueIndex, VirtqueueException cause) {
        String message = "virtqueue " + queueIndex + ": " + Rule.QUEUE_BROKEN.description()
                + (cause == null ? "" : ": " + cause.getMessage());
        return new VirtqueueException(Rule.QUEUE_BROKEN, queueIndex, NONE, NONE, NONE, 0, 0, null, message, cause);
    }

    /** The rule that broke. */
    public Rule rule() {
        return rule;
    }

    /** Index of the queue in its device. */
    public int queueIndex() {
        return queueIndex;
    }

    /**
     * Head descriptor index (split), or ring index of the chain's first descriptor (packed: the
     * buffer id is only known at the chain's last descriptor), or {@link #NONE}.
     */
    public int head() {
        return head;
    }

    /** Index of the faulty descriptor in the descriptor table (or ring), or {@link #NONE}. */
    public int descriptorIndex() {
        return descriptorIndex;
    }

    /** Entry of the indirect table at fault, or {@link #NONE} when the fault is not inside one. */
    public int indirectIndex() {
        return indirectIndex;
    }

    /** Guest-physical address involved (0 when none). */
    public long address() {
        return address;
    }

    /** Length involved, unsigned (0 when none). */
    public long length() {
        return length;
    }

    /** For {@link Rule#INVALID_STATE} and {@link Rule#INDEX_JUMP}: the state field at fault; else null. */
    public String field() {
        return field;
    }
}

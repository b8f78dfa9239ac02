package io.vhostffm.migration.schema;

import io.vhostffm.migration.MigrationException;

/**
 * Encoded state bytes that do not decode into a valid record: too short, a value out of range
 * (a boolean that is neither 0 nor 1, an enum ordinal or length beyond its bound), trailing
 * bytes, or a record constructor that rejects the decoded values. Names the field by its path
 * (for example {@code queues[1].size}) and the byte offset inside the encoded payload.
 */
public final class StateDecodeException extends MigrationException {
    private static final long serialVersionUID = 1L;

    private final String fieldPath;
    private final int offset;
    private final String reason;

    /**
     * @param fieldPath path of the field being decoded, empty for the record as a whole
     * @param offset byte offset inside the encoded payload where decoding failed
     * @param reason what was wrong
     */
    public StateDecodeException(String fieldPath, int offset, String reason) {
        super("field '" + fieldPath + "' at payload offset " + offset + ": " + reason);
        this.fieldPath = fieldPath;
        this.offset = offset;
        this.reason = reason;
    }

    /** Path of the offending field, e.g. {@code net.macTable.entries}; empty for the whole record. */
    public String fieldPath() {
        return fieldPath;
    }

    /** Byte offset inside the encoded payload. */
    public int offset() {
        return offset;
    }

    /** What was wrong, without the field and offset. */
    public String reason() {
        return reason;
    }
}

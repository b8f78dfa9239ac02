package io.vhostffm.migration;

/**
 * A migration stream that cannot be trusted: wrong magic or version, an unknown section id or
 * flag, truncation, a bad checksum, a length over the limit, a payload that does not decode, or
 * sections in an order the protocol does not allow. Names the section (when one was being read),
 * the byte offset in the stream, and the field when a payload failed validation.
 */
public final class MigrationStreamException extends MigrationException {
    private static final long serialVersionUID = 1L;

    /** {@link #sectionId()} when the failure is outside any section (the stream header). */
    public static final int NO_SECTION = -1;

    private final int sectionId;
    private final String sectionName;
    private final long offset;
    private final String field;

    /**
     * @param reason what was wrong
     * @param sectionId the section being read, or {@link #NO_SECTION}
     * @param sectionName its name, or null when unknown
     * @param offset byte offset in the stream (0 is the first byte of the magic)
     * @param field the field path when a payload failed validation, else null
     */
    public MigrationStreamException(String reason, int sectionId, String sectionName, long offset, String field) {
        this(reason, sectionId, sectionName, offset, field, null);
    }

    /** As the other constructor, with the cause (an I/O failure or a decode failure). */
    public MigrationStreamException(String reason, int sectionId, String sectionName, long offset, String field,
            Throwable cause) {
        super(format(reason, sectionId, sectionName, offset, field), cause);
        this.sectionId = sectionId;
        this.sectionName = sectionName;
        this.offset = offset;
        this.field = field;
    }

    private static String format(String reason, int sectionId, String sectionName, long offset, String field) {
        StringBuilder sb = new StringBuilder("migration stream: ").append(reason).append(" (");
        if (sectionId != NO_SECTION) {
            sb.append("section ").append(String.format("0x%04x", sectionId));
            if (sectionName != null) {
                sb.append(" '").append(sectionName).append('\'');
            }
            sb.append(", ");
        }
        sb.append("byte offset ").append(offset);
        if (field != null) {
            sb.append(", field '").append(field).append('\'');
        }
        return sb.append(')').toString();
    }

    /** The section id, or {@link #NO_SECTION}. */
    public int sectionId() {
        return sectionId;
    }

    /** The section's name, or null when the id is unknown or there is no section. */
    public String sectionName() {
        return sectionName;
    }

    /** Byte offset in the stream where the problem was found. */
    public long offset() {
        return offset;
    }

    /** The payload field that failed validation, or null. */
    public String field() {
        return field;
    }
}

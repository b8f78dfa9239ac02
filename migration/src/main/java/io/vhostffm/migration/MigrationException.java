package io.vhostffm.migration;

/** A migration that cannot go on: a bad stream, a state that does not fit the device. */
public class MigrationException extends Exception {
    private static final long serialVersionUID = 1L;

    public MigrationException(String message) {
        super(message);
    }

    public MigrationException(String message, Throwable cause) {
        super(message, cause);
    }
}

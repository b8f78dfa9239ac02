package io.vhostffm.migration;

/**
 * Where a migration is, as both sides name it when the peer or the connection fails. The
 * outcome of a failure depends on one boundary only: whether the source has received the
 * destination's acknowledgement ({@link #ACKNOWLEDGEMENT} complete). Before it, the guest
 * resumes at the source and the destination never starts the device; after it ({@link
 * #COMPLETION}), the source never runs the guest again.
 */
public enum MigrationPhase {
    /** The source waits for the destination to connect. */
    CONNECT("connect"),
    /** Guest memory memfds and backend fds move with SCM_RIGHTS. */
    HANDOFF("handoff"),
    /** Manifest and full state of every section. */
    SETUP("setup"),
    /** Guest RAM copied between two hosts (round 0 and the dirty rounds). */
    RAM_PRECOPY("RAM precopy"),
    /** The guest runs at the source; device changes go out as deltas. */
    PRECOPY("precopy"),
    /** The guest is paused; the datapath stopped; final state and indices go out. */
    STOP_AND_COPY("stop-and-copy"),
    /** The source waits for the destination's answer; the destination waits for the source's commit. */
    ACKNOWLEDGEMENT("acknowledgement"),
    /** After the acknowledgement: the guest belongs to the destination. */
    COMPLETION("completion");

    private final String label;

    MigrationPhase(String label) {
        this.label = label;
    }

    /** Whether a failure in this phase leaves the guest with the source. */
    public boolean guestStaysAtSource() {
        return this != COMPLETION;
    }

    @Override
    public String toString() {
        return label;
    }
}

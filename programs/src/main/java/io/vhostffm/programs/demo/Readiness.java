package io.vhostffm.programs.demo;

/**
 * The destination's answer once the whole stream validated (and, with RAM precopy, the final
 * pass arrived), before it starts anything: ready, or refused and why. Its arrival at the source
 * is the migration's one point of decision: the source then sends the paused guest's state (the
 * commit) and never runs the guest again; the destination starts the device only once that
 * state arrived.
 *
 * @param ready whether the destination will start the device when the commit arrives
 * @param failure why not, when not ready
 */
public record Readiness(boolean ready, String failure) {}

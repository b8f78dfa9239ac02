/**
 * JDK Flight Recorder events of a migration: its phases ({@link MigrationPhaseEvent}), the
 * switchover's steps on the destination ({@link SwitchoverStepEvent}) and every frame of the
 * migration stream ({@link StreamFrameEvent}); the ioctls are vhost-ffm's
 * {@code io.vhostffm.vhost.os.IoctlEvent}. Each is cheap when no recording runs: its object is
 * never committed and the JIT removes its allocation.
 */
package io.vhostffm.migration.jfr;

/**
 * Early live migration of a vhost-net device: device state, delta detection, the migration
 * stream, and the quickstart of vhost at the destination.
 */
module io.vhostffm.migration {
    requires transitive io.vhostffm.vhost;
    requires jdk.jfr; // the events of io.vhostffm.migration.jfr
    requires java.management; // the JIT's compilation time, after the destination's rehearsals

    exports io.vhostffm.migration;
    exports io.vhostffm.migration.schema;
    exports io.vhostffm.migration.stream;
    exports io.vhostffm.migration.net;
    exports io.vhostffm.migration.jfr;
}

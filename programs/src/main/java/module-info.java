/**
 * The programs a user runs: the two-process live-migration demo and its harness
 * ({@code io.vhostffm.programs.demo}), and the probe of what a host offers
 * ({@code io.vhostffm.programs.probe}). Not a library: nothing here is API.
 */
module io.vhostffm.programs {
    requires io.vhostffm.migration;
    requires io.vhostffm.testkit; // the demo's fake guest
    requires java.management;
    requires jdk.jfr; // bin/demo --jfr
    requires HdrHistogram; // the downtime benchmark's percentiles // the demo's child JVM inherits this JVM's -XX options
}

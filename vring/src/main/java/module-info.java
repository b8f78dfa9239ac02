/**
 * Split and packed virtqueues (virtio 1.x, sections 2.7 and 2.8) as zero-copy views over guest
 * memory. Pure Java: no native call, so it runs and fuzzes anywhere.
 */
module io.vhostffm.vring {
    exports io.vhostffm.vring;
}

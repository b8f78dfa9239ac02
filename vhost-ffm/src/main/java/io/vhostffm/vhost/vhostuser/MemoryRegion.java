package io.vhostffm.vhost.vhostuser;

/**
 * One region of SET_MEM_TABLE ({@code VhostUserMemoryRegion}): where the guest sees it, how big
 * it is, where the frontend has it mapped, and where in the file descriptor sent with it the
 * region starts.
 *
 * @param guestAddress     guest-physical address
 * @param size             bytes
 * @param userspaceAddress the frontend's virtual address of the region (what SET_VRING_ADDR uses)
 * @param mmapOffset       offset of the region in its file
 */
public record MemoryRegion(long guestAddress, long size, long userspaceAddress, long mmapOffset) {}

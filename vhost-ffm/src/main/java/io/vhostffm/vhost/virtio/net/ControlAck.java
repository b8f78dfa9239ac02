package io.vhostffm.vhost.virtio.net;

/**
 * The outcome of one control command: the ack byte to write into the chain's device-writable
 * buffer and, for {@link VirtioNetCtrl#ERR}, why.
 *
 * @param ack {@link VirtioNetCtrl#OK} or {@link VirtioNetCtrl#ERR}
 * @param command the command's name, e.g. {@code VIRTIO_NET_CTRL_MAC_TABLE_SET}, or what could be
 *     read of it
 * @param reason empty for OK; otherwise what was wrong, naming the field and byte offset
 */
public record ControlAck(int ack, String command, String reason) {
    static ControlAck ok(String command) {
        return new ControlAck(VirtioNetCtrl.OK, command, "");
    }

    static ControlAck err(String command, String reason) {
        return new ControlAck(VirtioNetCtrl.ERR, command, reason);
    }

    /** Whether the command succeeded. */
    public boolean isOk() {
        return ack == VirtioNetCtrl.OK;
    }

    /** The ack as the byte the driver reads. */
    public byte ackByte() {
        return (byte) ack;
    }
}

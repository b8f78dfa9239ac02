package io.vhostffm.vhost.os;

/**
 * Who is at the other end of a UNIX socket, as the kernel recorded it (SO_PEERCRED, {@code
 * struct ucred}): the process that connected, or the one that called listen(2) on the path a
 * client connected to. The kernel takes these at connect/listen time; the peer cannot forge them.
 *
 * @param pid the peer's process id (as seen from our pid namespace; 0 when it has none there)
 * @param uid its effective user id
 * @param gid its effective group id
 */
public record PeerCredentials(int pid, int uid, int gid) {
    @Override
    public String toString() {
        return "pid " + pid + ", uid " + uid + ", gid " + gid;
    }
}

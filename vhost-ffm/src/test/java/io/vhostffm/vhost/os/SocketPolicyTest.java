package io.vhostffm.vhost.os;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Who may connect: owner-only socket files in private directories, pre-created paths refused,
 * and SO_PEERCRED checked on both sides against a real stranger (uid 65534, a child process).
 */
class SocketPolicyTest {
    private static final Duration DEADLINE = Duration.ofSeconds(60);

    @TempDir
    Path dir;

    @Test
    void theSocketFileIsOwnerOnly() throws Exception {
        Path path = dir.resolve("s.sock");
        try (UnixSocketListener listener = UnixSocketListener.bind(path)) {
            assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(path)));
            assertEquals(SocketPolicy.ownerOnly(), listener.policy());
        }
        assertFalse(Files.exists(path), "close removes the path");
    }

    @Test
    void aPathSomeoneCreatedFirstIsRefused() throws Exception {
        Path path = dir.resolve("taken.sock");
        Files.createFile(path);
        Files.setAttribute(path, "unix:uid", StrangerProcess.UID);
        SocketPathException e = assertThrows(SocketPathException.class, () -> UnixSocketListener.bind(path));
        assertTrue(e.getMessage().contains("exists already") && e.getMessage().contains("owner uid " + StrangerProcess.UID),
                e.getMessage());
        assertEquals(StrangerProcess.UID, (int) Files.getAttribute(path, "unix:uid"), "the stranger's file is left alone");
    }

    @Test
    void aDirectoryOthersMayWriteIsRefusedUnlessTheCallerSaysWhy() throws Exception {
        Path shared = Files.createDirectory(dir.resolve("shared"));
        Files.setPosixFilePermissions(shared, PosixFilePermissions.fromString("rwxrwxrwx"));
        Path path = shared.resolve("s.sock");
        SocketPathException e = assertThrows(SocketPathException.class, () -> UnixSocketListener.bind(path));
        assertTrue(e.getMessage().contains("may be written by"), e.getMessage());
        assertFalse(Files.exists(path), "nothing was bound");

        Files.setPosixFilePermissions(shared, PosixFilePermissions.fromString("rwxrwx---"));
        assertThrows(SocketPathException.class, () -> UnixSocketListener.bind(path), "group-writable too");

        try (UnixSocketListener listener = UnixSocketListener.bind(path,
                SocketPolicy.ownerOnly().allowingSharedDirectory("a run directory shared with the device group"))) {
            assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(path)));
        }
    }

    @Test
    void aDirectoryOfAnotherUserIsRefused() throws Exception {
        Path theirs = Files.createDirectory(dir.resolve("theirs"));
        Files.setAttribute(theirs, "unix:uid", StrangerProcess.UID);
        SocketPathException e = assertThrows(SocketPathException.class,
                () -> UnixSocketListener.bind(theirs.resolve("s.sock")));
        assertTrue(e.getMessage().contains("belongs to uid " + StrangerProcess.UID), e.getMessage());
    }

    @Test
    void aPairKnowsItsOwnProcess() throws Exception {
        try (UnixSocket.Pair pair = UnixSocket.pair()) {
            PeerCredentials peer = pair.first().peerCredentials();
            assertEquals(ProcessHandle.current().pid(), peer.pid());
            assertEquals(SocketPolicy.ourUid(), peer.uid());
        }
    }

    @Test
    void aStrangerCannotEvenReachAnOwnerOnlySocket() throws Exception {
        traversableByOthers(dir);
        Path path = dir.resolve("s.sock");
        try (UnixSocketListener listener = UnixSocketListener.bind(path);
                StrangerProcess stranger = StrangerProcess.start("connect", path)) {
            String said = stranger.nextLine();
            assertTrue(said.startsWith("connect failed") && said.contains("Permission denied"), said);
        }
    }

    @Test
    void aStrangerThatGetsThroughTheModeIsRefusedBeforeAnythingIsSent() throws Exception {
        traversableByOthers(dir);
        Path path = dir.resolve("s.sock");
        try (UnixSocketListener listener = UnixSocketListener.bind(path);
                StrangerProcess stranger = StrangerProcess.start("connect", path)) {
            // A mistake elsewhere (a chmod, an ACL, a container's bind mount) opens the file: the credentials still hold.
            Files.setPosixFilePermissions(path, PosixFilePermissions.fromString("rw-rw-rw-"));
            PeerRefusedException e = assertThrows(PeerRefusedException.class, () -> listener.accept(DEADLINE));
            assertEquals(new PeerCredentials((int) stranger.pid(), StrangerProcess.UID, StrangerProcess.UID), e.peer());
            assertTrue(e.getMessage().contains("pid " + stranger.pid() + ", uid 65534, gid 65534"), e.getMessage());
            List<String> said = stranger.rest();
            assertEquals(List.of("connected", "received 0 bytes"), said, "refused before a byte was sent");
        }
    }

    @Test
    void aStrangerCanBeAllowedByName() throws Exception {
        traversableByOthers(dir);
        Path path = dir.resolve("s.sock");
        try (UnixSocketListener listener = UnixSocketListener.bind(path,
                SocketPolicy.ownerOnly().allowingUids(StrangerProcess.UID));
                StrangerProcess stranger = StrangerProcess.start("connect", path)) {
            Files.setPosixFilePermissions(path, PosixFilePermissions.fromString("rw-rw-rw-"));
            try (UnixSocket accepted = listener.accept(DEADLINE)) {
                assertEquals(StrangerProcess.UID, accepted.peerCredentials().uid());
                accepted.send(new byte[] {1, 2, 3});
            }
            assertEquals(List.of("connected", "received 3 bytes"), stranger.rest());
        }
    }

    @Test
    void aListenerThatIsNotWhoItClaimsIsRefusedBeforeAnythingIsSent() throws Exception {
        traversableByOthers(dir);
        Path theirs = Files.createDirectory(dir.resolve("theirs"));
        Files.setAttribute(theirs, "unix:uid", StrangerProcess.UID);
        Path path = theirs.resolve("migration.sock");
        try (StrangerProcess stranger = StrangerProcess.start("listen", path)) {
            assertEquals("listening", stranger.nextLine());
            PeerRefusedException e = assertThrows(PeerRefusedException.class, () -> UnixSocket.connect(path));
            assertEquals(StrangerProcess.UID, e.peer().uid());
            assertEquals(StrangerProcess.UID, e.peer().gid());
            assertEquals(stranger.pid(), e.peer().pid());
            assertEquals(List.of("received 0 bytes"), stranger.rest(), "the client sent nothing");
        }
    }

    /** o+x on the test's private directory, so the stranger can reach a path in it (still nobody else may write). */
    private static void traversableByOthers(Path directory) throws Exception {
        Files.setPosixFilePermissions(directory, PosixFilePermissions.fromString("rwx--x--x"));
    }
}

package io.vhostffm.testkit;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Certificates made at test time with the JDK's keytool into a directory the test names: a
 * self-signed EC key per identity, and trust stores holding the certificates of the identities
 * trusted. No private key is ever committed.
 */
public final class TestCertificates {
    /** The password of every store and key made here (they live only in a temporary directory). */
    public static final char[] PASSWORD = "vhostffm-test".toCharArray();
    private static final long KEYTOOL_DEADLINE_SECONDS = 120;

    private final Path directory;

    /** Certificates in {@code directory} (a temporary directory of the test). */
    public TestCertificates(Path directory) {
        this.directory = directory;
    }

    /**
     * A new identity {@code name} (CN=name): its key store (PKCS12) with a self-signed
     * certificate, valid for two days.
     */
    public KeyStore identity(String name) throws IOException, GeneralSecurityException {
        Path store = keyStorePath(name);
        keytool("-genkeypair", "-alias", name, "-keyalg", "EC", "-groupname", "secp256r1", "-dname", "CN=" + name,
                "-validity", "2", "-storetype", "PKCS12", "-keystore", store.toString(),
                "-storepass", new String(PASSWORD), "-keypass", new String(PASSWORD));
        return load(store);
    }

    /** A trust store holding the certificates of the identities {@code names} (made before). */
    public KeyStore trusting(String storeName, String... names) throws IOException, GeneralSecurityException {
        Path trust = directory.resolve(storeName + "-trust.p12");
        for (String name : names) {
            Path certificate = directory.resolve(name + ".pem");
            if (!Files.exists(certificate)) {
                keytool("-exportcert", "-rfc", "-alias", name, "-keystore", keyStorePath(name).toString(),
                        "-storepass", new String(PASSWORD), "-file", certificate.toString());
            }
            keytool("-importcert", "-noprompt", "-alias", name, "-file", certificate.toString(), "-storetype", "PKCS12",
                    "-keystore", trust.toString(), "-storepass", new String(PASSWORD));
        }
        return load(trust);
    }

    private Path keyStorePath(String name) {
        return directory.resolve(name + ".p12");
    }

    private static KeyStore load(Path store) throws IOException, GeneralSecurityException {
        KeyStore keys = KeyStore.getInstance("PKCS12");
        try (InputStream in = Files.newInputStream(store)) {
            keys.load(in, PASSWORD);
        }
        return keys;
    }

    private static void keytool(String... arguments) throws IOException {
        List<String> command = new ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "keytool").toString());
        command.addAll(List.of(arguments));
        Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        try {
            byte[] output = process.getInputStream().readAllBytes();
            if (!process.waitFor(KEYTOOL_DEADLINE_SECONDS, TimeUnit.SECONDS) || process.exitValue() != 0) {
                throw new IOException("keytool " + arguments[0] + " failed: " + new String(output, StandardCharsets.UTF_8));
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while keytool ran", e);
        } finally {
            process.destroyForcibly();
        }
    }
}

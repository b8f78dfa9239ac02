package io.vhostffm.testkit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** Descriptors are found by what they refer to, in this process and in the others that share them. */
class OpenDescriptorsTest {

    @Test
    void aPipesOtherEndIsFoundInTheProcessThatHoldsIt() throws Exception {
        Map<Integer, String> before = OpenDescriptors.snapshot();
        Process cat = new ProcessBuilder("cat").start(); // our end writes its standard input
        try {
            String pipe = Files.readSymbolicLink(Path.of("/proc", Long.toString(cat.pid()), "fd", "0")).toString();
            assertTrue(pipe.startsWith("pipe:["), pipe);
            List<String> holders = OpenDescriptors.holders(pipe);
            assertEquals(List.of(cat.pid() + " (cat) fd 0"), holders);
            // this process's own end is an opened pipe, and not a holder of its own
            assertTrue(OpenDescriptors.opened(before, OpenDescriptors.snapshot()).stream()
                    .anyMatch(d -> d.target().equals(pipe)), "our end of " + pipe);
        } finally {
            cat.getOutputStream().close();
            cat.getInputStream().close();
            cat.getErrorStream().close();
            assertTrue(cat.waitFor(10, TimeUnit.SECONDS), "cat ended at the end of its input");
        }
        assertEquals(List.of(), OpenDescriptors.opened(before, OpenDescriptors.snapshot()).stream()
                .filter(d -> d.target().startsWith("pipe:")).toList(), "pipes left open");
    }
}

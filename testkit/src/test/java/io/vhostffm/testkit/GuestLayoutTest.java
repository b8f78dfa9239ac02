package io.vhostffm.testkit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

/** The layout places every ring and buffer by computation, and its overlap check names both areas. */
class GuestLayoutTest {

    @Test
    void everyPairCountUpToTheTapsMaximumGetsDisjointAreasInsideTheRegions() {
        for (int pairs : new int[] {1, 2, 16, 17, 128, 256}) {
            GuestLayout layout = GuestLayout.of(pairs);
            assertEquals(3 * layout.queueCount() + pairs + 2 * pairs + 1, layout.areas().size(), "areas of " + pairs);
            GuestLayout.checkDisjoint(layout.areas());
            for (GuestArea a : layout.areas()) {
                assertTrue(layout.ringRegion().contains(a) || layout.bufferRegion().contains(a), a::toString);
            }
            assertTrue(layout.hole().size() > 0 && !layout.hole().overlaps(layout.ringRegion())
                    && !layout.hole().overlaps(layout.bufferRegion()), layout::toString);
            assertEquals(2 * pairs, layout.controlQueue());
        }
    }

    @Test
    void anOverlapIsRefusedNamingBothAreas() {
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> GuestLayout.checkDisjoint(List.of(
                new GuestArea("virtqueue 0 descriptors", 0, 0x1000),
                new GuestArea("virtqueue 32 driver area", 0x2000, 0x100),
                new GuestArea("virtqueue 1 used ring", 0x800, 0x100))));
        assertTrue(e.getMessage().contains("virtqueue 0 descriptors [0x0, 0x1000)")
                && e.getMessage().contains("virtqueue 1 used ring [0x800, 0x900)"), e.getMessage());
    }

    @Test
    void badSpecsAreRefusedNamingTheField() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new GuestLayout.Spec(0, 256, 64, 2048));
        assertTrue(e.getMessage().contains("pairs 0"), e.getMessage());
    }
}

package io.vhostffm.migration.schema;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vhostffm.migration.fixture.Fixtures;
import io.vhostffm.migration.fixture.Fixtures.MacTable;
import io.vhostffm.migration.fixture.Fixtures.NetState;
import io.vhostffm.migration.fixture.Fixtures.NetStateV2;
import io.vhostffm.migration.fixture.Fixtures.QueueConfig;
import io.vhostffm.migration.fixture.Fixtures.RxMode;
import io.vhostffm.migration.fixture.Fixtures.VirtioState;
import io.vhostffm.migration.fixture.Mutations;
import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class StateSchemaTest {

    /** Every supported kind at once. */
    public record AllKinds(boolean z, byte b, short s, char c, int i, long l, float f, double d, boolean[] za,
            byte[] ba, short[] sa, char[] ca, int[] ia, long[] la, String text, RxMode mode, MacTable nested,
            List<QueueConfig> queues, List<Integer> ints, List<String> names, List<RxMode> modes, List<Long> longs,
            List<Boolean> flags) {
    }

    public record Empty() {
    }

    public record Holder(List<Empty> empties, int after) {
    }

    public record WithMap(Map<String, String> map) {
    }

    public record WithObject(Object any) {
    }

    public record WithFloats(float[] fs) {
    }

    public record Recursive(int v, List<Recursive> children) {
    }

    static AllKinds allKinds() {
        return new AllKinds(true, (byte) -2, (short) -300, 'x', -70000, Long.MIN_VALUE, 1.5f, 2.5,
                new boolean[] {true, false}, new byte[] {1, 2, 3}, new short[] {-1, 7}, new char[] {'a', 'ß'},
                new int[] {1, -1, Integer.MAX_VALUE}, new long[] {Long.MAX_VALUE, 0}, "grüß dich", RxMode.ALLMULTI,
                new MacTable(true, false, new byte[] {9, 8, 7, 6, 5, 4}),
                List.of(new QueueConfig(64, 1, 2, 3, true, (short) 4), new QueueConfig(128, 5, 6, 7, false, (short) 8)),
                List.of(1, 2, 3), List.of("a", "bc"), List.of(RxMode.PROMISC, RxMode.NORMAL), List.of(-5L),
                List.of(true, false, true));
    }

    @Test
    void everyKindRoundTrips() throws Exception {
        StateSchema<AllKinds> schema = StateSchema.of(AllKinds.class);
        AllKinds original = allKinds();
        byte[] bytes = schema.encode(original);
        AllKinds decoded = schema.decode(bytes);
        assertTrue(schema.unchanged(decoded, original));
        assertEquals(List.of(), schema.changedFields(original, decoded));
        assertEquals(original.text(), decoded.text());
        assertArrayEquals(original.ca(), decoded.ca());
        assertEquals(original.queues().get(1), decoded.queues().get(1));
        AllKinds nan = new AllKinds(original.z(), original.b(), original.s(), original.c(), original.i(),
                original.l(), Float.NaN, Double.NaN, original.za(), original.ba(), original.sa(), original.ca(),
                original.ia(), original.la(), original.text(), original.mode(), original.nested(), original.queues(),
                original.ints(), original.names(), original.modes(), original.longs(), original.flags());
        AllKinds nanDecoded = schema.decode(schema.encode(nan));
        assertTrue(Double.isNaN(nanDecoded.d()));
        assertTrue(schema.unchanged(nanDecoded, nan), "NaN compares by bits, so it equals itself");
        assertArrayEquals(bytes, schema.encode(decoded), "encoding is deterministic");
        assertSame(schema, StateSchema.of(AllKinds.class), "compiled once per type");
    }

    @Test
    void everyComponentIsEncodedSnapshottedAndCompared() throws Exception {
        checkEveryComponent(StateSchema.of(AllKinds.class), allKinds());
        checkEveryComponent(StateSchema.of(NetState.class), Fixtures.net());
        checkEveryComponent(StateSchema.of(VirtioState.class), Fixtures.virtio());
        checkEveryComponent(StateSchema.of(NetStateV2.class), Fixtures.netV2());
    }

    /** For each component: change only it, and see encode, decode, snapshot and compare all notice. */
    static <R extends Record> void checkEveryComponent(StateSchema<R> schema, R base) throws Exception {
        byte[] baseBytes = schema.encode(base);
        R baseSnapshot = schema.snapshot(base);
        int n = base.getClass().getRecordComponents().length;
        assertEquals(n, schema.componentNames().size());
        for (int i = 0; i < n; i++) {
            Mutations.Mutation m = Mutations.mutateComponent(base, i);
            R changed = schema.recordType().cast(m.value());
            String what = schema.recordType().getSimpleName() + " component " + i + " (" + m.suffix() + ")";
            assertFalse(schema.unchanged(changed, baseSnapshot), what + ": compared");
            assertEquals(List.of(m.suffix()), schema.changedFields(baseSnapshot, changed), what + ": path");
            byte[] bytes = schema.encode(changed);
            assertFalse(Arrays.equals(baseBytes, bytes), what + ": encoded");
            R decoded = schema.decode(bytes);
            assertTrue(schema.unchanged(decoded, changed), what + ": decoded");
            assertEquals(List.of(m.suffix()), schema.changedFields(base, decoded), what + ": decoded path");
            R snapshot = schema.snapshot(changed);
            assertTrue(schema.unchanged(snapshot, changed), what + ": snapshotted");
        }
    }

    @Test
    void anAddedFieldIsPickedUpByEncodingSnapshotAndComparison() throws Exception {
        StateSchema<NetState> v1 = StateSchema.of(NetState.class);
        StateSchema<NetStateV2> v2 = StateSchema.of(NetStateV2.class);
        assertEquals(v1.componentNames().size() + 1, v2.componentNames().size());
        assertEquals("announce", v2.componentNames().getLast());

        NetStateV2 before = Fixtures.netV2();
        assertEquals(v1.encode(Fixtures.net()).length + 1, v2.encode(before).length, "the new boolean is encoded");

        NetStateV2 snapshot = v2.snapshot(before);
        NetStateV2 after = new NetStateV2(before.mac(), before.macTable(), before.status(), before.rxMode(),
                before.vlans(), before.guestOffloads(), before.multiqueue(), before.queuePairs(), before.rss(),
                before.pendingTx(), before.tap(), true);
        assertFalse(v2.unchanged(after, snapshot));
        assertEquals(List.of("announce"), v2.changedFields(snapshot, after));
        assertTrue(v2.snapshot(after).announce(), "the snapshot carries the new field");
        assertTrue(v2.decode(v2.encode(after)).announce(), "decoding restores it");

        assertNotEquals(v1.fingerprint(), v2.fingerprint(), "the shape changed, so does the fingerprint");
        StateDecodeException e = assertThrows(StateDecodeException.class, () -> v2.decode(v1.encode(Fixtures.net())));
        assertEquals("announce", e.fieldPath());
        assertEquals(v1.encode(Fixtures.net()).length, e.offset());
    }

    @Test
    void snapshotIsDeepAndDetectsLaterInPlaceChanges() {
        StateSchema<NetState> schema = StateSchema.of(NetState.class);
        NetState live = Fixtures.net();
        NetState snapshot = schema.snapshot(live);
        assertNotSame(live.mac(), snapshot.mac());
        assertNotSame(live.macTable().entries(), snapshot.macTable().entries());
        assertTrue(schema.unchanged(live, snapshot));

        live.macTable().entries()[0] = 42; // a device that mutates its arrays in place
        live.vlans()[3] = 0x10;
        live.rss().indirection()[127] = 1;
        assertFalse(schema.unchanged(live, snapshot));
        assertEquals(List.of("macTable.entries", "vlans", "rss.indirection"), schema.changedFields(snapshot, live));
        assertEquals(1, snapshot.macTable().entries()[0], "the snapshot did not follow the live array");
    }

    @Test
    void snapshotOfImmutableRecordIsTheSameInstance() {
        QueueConfig q = new QueueConfig(16, 1, 2, 3, true, (short) 0);
        assertSame(q, StateSchema.of(QueueConfig.class).snapshot(q));
    }

    @Test
    void listPathsNameTheElementOrTheList() {
        StateSchema<VirtioState> schema = StateSchema.of(VirtioState.class);
        VirtioState a = Fixtures.virtio();
        List<QueueConfig> qs = new ArrayList<>(a.queues());
        QueueConfig q1 = qs.get(1);
        qs.set(1, new QueueConfig(q1.size(), q1.descAddr(), q1.availAddr(), q1.usedAddr(), false, (short) 9));
        VirtioState b = new VirtioState(a.status(), a.offeredFeatures(), a.ackedFeatures(), a.config(), qs);
        assertEquals(List.of("queues[1].enabled", "queues[1].vector"), schema.changedFields(a, b));
        VirtioState c = new VirtioState((byte) 0, a.offeredFeatures(), a.ackedFeatures(), a.config(),
                a.queues().subList(0, 1));
        assertEquals(List.of("status", "queues"), schema.changedFields(a, c));
    }

    @Test
    void decodingValidatesAndNamesTheField() {
        StateSchema<AllKinds> schema = StateSchema.of(AllKinds.class);
        byte[] good = schema.encode(allKinds());

        byte[] badBoolean = good.clone();
        badBoolean[0] = 2;
        StateDecodeException e = assertThrows(StateDecodeException.class, () -> schema.decode(badBoolean));
        assertEquals("z", e.fieldPath());
        assertEquals(0, e.offset());

        // mode follows z..la and text: find it by encoding a prefix record is brittle, so flip the
        // enum ordinal where the encoder put it: just after the text's bytes.
        int modeOffset = indexAfter(good, "grüß dich".getBytes(java.nio.charset.StandardCharsets.UTF_8));
        byte[] badEnum = good.clone();
        badEnum[modeOffset + 3] = 9;
        e = assertThrows(StateDecodeException.class, () -> schema.decode(badEnum));
        assertEquals("mode", e.fieldPath());
        assertEquals(modeOffset, e.offset());

        byte[] badLength = good.clone();
        badLength[1 + 1 + 2 + 2 + 4 + 8 + 4 + 8] = 0x7f; // za's length prefix
        e = assertThrows(StateDecodeException.class, () -> schema.decode(badLength));
        assertEquals("za", e.fieldPath());

        byte[] trailing = Arrays.copyOf(good, good.length + 1);
        e = assertThrows(StateDecodeException.class, () -> schema.decode(trailing));
        assertEquals(good.length, e.offset());

        byte[] badUtf8 = good.clone();
        badUtf8[modeOffset - 1] = (byte) 0xff;
        e = assertThrows(StateDecodeException.class, () -> schema.decode(badUtf8));
        assertEquals("text", e.fieldPath());
    }

    private static int indexAfter(byte[] haystack, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= haystack.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (haystack[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return i + needle.length;
        }
        throw new AssertionError("not found");
    }

    @Test
    void theRecordsOwnValidationRunsOnDecode() {
        StateSchema<VirtioState> schema = StateSchema.of(VirtioState.class);
        VirtioState v = Fixtures.virtio();
        byte[] bytes = schema.encode(v);
        // the first queue's size (256 = 0x00000100) follows status(1), features(16), config(4+8), count(4)
        int sizeOffset = 1 + 8 + 8 + 4 + 8 + 4;
        assertEquals(1, bytes[sizeOffset + 2]);
        bytes[sizeOffset + 3] = 3; // 259: not a power of two
        StateDecodeException e = assertThrows(StateDecodeException.class, () -> schema.decode(bytes));
        assertEquals("queues[0]", e.fieldPath());
        assertEquals(sizeOffset, e.offset());
        assertTrue(e.getMessage().contains("not a power of 2"), e.getMessage());
    }

    @Test
    void everyTruncationIsACleanDecodeError() {
        StateSchema<AllKinds> schema = StateSchema.of(AllKinds.class);
        byte[] good = schema.encode(allKinds());
        for (int len = 0; len < good.length; len++) {
            int n = len;
            StateDecodeException e = assertThrows(StateDecodeException.class, () -> schema.decode(good, 0, n));
            assertTrue(e.offset() <= n, "offset " + e.offset() + " within " + n);
        }
    }

    @Test
    void corruptedBytesDecodeOrFailCleanlyNeverOtherwise() {
        // Bytes that passed the stream's checksum are still untrusted: every single-byte change
        // of a valid encoding, and random bytes, either decode or give a StateDecodeException.
        checkCorruptions(StateSchema.of(AllKinds.class), StateSchema.of(AllKinds.class).encode(allKinds()));
        checkCorruptions(StateSchema.of(NetState.class), StateSchema.of(NetState.class).encode(Fixtures.net()));
        checkCorruptions(StateSchema.of(VirtioState.class),
                StateSchema.of(VirtioState.class).encode(Fixtures.virtio()));
        java.util.Random random = new java.util.Random(42);
        StateSchema<NetState> net = StateSchema.of(NetState.class);
        for (int i = 0; i < 20_000; i++) {
            byte[] junk = new byte[random.nextInt(300)];
            random.nextBytes(junk);
            decodeOrCleanFailure(net, junk, "random " + i);
        }
    }

    private static <R extends Record> void checkCorruptions(StateSchema<R> schema, byte[] good) {
        for (int i = 0; i < good.length; i++) {
            for (int value : new int[] {0x00, 0x01, 0x02, 0x7f, 0x80, 0xff, good[i] ^ 0x01, good[i] ^ 0x80}) {
                byte[] bad = good.clone();
                bad[i] = (byte) value;
                decodeOrCleanFailure(schema, bad, "byte " + i + " = " + value);
            }
        }
    }

    private static <R extends Record> void decodeOrCleanFailure(StateSchema<R> schema, byte[] bytes, String what) {
        try {
            R decoded = schema.decode(bytes);
            // What decodes re-encodes to the same bytes: nothing was read loosely.
            assertArrayEquals(bytes, schema.encode(decoded), what);
        } catch (StateDecodeException expected) {
            assertTrue(expected.offset() >= 0 && expected.offset() <= bytes.length, what);
        } catch (RuntimeException | Error other) {
            throw new AssertionError(what + " gave " + other, other);
        }
    }

    @Test
    void zeroSizeElementsCannotForgeAHugeList() {
        StateSchema<Holder> schema = StateSchema.of(Holder.class);
        byte[] bytes = {0x7f, (byte) 0xff, (byte) 0xff, (byte) 0xff, 0, 0, 0, 1};
        StateDecodeException e = assertThrows(StateDecodeException.class, () -> schema.decode(bytes));
        assertEquals("empties", e.fieldPath());
        Holder h = new Holder(List.of(new Empty(), new Empty()), 5);
        assertThrows(IllegalArgumentException.class, () -> StateSchema.of(Holder.class).encode(
                new Holder(Arrays.asList(new Empty(), null), 1)));
        assertTrue(schema.unchanged(h, assertDoesNotThrowDecode(schema, schema.encode(h))));
    }

    private static <R extends Record> R assertDoesNotThrowDecode(StateSchema<R> schema, byte[] b) {
        try {
            return schema.decode(b);
        } catch (StateDecodeException e) {
            throw new AssertionError(e);
        }
    }

    /** Private: the schema's own lookup cannot reach it, the caller's (a nestmate) can. */
    private record Hidden(int a, byte[] b) {
    }

    @Test
    void aCallersLookupReachesRecordsTheModuleCannot() throws Exception {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> StateSchema.of(Hidden.class));
        assertTrue(e.getMessage().contains("pass a Lookup"), e.getMessage());
        StateSchema<Hidden> schema = StateSchema.of(Hidden.class, java.lang.invoke.MethodHandles.lookup());
        Hidden h = new Hidden(3, new byte[] {1});
        assertEquals(3, schema.decode(schema.encode(h)).a());
        assertSame(schema, StateSchema.of(Hidden.class), "cached once compiled");
    }

    @Test
    void unsupportedTypesAreRejectedWhenCompiled() {
        assertThrows(IllegalArgumentException.class, () -> StateSchema.of(WithMap.class));
        assertThrows(IllegalArgumentException.class, () -> StateSchema.of(WithObject.class));
        assertThrows(IllegalArgumentException.class, () -> StateSchema.of(WithFloats.class));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> StateSchema.of(Recursive.class));
        assertTrue(e.getMessage().contains("recursive"), e.getMessage());
    }

    @Test
    void nullReferencesAreRefusedOnEncodeAndComparedSafely() {
        StateSchema<NetState> schema = StateSchema.of(NetState.class);
        NetState n = Fixtures.net();
        NetState nullTap = new NetState(n.mac(), n.macTable(), n.status(), n.rxMode(), n.vlans(), n.guestOffloads(),
                n.multiqueue(), n.queuePairs(), n.rss(), n.pendingTx(), null);
        assertThrows(IllegalArgumentException.class, () -> schema.encode(nullTap));
        assertFalse(schema.unchanged(nullTap, n));
        assertEquals(List.of("tap"), schema.changedFields(n, nullTap));
        NetState nullTable = new NetState(n.mac(), null, n.status(), n.rxMode(), n.vlans(), n.guestOffloads(),
                n.multiqueue(), n.queuePairs(), n.rss(), n.pendingTx(), n.tap());
        assertEquals(List.of("macTable"), schema.changedFields(n, nullTable));
    }

    /** Device state of one queue pair, as the no-delta check sees it at stop-and-copy. */
    public record OneQueuePairDevice(VirtioState virtio, NetState net) {
    }

    @Test
    void theNoDeltaCheckAllocatesNothing() throws Exception {
        StateSchema<OneQueuePairDevice> schema = StateSchema.of(OneQueuePairDevice.class);
        OneQueuePairDevice live = new OneQueuePairDevice(Fixtures.virtio(), Fixtures.net());
        OneQueuePairDevice snapshot = new OneQueuePairDevice(Fixtures.virtio(), Fixtures.net());
        long fewest = fewestBytesAllocated(schema, live, snapshot);
        // An allocation per check would be >= 16 bytes x 100,000; the margin is for the bean calls.
        assertTrue(fewest < 1024, "allocated " + fewest + " bytes over 100,000 checks");
    }

    /**
     * The fewest bytes this thread allocated over five rounds of 100,000 no-delta checks of
     * {@code live} against an equal {@code snapshot}, after a warm-up that lets the JIT compile
     * the check. The fewest counts: a one-time event (a recompilation on this thread) may
     * allocate in one round; an allocation per check shows in every round.
     */
    static <R extends Record> long fewestBytesAllocated(StateSchema<R> schema, R live, R snapshot) throws Exception {
        for (int i = 0; i < 200_000; i++) {
            if (!schema.unchanged(live, snapshot)) {
                throw new AssertionError("the snapshot must equal the live state");
            }
        }
        // com.sun.management.ThreadMXBean by reflection: this module does not read jdk.management.
        Class<?> factory = Class.forName("java.lang.management.ManagementFactory");
        Object bean = factory.getMethod("getThreadMXBean").invoke(null);
        Method allocated = Class.forName("com.sun.management.ThreadMXBean").getMethod("getCurrentThreadAllocatedBytes");
        allocated.invoke(bean); // warm the reflective call itself
        long fewest = Long.MAX_VALUE;
        for (int round = 0; round < 5; round++) {
            long before = (long) allocated.invoke(bean);
            boolean all = true;
            for (int i = 0; i < 100_000; i++) {
                all &= schema.unchanged(live, snapshot);
            }
            long after = (long) allocated.invoke(bean);
            assertTrue(all);
            fewest = Math.min(fewest, after - before);
        }
        return fewest;
    }
}

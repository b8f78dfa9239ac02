package io.vhostffm.migration.schema;

import static java.lang.invoke.MethodType.methodType;

import io.vhostffm.vhost.virtio.net.ContentComparable;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.reflect.Constructor;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.RecordComponent;
import java.lang.reflect.Type;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The one description of a piece of migratable state: a Java record type. Compiled once per
 * record type from its {@link RecordComponent}s, the same component list drives
 * {@link #encode encoding}, {@link #decode decoding with validation}, {@link #snapshot deep
 * snapshots} and {@link #changedFields comparison}. Adding a component to the record is
 * therefore picked up by all four at once; none of them can forget it.
 *
 * <p>Supported component types: {@code boolean byte short char int long float double}, arrays of
 * {@code boolean byte short char int long} (compared by content), {@code String}, enums, nested
 * records (recursively), and {@code List<E>} of records, enums, Strings or boxed primitives.
 * Recursive record types are rejected. References must not be null when encoding.
 *
 * <p>{@link #unchanged} is the hot path of a switchover's "no delta" check: one method handle,
 * composed at compile time of primitive-typed accessors and comparators joined by short-circuit
 * guards, so it neither boxes nor allocates nor reflects per call. Components are read through
 * the record's public accessors only. A {@link ContentComparable} record (one whose accessors
 * hand out copies of its arrays, as the device model's state records do) is compared by its own
 * {@code equals} instead, which compares every component, arrays by content, without copying.
 *
 * <p>The {@link #fingerprint} hashes the component names, their types and enum constant names
 * (not class names), so two processes can check that they agree on the state's shape.
 *
 * @param <R> the record type
 */
public final class StateSchema<R extends Record> {
    private static final Map<Class<?>, StateSchema<?>> CACHE = new ConcurrentHashMap<>();
    private static final ThreadLocal<Set<Class<?>>> COMPILING = ThreadLocal.withInitial(HashSet::new);

    private final Class<R> recordType;
    private final List<Component> components;
    private final MethodHandle constructor; // (Object[])Object
    private final MethodHandle equality; // (Object,Object)boolean
    private final MethodHandle writer; // (StateEncoder,Object)void
    private final boolean hasMutableParts;
    private final int minEncodedSize;
    private final String description;
    private final long fingerprint;

    /** One record component: its name, accessor and kind, and the handles built from them. */
    private record Component(String name, FieldKind kind, MethodHandle getter, MethodHandle boxedGetter,
            MethodHandle equality) {
    }

    /**
     * The schema of {@code type}, compiled on first use and cached. The record class must be
     * accessible to this module (public, in a package exported to it); otherwise use
     * {@link #of(Class, MethodHandles.Lookup)}.
     *
     * @throws IllegalArgumentException when a component has an unsupported type
     */
    public static <R extends Record> StateSchema<R> of(Class<R> type) {
        return of(type, MethodHandles.lookup());
    }

    /** Reads a component through the record's public accessor: its own API, nothing more. */
    private static MethodHandle componentGetter(Class<?> type, RecordComponent rc, MethodHandles.Lookup lookup) {
        try {
            return lookup.unreflect(rc.getAccessor());
        } catch (IllegalAccessException denied) {
            throw new IllegalArgumentException("cannot access " + type.getName() + "." + rc.getName()
                    + "(); pass a Lookup that can", denied);
        }
    }

    /**
     * The record's own {@code equals} when the record is {@link ContentComparable}, else null:
     * such a record hands out copies of its arrays, so comparing it component by component
     * through its accessors would copy each array per comparison.
     */
    private static MethodHandle contentEquality(Class<?> type, MethodHandles.Lookup lookup) {
        if (!ContentComparable.class.isAssignableFrom(type)) {
            return null;
        }
        try {
            return lookup.findVirtual(type, "equals", methodType(boolean.class, Object.class))
                    .asType(methodType(boolean.class, Object.class, Object.class));
        } catch (NoSuchMethodException | IllegalAccessException e) {
            throw new IllegalArgumentException("cannot access " + type.getName() + ".equals; pass a Lookup that can",
                    e);
        }
    }

    /** As {@link #of(Class)}, with a lookup that can access the record's accessors and constructor. */
    @SuppressWarnings("unchecked")
    public static <R extends Record> StateSchema<R> of(Class<R> type, MethodHandles.Lookup lookup) {
        Objects.requireNonNull(type, "type");
        StateSchema<?> cached = CACHE.get(type);
        if (cached != null) {
            return (StateSchema<R>) cached;
        }
        // Not computeIfAbsent: compiling a record compiles its nested records, which would
        // re-enter the map's compute.
        StateSchema<R> compiled = new StateSchema<>(type, lookup);
        StateSchema<?> raced = CACHE.putIfAbsent(type, compiled);
        return raced == null ? compiled : (StateSchema<R>) raced;
    }

    private StateSchema(Class<R> type, MethodHandles.Lookup lookup) {
        if (!type.isRecord()) {
            throw new IllegalArgumentException(type.getName() + " is not a record");
        }
        Set<Class<?>> compiling = COMPILING.get();
        if (!compiling.add(type)) {
            throw new IllegalArgumentException("recursive record type " + type.getName() + " is not supported");
        }
        try {
            this.recordType = type;
            RecordComponent[] recordComponents = type.getRecordComponents();
            List<Component> list = new ArrayList<>(recordComponents.length);
            Class<?>[] parameterTypes = new Class<?>[recordComponents.length];
            StringBuilder desc = new StringBuilder("{");
            boolean mutable = false;
            int minSize = 0;
            for (int i = 0; i < recordComponents.length; i++) {
                RecordComponent rc = recordComponents[i];
                parameterTypes[i] = rc.getType();
                FieldKind kind = kindOf(rc.getGenericType(), type.getName() + "." + rc.getName(), lookup, false);
                MethodHandle getter = componentGetter(type, rc, lookup).asType(methodType(rc.getType(), Object.class));
                MethodHandle eq = MethodHandles.filterArguments(kind.equality(), 0, getter, getter);
                list.add(new Component(rc.getName(), kind, getter,
                        getter.asType(methodType(Object.class, Object.class)), eq));
                mutable |= kind.hasMutableParts();
                minSize += kind.minEncodedSize();
                desc.append(rc.getName()).append(':').append(kind.describe()).append(';');
            }
            this.components = List.copyOf(list);
            this.hasMutableParts = mutable;
            this.minEncodedSize = minSize;
            this.description = desc.append('}').toString();
            this.fingerprint = hash(description);
            try {
                Constructor<R> canonical = type.getDeclaredConstructor(parameterTypes);
                this.constructor = lookup.unreflectConstructor(canonical)
                        .asType(methodType(Object.class, parameterTypes))
                        .asSpreader(Object[].class, parameterTypes.length);
            } catch (ReflectiveOperationException e) {
                throw new IllegalArgumentException("cannot access the canonical constructor of " + type.getName()
                        + "; pass a Lookup that can", e);
            }
            MethodHandle own = contentEquality(type, lookup);
            this.equality = own != null ? own : composeEquality(components);
            this.writer = composeWriter(components);
        } finally {
            compiling.remove(type);
        }
    }

    private static FieldKind kindOf(Type generic, String where, MethodHandles.Lookup lookup, boolean inList) {
        if (generic instanceof ParameterizedType p && p.getRawType() == List.class) {
            if (inList) {
                throw new IllegalArgumentException(where + ": lists of lists are not supported");
            }
            return new FieldKind.ListOf(kindOf(p.getActualTypeArguments()[0], where + "[]", lookup, true));
        }
        if (!(generic instanceof Class<?> c)) {
            throw new IllegalArgumentException(where + ": unsupported type " + generic.getTypeName());
        }
        if (c.isPrimitive()) {
            if (inList || c == void.class) {
                throw new IllegalArgumentException(where + ": unsupported type " + c);
            }
            return new FieldKind.Primitive(c);
        }
        if (c.isArray()) {
            Class<?> e = c.getComponentType();
            if (inList || !e.isPrimitive() || e == float.class || e == double.class) {
                throw new IllegalArgumentException(where + ": unsupported array type " + c.getSimpleName());
            }
            return new FieldKind.PrimitiveArray(c);
        }
        if (c == String.class) {
            return new FieldKind.Text();
        }
        if (c.isEnum()) {
            return new FieldKind.EnumValue(c);
        }
        if (c.isRecord()) {
            @SuppressWarnings({"unchecked", "rawtypes"})
            StateSchema<?> nested = of((Class) c, lookup);
            return new FieldKind.NestedRecord(nested);
        }
        if (inList) {
            Class<?> unboxed = switch (c.getName()) {
                case "java.lang.Boolean" -> boolean.class;
                case "java.lang.Byte" -> byte.class;
                case "java.lang.Short" -> short.class;
                case "java.lang.Character" -> char.class;
                case "java.lang.Integer" -> int.class;
                case "java.lang.Long" -> long.class;
                case "java.lang.Float" -> float.class;
                case "java.lang.Double" -> double.class;
                default -> null;
            };
            if (unboxed != null) {
                return new FieldKind.Boxed(c, unboxed);
            }
        }
        throw new IllegalArgumentException(where + ": unsupported type " + c.getName()
                + " (primitives, primitive arrays, String, enums, records, List<record|enum|String|boxed>)");
    }

    private static MethodHandle composeEquality(List<Component> components) {
        if (components.isEmpty()) {
            return MethodHandles.dropArguments(MethodHandles.constant(boolean.class, true), 0, Object.class,
                    Object.class);
        }
        return and(components, 0, components.size());
    }

    /**
     * {@code eq[from] && ... && eq[to-1]} as a balanced tree of {@code guardWithTest}s, in
     * declaration order. Balanced rather than a chain so that the nesting the JIT has to
     * inline grows with log2 of the component count, not with the count (MaxInlineLevel).
     */
    private static MethodHandle and(List<Component> components, int from, int to) {
        if (to - from == 1) {
            return components.get(from).equality();
        }
        int mid = (from + to) >>> 1;
        MethodHandle alwaysFalse = MethodHandles.dropArguments(
                MethodHandles.constant(boolean.class, false), 0, Object.class, Object.class);
        return MethodHandles.guardWithTest(and(components, from, mid), and(components, mid, to), alwaysFalse);
    }

    private static MethodHandle composeWriter(List<Component> components) {
        MethodHandle chain = MethodHandles.empty(methodType(void.class, StateEncoder.class, Object.class));
        for (int i = components.size() - 1; i >= 0; i--) {
            Component c = components.get(i);
            MethodHandle write = MethodHandles.filterArguments(c.kind().writer(), 1, c.getter());
            // foldArguments runs `write` first with the same (encoder, record), then the rest.
            chain = MethodHandles.foldArguments(chain, write);
        }
        return chain;
    }

    private static long hash(String description) {
        try {
            byte[] digest = MessageDigest.getInstance("SHA-256").digest(description.getBytes(StandardCharsets.UTF_8));
            long h = 0;
            for (int i = 0; i < 8; i++) {
                h = (h << 8) | (digest[i] & 0xFF);
            }
            return h;
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is a required JDK algorithm", e);
        }
    }

    /** The record type this schema describes. */
    public Class<R> recordType() {
        return recordType;
    }

    /** Component names in declaration order (the order they are encoded in). */
    public List<String> componentNames() {
        return components.stream().map(Component::name).toList();
    }

    /** A canonical text of the shape: component names and types, enum constants, nested shapes. */
    public String description() {
        return description;
    }

    /** 64 bits of SHA-256 over {@link #description()}: equal in two processes iff the shapes agree. */
    public long fingerprint() {
        return fingerprint;
    }

    MethodHandle equalityHandle() {
        return equality;
    }

    MethodHandle writerHandle() {
        return writer;
    }

    boolean hasMutableParts() {
        return hasMutableParts;
    }

    int minEncodedSize() {
        return minEncodedSize;
    }

    /**
     * True when {@code live} holds the same state as {@code snapshot}: every component equal,
     * arrays by content, nested records and lists recursively. Allocation-free; stops at the
     * first difference.
     */
    public boolean unchanged(R live, R snapshot) {
        if (live == snapshot) {
            return true;
        }
        if (live == null || snapshot == null) {
            return false;
        }
        try {
            return (boolean) equality.invokeExact((Object) live, (Object) snapshot);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /**
     * The paths of the fields that differ between {@code before} and {@code after}, in
     * declaration order: {@code name} for a scalar or array, {@code outer.inner} inside a
     * nested record, {@code list[i].inner} inside a list of records of unchanged size, and
     * {@code list} when a list's size changed. Empty when {@link #unchanged}.
     */
    public List<String> changedFields(R before, R after) {
        Objects.requireNonNull(before, "before");
        Objects.requireNonNull(after, "after");
        if (unchanged(after, before)) {
            return List.of();
        }
        List<String> out = new ArrayList<>();
        collectChanges("", before, after, out);
        return Collections.unmodifiableList(out);
    }

    private void collectChanges(String prefix, Object before, Object after, List<String> out) {
        for (Component c : components) {
            try {
                if ((boolean) c.equality().invokeExact(before, after)) {
                    continue;
                }
                String path = prefix + c.name();
                Object b = c.boxedGetter().invokeExact(before);
                Object a = c.boxedGetter().invokeExact(after);
                if (c.kind() instanceof FieldKind.NestedRecord n && a != null && b != null) {
                    n.schema().collectChanges(path + ".", b, a, out);
                } else if (c.kind() instanceof FieldKind.ListOf l && l.element() instanceof FieldKind.NestedRecord n
                        && a != null && b != null && ((List<?>) a).size() == ((List<?>) b).size()) {
                    List<?> bl = (List<?>) b;
                    List<?> al = (List<?>) a;
                    for (int i = 0; i < al.size(); i++) {
                        Object be = bl.get(i);
                        Object ae = al.get(i);
                        if (be != null && ae != null) {
                            if (!(boolean) n.schema().equality.invokeExact(be, ae)) {
                                n.schema().collectChanges(path + "[" + i + "].", be, ae, out);
                            }
                        } else if (be != ae) {
                            out.add(path + "[" + i + "]");
                        }
                    }
                } else {
                    out.add(path);
                }
            } catch (RuntimeException | Error e) {
                throw e;
            } catch (Throwable t) {
                throw new IllegalStateException(t);
            }
        }
    }

    /**
     * A copy of {@code value} that shares no array or list with it, so that later changes to
     * the live state's arrays cannot leak into the snapshot. Returns {@code value} itself when
     * the record holds nothing mutable (records are otherwise immutable).
     */
    public R snapshot(R value) {
        return recordType.cast(snapshotUnchecked(Objects.requireNonNull(value, "value")));
    }

    Object snapshotUnchecked(Object value) {
        if (!hasMutableParts) {
            return value;
        }
        Object[] args = new Object[components.size()];
        try {
            for (int i = 0; i < args.length; i++) {
                Component c = components.get(i);
                Object v = c.boxedGetter().invokeExact(value);
                args[i] = c.kind().snapshot(v);
            }
            return constructor.invokeExact(args);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /**
     * Encodes {@code value}: its components in declaration order, big-endian, arrays, strings
     * and lists with an int length prefix, enums as their ordinal, nested records inline.
     *
     * @throws IllegalArgumentException when a reference inside is null
     */
    public byte[] encode(R value) {
        Objects.requireNonNull(value, "value");
        StateEncoder out = new StateEncoder(Math.max(64, minEncodedSize));
        try {
            writer.invokeExact(out, (Object) value);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
        return out.toByteArray();
    }

    /** Decodes all of {@code bytes}; see {@link #decode(byte[], int, int)}. */
    public R decode(byte[] bytes) throws StateDecodeException {
        return decode(bytes, 0, bytes.length);
    }

    /**
     * Decodes exactly {@code length} bytes at {@code offset} into a record, validating every
     * length, boolean and enum ordinal, rejecting trailing bytes, and running the record's own
     * constructor checks.
     *
     * @throws StateDecodeException naming the field path and the payload offset of the problem
     */
    public R decode(byte[] bytes, int offset, int length) throws StateDecodeException {
        Objects.checkFromIndexSize(offset, length, bytes.length);
        StateDecoder in = new StateDecoder(bytes, offset, length);
        Object value = readRecord(in);
        if (in.remaining() != 0) {
            throw in.failure(in.remaining() + " trailing bytes after " + recordType.getSimpleName());
        }
        return recordType.cast(value);
    }

    Object readRecord(StateDecoder in) throws StateDecodeException {
        int start = in.offset();
        Object[] args = new Object[components.size()];
        for (int i = 0; i < args.length; i++) {
            Component c = components.get(i);
            in.enter(c.name());
            args[i] = c.kind().read(in);
            in.exit();
        }
        try {
            return constructor.invokeExact(args);
        } catch (RuntimeException e) {
            // The record's compact constructor validates its state; untrusted bytes failed it.
            throw new StateDecodeException(in.path(), start,
                    recordType.getSimpleName() + " rejected the decoded values: " + e.getMessage());
        } catch (Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    @Override
    public String toString() {
        return "StateSchema[" + recordType.getName() + " " + description + "]";
    }
}

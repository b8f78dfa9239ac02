package io.vhostffm.migration.schema;

import static java.lang.invoke.MethodType.methodType;

import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Objects;

/**
 * How one Java type of a record component (or list element) is compared, encoded, decoded and
 * snapshotted. Each kind hands out method handles typed on the field's own Java type, so that
 * the composed comparison of a record never boxes a primitive.
 */
abstract sealed class FieldKind {
    private static final MethodHandles.Lookup LOOKUP = MethodHandles.lookup();

    /** The Java type of values of this kind. */
    abstract Class<?> type();

    /** {@code (T,T)boolean}: true when both values hold the same state; null-safe for references. */
    abstract MethodHandle equality();

    /** {@code (StateEncoder,T)void}: appends the value; throws on a null reference. */
    abstract MethodHandle writer();

    /** Reads one value, boxed for primitives; validates what it reads. */
    abstract Object read(StateDecoder in) throws StateDecodeException;

    /** A copy that shares no mutable array with {@code value}. */
    abstract Object snapshot(Object value);

    /** Whether {@link #snapshot} has anything to copy (an array or a list somewhere inside). */
    abstract boolean hasMutableParts();

    /** The smallest number of bytes one value encodes to, to bound list lengths on decode. */
    abstract int minEncodedSize();

    /** A canonical description for the schema fingerprint. */
    abstract String describe();

    static MethodHandle findStatic(Class<?> owner, String name, MethodType type) {
        try {
            return LOOKUP.findStatic(owner, name, type);
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException(e);
        }
    }

    static MethodHandle findVirtual(Class<?> owner, String name, MethodType type) {
        try {
            return LOOKUP.findVirtual(owner, name, type);
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * The static helpers the composed handles call: comparators (floating point by bits, so that
     * a NaN equals itself and -0.0 differs from 0.0), null checks and the list writer.
     */
    static final class Compare {
        private Compare() {
        }

        static boolean eq(boolean a, boolean b) {
            return a == b;
        }

        static boolean eq(byte a, byte b) {
            return a == b;
        }

        static boolean eq(short a, short b) {
            return a == b;
        }

        static boolean eq(char a, char b) {
            return a == b;
        }

        static boolean eq(int a, int b) {
            return a == b;
        }

        static boolean eq(long a, long b) {
            return a == b;
        }

        static boolean eq(float a, float b) {
            return Float.floatToRawIntBits(a) == Float.floatToRawIntBits(b);
        }

        static boolean eq(double a, double b) {
            return Double.doubleToRawLongBits(a) == Double.doubleToRawLongBits(b);
        }

        static boolean same(Object a, Object b) {
            return a == b;
        }

        /** True when {@code a == b}, or when one is null; then {@link #same} gives the answer. */
        static boolean sameOrNull(Object a, Object b) {
            return a == b || a == null || b == null;
        }

        static boolean sameSize(List<?> a, List<?> b) {
            return a.size() == b.size();
        }

        /** Throws a clear error for a null reference in state that is being encoded. */
        static Object requireNonNull(String where, Object value) {
            if (value == null) {
                throw new IllegalArgumentException("cannot encode a null " + where);
            }
            return value;
        }

        static void writeList(MethodHandle elementWriter, String where, StateEncoder out, List<?> list)
                throws Throwable {
            requireNonNull(where, list);
            out.writeInt(list.size());
            for (Object element : list) {
                elementWriter.invokeExact(out, requireNonNull("element of " + where, element));
            }
        }
    }

    /** boolean, byte, short, char, int, long, float, double. */
    static final class Primitive extends FieldKind {
        private final Class<?> type;
        private final String writerName;

        Primitive(Class<?> type) {
            this.type = type;
            String n = type.getName();
            this.writerName = "write" + Character.toUpperCase(n.charAt(0)) + n.substring(1);
        }

        @Override
        Class<?> type() {
            return type;
        }

        @Override
        MethodHandle equality() {
            return findStatic(Compare.class, "eq", methodType(boolean.class, type, type));
        }

        @Override
        MethodHandle writer() {
            return findVirtual(StateEncoder.class, writerName, methodType(void.class, type));
        }

        @Override
        Object read(StateDecoder in) throws StateDecodeException {
            return switch (type.getName()) {
                case "boolean" -> in.readBoolean();
                case "byte" -> in.readByte();
                case "short" -> in.readShort();
                case "char" -> in.readChar();
                case "int" -> in.readInt();
                case "long" -> in.readLong();
                case "float" -> in.readFloat();
                case "double" -> in.readDouble();
                default -> throw new IllegalStateException(type.getName());
            };
        }

        @Override
        Object snapshot(Object value) {
            return value;
        }

        @Override
        boolean hasMutableParts() {
            return false;
        }

        @Override
        int minEncodedSize() {
            return switch (type.getName()) {
                case "boolean", "byte" -> 1;
                case "short", "char" -> 2;
                case "int", "float" -> 4;
                default -> 8;
            };
        }

        @Override
        String describe() {
            return type.getName();
        }
    }

    /** Integer, Long, ... : the primitive's encoding; only allowed as list elements. */
    static final class Boxed extends FieldKind {
        private final Class<?> box;
        private final Primitive primitive;

        Boxed(Class<?> box, Class<?> primitive) {
            this.box = box;
            this.primitive = new Primitive(primitive);
        }

        @Override
        Class<?> type() {
            return box;
        }

        @Override
        MethodHandle equality() {
            return findStatic(Objects.class, "equals", methodType(boolean.class, Object.class, Object.class))
                    .asType(methodType(boolean.class, box, box));
        }

        @Override
        MethodHandle writer() {
            // asType unboxes: Integer -> int.
            return primitive.writer().asType(methodType(void.class, StateEncoder.class, box));
        }

        @Override
        Object read(StateDecoder in) throws StateDecodeException {
            return primitive.read(in);
        }

        @Override
        Object snapshot(Object value) {
            return value;
        }

        @Override
        boolean hasMutableParts() {
            return false;
        }

        @Override
        int minEncodedSize() {
            return primitive.minEncodedSize();
        }

        @Override
        String describe() {
            return box.getSimpleName();
        }
    }

    /** boolean[], byte[], short[], char[], int[], long[]: compared by content. */
    static final class PrimitiveArray extends FieldKind {
        private final Class<?> type;
        private final String suffix;

        PrimitiveArray(Class<?> type) {
            this.type = type;
            String n = type.getComponentType().getName();
            this.suffix = Character.toUpperCase(n.charAt(0)) + n.substring(1) + "Array";
        }

        @Override
        Class<?> type() {
            return type;
        }

        @Override
        MethodHandle equality() {
            return findStatic(Arrays.class, "equals", methodType(boolean.class, type, type));
        }

        @Override
        MethodHandle writer() {
            MethodHandle write = findVirtual(StateEncoder.class, "write" + suffix, methodType(void.class, type));
            MethodHandle check = MethodHandles.insertArguments(
                    findStatic(Compare.class, "requireNonNull",
                            methodType(Object.class, String.class, Object.class)), 0, type.getSimpleName())
                    .asType(methodType(type, type));
            return MethodHandles.filterArguments(write, 1, check);
        }

        @Override
        Object read(StateDecoder in) throws StateDecodeException {
            return switch (type.getComponentType().getName()) {
                case "boolean" -> in.readBooleanArray();
                case "byte" -> in.readByteArray();
                case "short" -> in.readShortArray();
                case "char" -> in.readCharArray();
                case "int" -> in.readIntArray();
                case "long" -> in.readLongArray();
                default -> throw new IllegalStateException(type.getName());
            };
        }

        @Override
        Object snapshot(Object value) {
            return switch (value) {
                case null -> null;
                case boolean[] a -> a.clone();
                case byte[] a -> a.clone();
                case short[] a -> a.clone();
                case char[] a -> a.clone();
                case int[] a -> a.clone();
                case long[] a -> a.clone();
                default -> throw new IllegalStateException(value.getClass().getName());
            };
        }

        @Override
        boolean hasMutableParts() {
            return true;
        }

        @Override
        int minEncodedSize() {
            return 4;
        }

        @Override
        String describe() {
            return type.getComponentType().getName() + "[]";
        }
    }

    /** String, as UTF-8 with a length prefix. */
    static final class Text extends FieldKind {
        @Override
        Class<?> type() {
            return String.class;
        }

        @Override
        MethodHandle equality() {
            return findStatic(Objects.class, "equals", methodType(boolean.class, Object.class, Object.class))
                    .asType(methodType(boolean.class, String.class, String.class));
        }

        @Override
        MethodHandle writer() {
            MethodHandle write = findVirtual(StateEncoder.class, "writeString", methodType(void.class, String.class));
            MethodHandle check = MethodHandles.insertArguments(
                    findStatic(Compare.class, "requireNonNull",
                            methodType(Object.class, String.class, Object.class)), 0, "String")
                    .asType(methodType(String.class, String.class));
            return MethodHandles.filterArguments(write, 1, check);
        }

        @Override
        Object read(StateDecoder in) throws StateDecodeException {
            return in.readString();
        }

        @Override
        Object snapshot(Object value) {
            return value;
        }

        @Override
        boolean hasMutableParts() {
            return false;
        }

        @Override
        int minEncodedSize() {
            return 4;
        }

        @Override
        String describe() {
            return "String";
        }
    }

    /** An enum, as its ordinal in an int; the fingerprint covers the constant names. */
    static final class EnumValue extends FieldKind {
        private final Class<?> type;
        private final Object[] constants;

        EnumValue(Class<?> type) {
            this.type = type;
            this.constants = type.getEnumConstants();
        }

        @Override
        Class<?> type() {
            return type;
        }

        @Override
        MethodHandle equality() {
            return findStatic(Compare.class, "same", methodType(boolean.class, Object.class, Object.class))
                    .asType(methodType(boolean.class, type, type));
        }

        @Override
        MethodHandle writer() {
            MethodHandle ordinal = findVirtual(Enum.class, "ordinal", methodType(int.class));
            MethodHandle check = MethodHandles.insertArguments(
                    findStatic(Compare.class, "requireNonNull",
                            methodType(Object.class, String.class, Object.class)), 0, type.getSimpleName())
                    .asType(methodType(Enum.class, Object.class));
            MethodHandle writeInt = findVirtual(StateEncoder.class, "writeInt", methodType(void.class, int.class));
            return MethodHandles.filterArguments(writeInt, 1, MethodHandles.filterArguments(ordinal, 0, check))
                    .asType(methodType(void.class, StateEncoder.class, type));
        }

        @Override
        Object read(StateDecoder in) throws StateDecodeException {
            int at = in.offset();
            int ordinal = in.readInt();
            if (ordinal < 0 || ordinal >= constants.length) {
                throw new StateDecodeException(in.path(), at, "ordinal " + ordinal + " is not one of the "
                        + constants.length + " constants of " + type.getSimpleName());
            }
            return constants[ordinal];
        }

        @Override
        Object snapshot(Object value) {
            return value;
        }

        @Override
        boolean hasMutableParts() {
            return false;
        }

        @Override
        int minEncodedSize() {
            return 4;
        }

        @Override
        String describe() {
            StringBuilder sb = new StringBuilder("enum{");
            for (Object c : constants) {
                sb.append(((Enum<?>) c).name()).append(',');
            }
            return sb.append('}').toString();
        }
    }

    /** A nested record, encoded inline by its own schema. */
    static final class NestedRecord extends FieldKind {
        private final StateSchema<?> schema;

        NestedRecord(StateSchema<?> schema) {
            this.schema = schema;
        }

        StateSchema<?> schema() {
            return schema;
        }

        @Override
        Class<?> type() {
            return schema.recordType();
        }

        @Override
        MethodHandle equality() {
            // a == b (or a null) decides alone; otherwise compare component by component.
            MethodHandle sameOrNull = findStatic(Compare.class, "sameOrNull",
                    methodType(boolean.class, Object.class, Object.class));
            MethodHandle same = findStatic(Compare.class, "same", methodType(boolean.class, Object.class, Object.class));
            return MethodHandles.guardWithTest(sameOrNull, same, schema.equalityHandle())
                    .asType(methodType(boolean.class, type(), type()));
        }

        @Override
        MethodHandle writer() {
            MethodHandle check = MethodHandles.insertArguments(
                    findStatic(Compare.class, "requireNonNull",
                            methodType(Object.class, String.class, Object.class)), 0, type().getSimpleName());
            return MethodHandles.filterArguments(schema.writerHandle(), 1, check)
                    .asType(methodType(void.class, StateEncoder.class, type()));
        }

        @Override
        Object read(StateDecoder in) throws StateDecodeException {
            return schema.readRecord(in);
        }

        @Override
        Object snapshot(Object value) {
            return value == null ? null : schema.snapshotUnchecked(value);
        }

        @Override
        boolean hasMutableParts() {
            return schema.hasMutableParts();
        }

        @Override
        int minEncodedSize() {
            return schema.minEncodedSize();
        }

        @Override
        String describe() {
            return schema.description();
        }
    }

    /** {@code List<E>}: a count, then the elements; compared element by element. */
    static final class ListOf extends FieldKind {
        /** Upper bound on elements when an element may encode to zero bytes (an empty record). */
        static final int MAX_ELEMENTS = 1 << 20;
        private final FieldKind element;

        ListOf(FieldKind element) {
            this.element = element;
        }

        FieldKind element() {
            return element;
        }

        @Override
        Class<?> type() {
            return List.class;
        }

        /**
         * {@code a == b || (a != null && b != null && a.size() == b.size() && every element equal)},
         * built from a {@link MethodHandles#countedLoop} so that the element comparison is a
         * constant in the composed tree (inlinable), not a method handle invoked per element.
         */
        @Override
        MethodHandle equality() {
            MethodHandle elementEquality = element.equality()
                    .asType(methodType(boolean.class, Object.class, Object.class));
            MethodHandle get = findVirtual(List.class, "get", methodType(Object.class, int.class));
            // (List a, int i, List b, int j) -> eq(a.get(i), b.get(j))
            MethodHandle compareAt = MethodHandles.collectArguments(
                    MethodHandles.collectArguments(elementEquality, 0, get), 2, get);
            // loop body (boolean acc, int i, List a, List b) -> acc && eq(a.get(i), b.get(i))
            MethodType bodyType = methodType(boolean.class, boolean.class, int.class, List.class, List.class);
            MethodHandle compare = MethodHandles.permuteArguments(compareAt, bodyType, 2, 1, 3, 1);
            MethodHandle accumulated = MethodHandles.dropArguments(MethodHandles.identity(boolean.class), 1,
                    int.class, List.class, List.class);
            MethodHandle body = MethodHandles.guardWithTest(accumulated, compare,
                    MethodHandles.dropArguments(MethodHandles.constant(boolean.class, false), 0,
                            bodyType.parameterList()));
            MethodHandle iterations = MethodHandles.dropArguments(
                    findVirtual(List.class, "size", methodType(int.class)), 1, List.class);
            MethodHandle init = MethodHandles.dropArguments(MethodHandles.constant(boolean.class, true), 0,
                    List.class, List.class);
            MethodHandle everyElement = MethodHandles.countedLoop(iterations, init, body);

            MethodType pair = methodType(boolean.class, List.class, List.class);
            MethodHandle sameOrNull = findStatic(Compare.class, "sameOrNull",
                    methodType(boolean.class, Object.class, Object.class)).asType(pair);
            MethodHandle same = findStatic(Compare.class, "same",
                    methodType(boolean.class, Object.class, Object.class)).asType(pair);
            MethodHandle sameSize = findStatic(Compare.class, "sameSize", pair);
            MethodHandle no = MethodHandles.dropArguments(MethodHandles.constant(boolean.class, false), 0,
                    List.class, List.class);
            return MethodHandles.guardWithTest(sameOrNull, same,
                    MethodHandles.guardWithTest(sameSize, everyElement, no));
        }

        @Override
        MethodHandle writer() {
            MethodHandle elementWriter = element.writer()
                    .asType(methodType(void.class, StateEncoder.class, Object.class));
            return MethodHandles.insertArguments(findStatic(Compare.class, "writeList",
                    methodType(void.class, MethodHandle.class, String.class, StateEncoder.class, List.class)),
                    0, elementWriter, "List<" + element.type().getSimpleName() + ">");
        }

        @Override
        Object read(StateDecoder in) throws StateDecodeException {
            int count = in.readCount(Math.max(1, element.minEncodedSize()), MAX_ELEMENTS);
            Object[] values = new Object[count];
            for (int i = 0; i < count; i++) {
                in.enter("[" + i + "]");
                values[i] = element.read(in);
                in.exit();
            }
            return List.of(values);
        }

        @Override
        Object snapshot(Object value) {
            if (value == null) {
                return null;
            }
            List<?> list = (List<?>) value;
            List<Object> copy = new ArrayList<>(list.size());
            for (Object e : list) {
                copy.add(element.snapshot(e));
            }
            // A snapshot must not change when the live list is changed later; copy even
            // when the elements are immutable.
            return Collections.unmodifiableList(copy);
        }

        @Override
        boolean hasMutableParts() {
            return true;
        }

        @Override
        int minEncodedSize() {
            return 4;
        }

        @Override
        String describe() {
            return "List<" + element.describe() + ">";
        }
    }
}

package io.vhostffm.migration.schema;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Appends big-endian primitives, length-prefixed arrays and strings to a growable byte array.
 * The method handles a {@link StateSchema} composes call these methods; nothing else does.
 */
final class StateEncoder {
    private static final VarHandle SHORT = MethodHandles.byteArrayViewVarHandle(short[].class, ByteOrder.BIG_ENDIAN);
    private static final VarHandle INT = MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.BIG_ENDIAN);
    private static final VarHandle LONG = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.BIG_ENDIAN);

    private byte[] bytes;
    private int size;

    StateEncoder(int initialCapacity) {
        bytes = new byte[Math.max(16, initialCapacity)];
    }

    byte[] toByteArray() {
        return Arrays.copyOf(bytes, size);
    }

    private void ensure(int more) {
        if (bytes.length - size < more) {
            long wanted = Math.max((long) bytes.length * 2, (long) size + more);
            if (wanted > Integer.MAX_VALUE - 16) {
                throw new IllegalArgumentException("encoded state exceeds 2 GiB");
            }
            bytes = Arrays.copyOf(bytes, (int) wanted);
        }
    }

    void writeBoolean(boolean v) {
        writeByte(v ? (byte) 1 : (byte) 0);
    }

    void writeByte(byte v) {
        ensure(1);
        bytes[size++] = v;
    }

    void writeShort(short v) {
        ensure(2);
        SHORT.set(bytes, size, v);
        size += 2;
    }

    void writeChar(char v) {
        writeShort((short) v);
    }

    void writeInt(int v) {
        ensure(4);
        INT.set(bytes, size, v);
        size += 4;
    }

    void writeLong(long v) {
        ensure(8);
        LONG.set(bytes, size, v);
        size += 8;
    }

    void writeFloat(float v) {
        writeInt(Float.floatToRawIntBits(v));
    }

    void writeDouble(double v) {
        writeLong(Double.doubleToRawLongBits(v));
    }

    void writeBooleanArray(boolean[] v) {
        writeInt(v.length);
        for (boolean b : v) {
            writeBoolean(b);
        }
    }

    void writeByteArray(byte[] v) {
        writeInt(v.length);
        ensure(v.length);
        System.arraycopy(v, 0, bytes, size, v.length);
        size += v.length;
    }

    void writeShortArray(short[] v) {
        writeInt(v.length);
        for (short s : v) {
            writeShort(s);
        }
    }

    void writeCharArray(char[] v) {
        writeInt(v.length);
        for (char c : v) {
            writeChar(c);
        }
    }

    void writeIntArray(int[] v) {
        writeInt(v.length);
        for (int i : v) {
            writeInt(i);
        }
    }

    void writeLongArray(long[] v) {
        writeInt(v.length);
        for (long l : v) {
            writeLong(l);
        }
    }

    void writeString(String v) {
        writeByteArray(v.getBytes(StandardCharsets.UTF_8));
    }
}

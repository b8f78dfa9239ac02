package io.vhostffm.migration.schema;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Reads what {@link StateEncoder} wrote, checking every length against the bytes that are left
 * before allocating, and keeping the path of the field being read so that a failure names it.
 * Untrusted input: every method either returns a valid value or throws
 * {@link StateDecodeException}.
 */
final class StateDecoder {
    private static final VarHandle SHORT = MethodHandles.byteArrayViewVarHandle(short[].class, ByteOrder.BIG_ENDIAN);
    private static final VarHandle INT = MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.BIG_ENDIAN);
    private static final VarHandle LONG = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.BIG_ENDIAN);

    private final byte[] bytes;
    private final int start;
    private final int end;
    private int position;
    private final List<String> path = new ArrayList<>();

    StateDecoder(byte[] bytes, int offset, int length) {
        this.bytes = bytes;
        this.start = offset;
        this.end = offset + length;
        this.position = offset;
    }

    void enter(String field) {
        path.add(field);
    }

    void exit() {
        path.removeLast();
    }

    String path() {
        StringBuilder sb = new StringBuilder();
        for (String p : path) {
            if (!sb.isEmpty() && !p.startsWith("[")) {
                sb.append('.');
            }
            sb.append(p);
        }
        return sb.toString();
    }

    /** Offset inside the payload, counted from the payload's first byte. */
    int offset() {
        return position - start;
    }

    int remaining() {
        return end - position;
    }

    StateDecodeException failure(String reason) {
        return new StateDecodeException(path(), offset(), reason);
    }

    private void need(int n, String what) throws StateDecodeException {
        if (end - position < n) {
            throw failure("truncated: " + what + " needs " + n + " bytes, " + (end - position) + " left");
        }
    }

    boolean readBoolean() throws StateDecodeException {
        need(1, "boolean");
        byte b = bytes[position];
        if (b != 0 && b != 1) {
            throw failure("boolean byte is " + (b & 0xFF) + ", not 0 or 1");
        }
        position++;
        return b == 1;
    }

    byte readByte() throws StateDecodeException {
        need(1, "byte");
        return bytes[position++];
    }

    short readShort() throws StateDecodeException {
        need(2, "short");
        short v = (short) SHORT.get(bytes, position);
        position += 2;
        return v;
    }

    char readChar() throws StateDecodeException {
        return (char) readShort();
    }

    int readInt() throws StateDecodeException {
        need(4, "int");
        int v = (int) INT.get(bytes, position);
        position += 4;
        return v;
    }

    long readLong() throws StateDecodeException {
        need(8, "long");
        long v = (long) LONG.get(bytes, position);
        position += 8;
        return v;
    }

    float readFloat() throws StateDecodeException {
        return Float.intBitsToFloat(readInt());
    }

    double readDouble() throws StateDecodeException {
        return Double.longBitsToDouble(readLong());
    }

    /**
     * Reads a count of elements that each take at least {@code minElementSize} bytes, and
     * rejects a count the remaining bytes cannot hold (or above {@code maxCount}), so that a
     * forged count never makes us allocate.
     */
    int readCount(int minElementSize, int maxCount) throws StateDecodeException {
        int at = position;
        int count = readInt();
        long needed = (long) count * minElementSize;
        if (count < 0 || count > maxCount || needed > remaining()) {
            position = at;
            throw failure("length " + Integer.toUnsignedString(count) + " does not fit: "
                    + remaining() + " bytes left after it, limit " + maxCount + " elements");
        }
        return count;
    }

    boolean[] readBooleanArray() throws StateDecodeException {
        boolean[] v = new boolean[readCount(1, Integer.MAX_VALUE)];
        for (int i = 0; i < v.length; i++) {
            v[i] = readBoolean();
        }
        return v;
    }

    byte[] readByteArray() throws StateDecodeException {
        int n = readCount(1, Integer.MAX_VALUE);
        byte[] v = new byte[n];
        System.arraycopy(bytes, position, v, 0, n);
        position += n;
        return v;
    }

    short[] readShortArray() throws StateDecodeException {
        short[] v = new short[readCount(2, Integer.MAX_VALUE)];
        for (int i = 0; i < v.length; i++) {
            v[i] = readShort();
        }
        return v;
    }

    char[] readCharArray() throws StateDecodeException {
        char[] v = new char[readCount(2, Integer.MAX_VALUE)];
        for (int i = 0; i < v.length; i++) {
            v[i] = readChar();
        }
        return v;
    }

    int[] readIntArray() throws StateDecodeException {
        int[] v = new int[readCount(4, Integer.MAX_VALUE)];
        for (int i = 0; i < v.length; i++) {
            v[i] = readInt();
        }
        return v;
    }

    long[] readLongArray() throws StateDecodeException {
        long[] v = new long[readCount(8, Integer.MAX_VALUE)];
        for (int i = 0; i < v.length; i++) {
            v[i] = readLong();
        }
        return v;
    }

    String readString() throws StateDecodeException {
        int at = position;
        int n = readCount(1, Integer.MAX_VALUE);
        try {
            String s = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(bytes, position, n))
                    .toString();
            position += n;
            return s;
        } catch (CharacterCodingException e) {
            position = at;
            throw failure("string of " + n + " bytes is not valid UTF-8");
        }
    }
}

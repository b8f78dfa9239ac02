package io.vhostffm.jmh.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class JsonTest {

    @Test
    void parsesNestedValuesInOrder() {
        Object value = Json.parse(" {\"b\": [1, -2.5, 3e2, 0.5E-1], \"a\": {\"t\": true, \"f\": false, \"n\": null}, \"s\": \"x\"} ");
        Map<?, ?> object = (Map<?, ?>) value;
        assertEquals(List.of("b", "a", "s"), List.copyOf(object.keySet()), "insertion order kept");
        assertEquals(List.of(1.0, -2.5, 300.0, 0.05), object.get("b"));
        Map<?, ?> inner = (Map<?, ?>) object.get("a");
        assertEquals(Boolean.TRUE, inner.get("t"));
        assertEquals(Boolean.FALSE, inner.get("f"));
        assertTrue(inner.containsKey("n"));
        assertNull(inner.get("n"));
        assertEquals("x", object.get("s"));
    }

    @Test
    void decodesEscapes() {
        assertEquals("a\"b\\c/d\b\f\n\r\t\u00e9\u20ac", Json.parse("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\u20AC\""));
    }

    @Test
    void emptyContainers() {
        assertEquals(List.of(), Json.parse("[ ]"));
        assertEquals(Map.of(), Json.parse("{ }"));
    }

    @Test
    void malformedTextNamesTheOffset() {
        assertOffset("[1, 2", 5, "expected ',' or ']'");
        assertOffset("{\"a\" 1}", 5, "expected ':'");
        assertOffset("\"abc", 4, "unterminated string");
        assertOffset("[1] x", 4, "text after the end");
        assertOffset("01", 1, "text after the end");
        assertOffset("[-]", 2, "expected a digit");
        assertOffset("[1.]", 3, "expected a digit after '.'");
        assertOffset("[tru]", 1, "expected true");
        assertOffset("{\"a\":1,\"a\":2}", 7, "duplicate key \"a\"");
        assertOffset("\"\\x\"", 2, "unknown escape");
        assertOffset("\"\\u12G4\"", 5, "bad hex digit");
        assertOffset("\"a\nb\"", 2, "control character");
        assertOffset("", 0, "unexpected end");
        assertOffset("{1:2}", 1, "expected a string as object key");
    }

    private static void assertOffset(String text, int offset, String message) {
        Json.JsonException e = assertThrows(Json.JsonException.class, () -> Json.parse(text), text);
        assertEquals(offset, e.offset(), () -> "offset for " + text + ": " + e.getMessage());
        assertTrue(e.getMessage().contains(message), () -> "message for " + text + ": " + e.getMessage());
        assertTrue(e.getMessage().endsWith("at offset " + offset), e.getMessage());
    }
}

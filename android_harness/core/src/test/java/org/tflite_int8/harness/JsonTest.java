package org.tflite_int8.harness;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class JsonTest {
    @Test
    void roundTripsTheTypesTheFormatsUse() {
        String text = "{\"a\": [1, -2.5, 1e-3, true, null, \"x\\\"y\\u00e9\"], \"b\": {}}";
        Map<String, Object> m = Json.obj(Json.parse(text));
        List<Object> a = Json.arr(m.get("a"));
        assertEquals(1L, a.get(0));
        assertEquals(-2.5, a.get(1));
        assertEquals(0.001, a.get(2));
        assertEquals(Boolean.TRUE, a.get(3));
        assertEquals(null, a.get(4));
        assertEquals("x\"y\u00e9", a.get(5));
        assertEquals(m, Json.obj(Json.parse(Json.write(m))));
    }

    @Test
    void float32ValuesWrittenByPythonReadBackExactly() {
        // repr(float(np.float32(2/255))) as Python writes it in manifests and golden files
        float f = ((Number) Json.parse("0.007843137718737125")).floatValue();
        assertEquals(Float.floatToIntBits(2f / 255f), Float.floatToIntBits(f));
    }

    @Test
    void malformedJsonIsRefused() {
        assertThrows(IllegalArgumentException.class, () -> Json.parse("{\"a\": 1} x"));
    }
}

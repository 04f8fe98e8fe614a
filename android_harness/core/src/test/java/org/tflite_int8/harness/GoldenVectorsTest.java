package org.tflite_int8.harness;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The Java quantizer against tests/golden/adapter_vectors.json, written by the Python adapter: bit-identical. */
class GoldenVectorsTest {
    static List<Object> cases() throws Exception {
        String path = System.getProperty("tflite_int8.golden", "../../tests/golden/adapter_vectors.json");
        String text = new String(Bundle.readAll(new File(path)), StandardCharsets.UTF_8);
        List<Object> cases = Json.arr(Json.obj(Json.parse(text)).get("cases"));
        assertTrue(cases.size() >= 8, "golden file has too few cases: " + path);
        return cases;
    }

    @Test
    void quantizeAndDequantizeMatchThePythonAdapterBitForBit() throws Exception {
        int values = 0;
        for (Object o : cases()) {
            Map<String, Object> c = Json.obj(o);
            String name = (String) c.get("name");
            float scale = ((Number) c.get("scale")).floatValue();
            int zp = ((Number) c.get("zero_point")).intValue();
            int[] r = Quant.range((String) c.get("dtype"));
            List<Object> in = Json.arr(c.get("input"));
            List<Object> xnn = Json.arr(c.get("expected_xnnpack"));
            List<Object> ref = Json.arr(c.get("expected_reference"));
            List<Object> deq = Json.arr(c.get("dequantized_xnnpack"));
            for (int k = 0; k < in.size(); k++) {
                float x = ((Number) in.get(k)).floatValue();
                int q = Quant.quantizeXnnpack(x, scale, zp, r[0], r[1]);
                assertEquals(((Number) xnn.get(k)).intValue(), q, name + " xnnpack, x=" + x);
                assertEquals(((Number) ref.get(k)).intValue(), Quant.quantizeReference(x, scale, zp, r[0], r[1]),
                        name + " reference, x=" + x);
                float want = ((Number) deq.get(k)).floatValue();
                assertEquals(Float.floatToIntBits(want), Float.floatToIntBits(Quant.dequantize(q, scale, zp)),
                        name + " dequantize, q=" + q);
                values++;
            }
        }
        assertTrue(values > 300, "only " + values + " golden values checked");
    }

    @Test
    void javasMathRoundWouldGetTheGoldenTiesWrong() throws Exception {
        // Math.round rounds halves up; the runtime rounds them to even. The golden file must catch that.
        int wrong = 0;
        for (Object o : cases()) {
            Map<String, Object> c = Json.obj(o);
            float scale = ((Number) c.get("scale")).floatValue();
            int zp = ((Number) c.get("zero_point")).intValue();
            int[] r = Quant.range((String) c.get("dtype"));
            List<Object> in = Json.arr(c.get("input"));
            List<Object> xnn = Json.arr(c.get("expected_xnnpack"));
            for (int k = 0; k < in.size(); k++) {
                float x = ((Number) in.get(k)).floatValue();
                long naive = Math.max(r[0], Math.min(r[1], Math.round(x * (1.0f / scale)) + (long) zp));
                if (naive != ((Number) xnn.get(k)).longValue()) {
                    wrong++;
                }
            }
        }
        assertTrue(wrong > 0, "no golden value tells Math.round from round-half-to-even");
    }
}

package org.tflite_int8.harness;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.File;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The core on a real bundle made by the Python side (tests/test_android.py passes its path as the system
 * property tflite_int8.bundle, and the results of a run of that bundle as tflite_int8.results).
 */
class BundleTest {
    static File bundleDir() {
        String p = System.getProperty("tflite_int8.bundle");
        assumeTrue(p != null, "no bundle given (-Dtflite_int8.bundle=DIR; tests/test_android.py gives one)");
        return new File(p);
    }

    static void writeOut(String name, Map<String, Object> doc) throws IOException {
        String out = System.getProperty("tflite_int8.out");
        if (out != null) {
            Harness.write(doc, new File(out, name));
        }
    }

    /** Replays the bundle's expected outputs, optionally changing one value by {@code delta} steps. */
    static final class Replay implements ModelRunner {
        private final Bundle b;
        private final int delta;
        private int call;

        Replay(Bundle b, int delta) {
            this.b = b;
            this.delta = delta;
        }

        @Override
        public byte[][] run(byte[][] inputs) throws Exception {
            int n = b.samples().size();
            for (int i = 0; i < n; i++) {
                if (java.util.Arrays.equals(b.inputs(i)[0], inputs[0])) {
                    byte[][] out = b.expected(i);
                    if (delta != 0) {
                        Tensor t = b.outputs.get(0);
                        int[] q = t.readInts(out[0]);
                        int[] r = Quant.range(t.dtype);
                        q[0] = q[0] + delta <= r[1] ? q[0] + delta : q[0] - delta;
                        out[0] = t.toBytes(q);
                    }
                    call++;
                    return out;
                }
            }
            throw new IllegalStateException("input not in the bundle");
        }

        @Override
        public boolean xnnpack() {
            return true;
        }

        @Override
        public int threads() {
            return 1;
        }
    }

    static Map<String, Object> device(String runner) {
        Map<String, Object> d = new LinkedHashMap<>();
        d.put("runner", runner);
        d.put("arch", System.getProperty("os.arch"));
        d.put("runtime", "replay of expected outputs (JVM " + System.getProperty("java.version") + ")");
        return d;
    }

    @Test
    void loadsTheBundleAndChecksEveryHash() throws Exception {
        Bundle b = Bundle.load(bundleDir(), true);
        assertTrue(b.samples().size() > 0);
        assertEquals(1, b.inputs.size());
        assertTrue(b.modelFile().length() > 0);
    }

    @Test
    void aChangedFileIsRefused(@TempDir Path tmp) throws Exception {
        File src = bundleDir();
        Path copy = tmp.resolve("bundle");
        try (Stream<Path> walk = Files.walk(src.toPath())) {
            for (Path p : (Iterable<Path>) walk::iterator) {
                Path dst = copy.resolve(src.toPath().relativize(p).toString());
                if (Files.isDirectory(p)) {
                    Files.createDirectories(dst);
                } else {
                    Files.copy(p, dst, StandardCopyOption.REPLACE_EXISTING);
                }
            }
        }
        try (RandomAccessFile f = new RandomAccessFile(copy.resolve("expected/000_0.raw").toFile(), "rw")) {
            int v = f.read();
            f.seek(0);
            f.write(v ^ 1);
        }
        IOException e = assertThrows(IOException.class, () -> Bundle.load(copy.toFile(), true));
        assertTrue(e.getMessage().contains("expected/000_0.raw"), e.getMessage());
    }

    @Test
    void javaQuantizesTheFloatInputsExactlyAsThePythonAdapter() throws Exception {
        Map<String, Object> check = Harness.checkInputQuantization(Bundle.load(bundleDir(), true));
        assertTrue(((Number) check.get("checked")).longValue() > 1000, check.toString());
        assertEquals(0L, check.get("mismatches"), check.toString());
    }

    @Test
    void replayingTheExpectedOutputsPasses() throws Exception {
        Bundle b = Bundle.load(bundleDir(), true);
        Map<String, Object> doc = Harness.run(b, Collections.<ModelRunner>singletonList(new Replay(b, 0)),
                device("java-core replay"));
        assertEquals(Boolean.TRUE, doc.get("passed"), doc.get("failures").toString());
        Map<String, Object> out0 = Json.obj(Json.arr(doc.get("outputs")).get(0));
        assertEquals(0L, ((Number) out0.get("max_step_diff")).longValue());
        assertEquals(1.0, (Double) out0.get("min_cosine"), 1e-12);
        writeOut("java_replay_results.json", doc);
    }

    @Test
    void anOutputTwoStepsOffFails() throws Exception {
        Bundle b = Bundle.load(bundleDir(), true);
        Map<String, Object> doc = Harness.run(b, Collections.<ModelRunner>singletonList(new Replay(b, 2)),
                device("java-core replay +2"));
        assertFalse((Boolean) doc.get("passed"));
        assertTrue(doc.get("failures").toString().contains("max difference 2 steps > 1"), doc.get("failures").toString());
        writeOut("java_perturbed_results.json", doc);
    }

    @Test
    void recomputesAPythonDevicesResultsToTheSameNumbers() throws Exception {
        String p = System.getProperty("tflite_int8.results");
        assumeTrue(p != null, "no device results given (-Dtflite_int8.results=FILE)");
        Bundle b = Bundle.load(bundleDir(), true);
        Map<String, Object> theirs = Json.obj(Json.parse(new String(Bundle.readAll(new File(p)),
                StandardCharsets.UTF_8)));
        List<byte[][]> outputs = new ArrayList<>();
        for (Object so : Json.arr(theirs.get("samples"))) {
            List<Object> outs = Json.arr(Json.obj(so).get("outputs"));
            byte[][] raw = new byte[outs.size()][];
            for (int j = 0; j < raw.length; j++) {
                raw[j] = Base64.getDecoder().decode((String) Json.obj(outs.get(j)).get("data_b64"));
            }
            outputs.add(raw);
        }
        Map<String, Object> mine = Compare.results(b, outputs, Json.obj(theirs.get("device")),
                Json.arr(theirs.get("timing")), Json.obj(theirs.get("input_quantization")));
        assertEquals(theirs.get("passed"), mine.get("passed"));
        List<Object> a = Json.arr(theirs.get("outputs"));
        List<Object> c = Json.arr(mine.get("outputs"));
        assertEquals(a.size(), c.size());
        for (int j = 0; j < a.size(); j++) {
            Map<String, Object> x = Json.obj(a.get(j));
            Map<String, Object> y = Json.obj(c.get(j));
            assertEquals(((Number) x.get("max_step_diff")).doubleValue(), ((Number) y.get("max_step_diff")).doubleValue());
            assertEquals(x.get("differing_values"), y.get("differing_values"));
            assertEquals(((Number) x.get("min_cosine")).doubleValue(), (Double) y.get("min_cosine"), 1e-9);
        }
        writeOut("java_recomputed_results.json", mine);
    }
}

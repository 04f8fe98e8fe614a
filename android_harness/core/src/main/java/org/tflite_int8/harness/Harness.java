package org.tflite_int8.harness;

import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Runs a bundle through a {@link ModelRunner}: checks this side's quantization of the float inputs against
 * the bundle's, runs every sample, times warm-up + N runs, and builds the results document.
 */
public final class Harness {
    private Harness() {
    }

    /** Counts input values this (Java) quantizer maps differently from the Python adapter's raw inputs. */
    public static Map<String, Object> checkInputQuantization(Bundle b) throws IOException {
        long checked = 0, mismatches = 0;
        for (int i = 0; i < b.samples().size(); i++) {
            byte[][] raw = b.inputs(i);
            byte[][] floats = b.floatInputs(i);
            for (int j = 0; j < raw.length; j++) {
                if (floats[j] == null || !b.inputs.get(j).quantized()) {
                    continue;
                }
                Tensor t = b.inputs.get(j);
                int[] mine = t.quantize(t.readFloats(floats[j]));
                int[] theirs = t.readInts(raw[j]);
                for (int k = 0; k < mine.length; k++) {
                    checked++;
                    if (mine[k] != theirs[k]) {
                        mismatches++;
                    }
                }
            }
        }
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("checked", checked);
        r.put("mismatches", mismatches);
        return r;
    }

    /** Times warm-up then {@code runs} invokes, cycling through the samples; milliseconds. */
    public static Map<String, Object> time(Bundle b, ModelRunner runner, int warmup, int runs) throws Exception {
        byte[][] first = b.inputs(0);
        for (int k = 0; k < warmup; k++) {
            runner.run(first);
        }
        double[] ms = new double[runs];
        int n = b.samples().size();
        for (int k = 0; k < runs; k++) {
            byte[][] in = b.inputs(k % n);
            long t0 = System.nanoTime();
            runner.run(in);
            ms[k] = (System.nanoTime() - t0) / 1e6;
        }
        double[] sorted = ms.clone();
        Arrays.sort(sorted);
        double median = runs == 0 ? 0 : (runs % 2 == 1 ? sorted[runs / 2]
                : (sorted[runs / 2 - 1] + sorted[runs / 2]) / 2);
        Map<String, Object> t = new LinkedHashMap<>();
        t.put("xnnpack", runner.xnnpack());
        t.put("threads", (long) runner.threads());
        t.put("warmup", (long) warmup);
        t.put("runs", (long) runs);
        t.put("median_ms", median);
        t.put("min_ms", runs == 0 ? 0 : sorted[0]);
        t.put("max_ms", runs == 0 ? 0 : sorted[runs - 1]);
        return t;
    }

    /**
     * The whole harness: compared outputs come from {@code runner} (the first one, normally XNNPACK on);
     * every runner is timed.
     */
    public static Map<String, Object> run(Bundle b, List<ModelRunner> runners, Map<String, Object> device)
            throws Exception {
        Map<String, Object> inputCheck = checkInputQuantization(b);
        List<byte[][]> outputs = new ArrayList<>();
        for (int i = 0; i < b.samples().size(); i++) {
            outputs.add(runners.get(0).run(b.inputs(i)));
        }
        List<Object> timing = new ArrayList<>();
        for (ModelRunner r : runners) {
            timing.add(time(b, r, b.timing("warmup", 3), b.timing("runs", 20)));
        }
        return Compare.results(b, outputs, device, timing, inputCheck);
    }

    /** Writes the results JSON atomically (a partial file never takes the final name). */
    public static void write(Map<String, Object> results, File file) throws IOException {
        File tmp = new File(file.getPath() + ".partial");
        try (OutputStream out = new FileOutputStream(tmp)) {
            out.write(Json.write(results).getBytes(StandardCharsets.UTF_8));
        }
        if (!tmp.renameTo(file)) {
            throw new IOException("cannot move " + tmp + " to " + file);
        }
    }
}

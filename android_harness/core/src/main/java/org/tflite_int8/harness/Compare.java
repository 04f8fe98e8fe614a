package org.tflite_int8.harness;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/** Device outputs vs the bundle's expected outputs; the results document (tflite_int8/bundle_format.py). */
public final class Compare {
    public static final String RESULTS_FORMAT = "tflite-int8 android results v1";

    private Compare() {
    }

    /** max_step_diff (integer steps; float difference for float32 outputs), differing_values, cosine. */
    public static Map<String, Object> output(Tensor t, byte[] expected, byte[] actual) {
        Map<String, Object> r = new LinkedHashMap<>();
        long differing = 0;
        if (t.quantized()) {
            int[] e = t.readInts(expected);
            int[] a = t.readInts(actual);
            long steps = 0;
            for (int k = 0; k < e.length; k++) {
                long d = Math.abs((long) e[k] - (long) a[k]);
                steps = Math.max(steps, d);
                if (d != 0) {
                    differing++;
                }
            }
            r.put("max_step_diff", steps);
        } else {
            float[] e = t.readFloats(expected);
            float[] a = t.readFloats(actual);
            double worst = 0;
            for (int k = 0; k < e.length; k++) {
                double d = Math.abs((double) e[k] - (double) a[k]);
                worst = Math.max(worst, d);
                if (e[k] != a[k]) {
                    differing++;
                }
            }
            r.put("max_step_diff", worst);
        }
        float[] x = t.dequantize(expected);
        float[] y = t.dequantize(actual);
        double dot = 0, nx = 0, ny = 0;
        for (int k = 0; k < x.length; k++) {
            dot += (double) x[k] * y[k];
            nx += (double) x[k] * x[k];
            ny += (double) y[k] * y[k];
        }
        double cos = (nx == 0 && ny == 0) ? 1.0 : (nx == 0 || ny == 0) ? 0.0 : dot / (Math.sqrt(nx) * Math.sqrt(ny));
        r.put("differing_values", differing);
        r.put("cosine", cos);
        if (isScores(t)) {
            r.put("same_top1", argmax(x) == argmax(y));
        }
        return r;
    }

    /** A vector of class scores ([1, C] or [C], C > 1): top-1 agreement is reported for it. */
    public static boolean isScores(Tensor t) {
        int n = t.shape.length;
        if (n == 0 || t.shape[n - 1] <= 1) {
            return false;
        }
        for (int k = 0; k < n - 1; k++) {
            if (t.shape[k] != 1) {
                return false;
            }
        }
        return true;
    }

    private static int argmax(float[] v) {
        int best = 0;
        for (int k = 1; k < v.length; k++) {
            if (v[k] > v[best]) {
                best = k;
            }
        }
        return best;
    }

    /**
     * The results document: outputs.get(i)[j] are the raw bytes of output j for sample i.
     * Same keys and rules as bundle_format.results() on the host.
     */
    public static Map<String, Object> results(Bundle b, List<byte[][]> outputs, Map<String, Object> device,
                                              List<Object> timing, Map<String, Object> inputCheck)
            throws IOException {
        Map<String, Object> limits = new LinkedHashMap<>();
        limits.put("max_step_diff", 1L);
        limits.put("min_cosine", 0.999);
        limits.putAll(b.thresholds());
        if (outputs.size() != b.samples().size()) {
            throw new IllegalArgumentException(outputs.size() + " samples of device outputs, the bundle has "
                    + b.samples().size());
        }
        List<Object> samples = new ArrayList<>();
        List<List<Map<String, Object>>> perOutput = new ArrayList<>();
        for (int j = 0; j < b.outputs.size(); j++) {
            perOutput.add(new ArrayList<Map<String, Object>>());
        }
        for (int i = 0; i < outputs.size(); i++) {
            byte[][] expected = b.expected(i);
            List<Object> rows = new ArrayList<>();
            for (int j = 0; j < b.outputs.size(); j++) {
                Tensor t = b.outputs.get(j);
                Map<String, Object> row = new LinkedHashMap<>();
                row.put("name", t.name);
                row.putAll(output(t, expected[j], outputs.get(i)[j]));
                row.put("data_b64", Base64.getEncoder().encodeToString(outputs.get(i)[j]));
                perOutput.get(j).add(row);
                rows.add(row);
            }
            Map<String, Object> s = new LinkedHashMap<>();
            s.put("name", b.sampleName(i));
            s.put("outputs", rows);
            samples.add(s);
        }
        List<Object> summary = new ArrayList<>();
        List<Object> failures = new ArrayList<>();
        double maxSteps = ((Number) limits.get("max_step_diff")).doubleValue();
        double minCos = ((Number) limits.get("min_cosine")).doubleValue();
        for (int j = 0; j < b.outputs.size(); j++) {
            Tensor t = b.outputs.get(j);
            List<Map<String, Object>> rows = perOutput.get(j);
            Number worst = 0L;
            long differing = 0;
            double minC = Double.POSITIVE_INFINITY, sumC = 0;
            for (Map<String, Object> r : rows) {
                Number st = (Number) r.get("max_step_diff");
                if (st.doubleValue() > worst.doubleValue() || r == rows.get(0)) {
                    worst = st;
                }
                differing += ((Number) r.get("differing_values")).longValue();
                double c = (Double) r.get("cosine");
                minC = Math.min(minC, c);
                sumC += c;
            }
            Map<String, Object> s = new LinkedHashMap<>();
            s.put("name", t.name);
            s.put("max_step_diff", worst);
            s.put("differing_values", differing);
            s.put("values", (long) rows.size() * t.size());
            s.put("min_cosine", minC);
            s.put("mean_cosine", sumC / rows.size());
            if (isScores(t)) {
                long same = 0;
                for (Map<String, Object> r : rows) {
                    same += Boolean.TRUE.equals(r.get("same_top1")) ? 1 : 0;
                }
                s.put("top1_agreement", (double) same / rows.size());
            }
            if (worst.doubleValue() > maxSteps) {
                failures.add("output '" + t.name + "': max difference " + worst + " steps > " + limits.get("max_step_diff"));
            }
            if (minC < minCos) {
                failures.add(String.format(Locale.ROOT, "output '%s': min cosine %.6f < %s", t.name, minC,
                        limits.get("min_cosine")));
            }
            summary.add(s);
        }
        if (inputCheck != null && ((Number) inputCheck.get("mismatches")).longValue() > 0) {
            failures.add("the device quantized " + inputCheck.get("mismatches") + " of " + inputCheck.get("checked")
                    + " input values differently from the host adapter");
        }
        Map<String, Object> bundleInfo = new LinkedHashMap<>();
        bundleInfo.put("model_sha256", b.modelSha256());
        bundleInfo.put("samples", (long) b.samples().size());
        Map<String, Object> doc = new LinkedHashMap<>();
        doc.put("format", RESULTS_FORMAT);
        doc.put("passed", !summary.isEmpty() && failures.isEmpty());
        doc.put("failures", failures);
        doc.put("bundle", bundleInfo);
        doc.put("device", device);
        doc.put("thresholds", limits);
        doc.put("input_quantization", inputCheck == null ? new LinkedHashMap<String, Object>() : inputCheck);
        doc.put("outputs", summary);
        doc.put("timing", timing);
        doc.put("samples", samples);
        return doc;
    }
}

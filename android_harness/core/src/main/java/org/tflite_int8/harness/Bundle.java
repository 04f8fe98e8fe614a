package org.tflite_int8.harness;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** A bundle written by {@code tflite-int8 android bundle}: manifest, model, inputs, expected outputs. */
public final class Bundle {
    public static final String FORMAT = "tflite-int8 android bundle v1";

    public final File dir;
    public final Map<String, Object> manifest;
    public final List<Tensor> inputs = new ArrayList<>();
    public final List<Tensor> outputs = new ArrayList<>();

    private Bundle(File dir, Map<String, Object> manifest) {
        this.dir = dir;
        this.manifest = manifest;
        for (Object o : Json.arr(manifest.get("inputs"))) {
            inputs.add(Tensor.fromJson(Json.obj(o)));
        }
        for (Object o : Json.arr(manifest.get("outputs"))) {
            outputs.add(Tensor.fromJson(Json.obj(o)));
        }
    }

    /** Reads and validates a bundle; with {@code checkHashes} every file's sha256 is checked. */
    public static Bundle load(File dir, boolean checkHashes) throws IOException {
        File mf = new File(dir, "manifest.json");
        if (!mf.isFile()) {
            throw new IOException(dir + " is not a bundle: no manifest.json");
        }
        Map<String, Object> m = Json.obj(Json.parse(new String(readAll(mf), StandardCharsets.UTF_8)));
        if (!FORMAT.equals(m.get("format"))) {
            throw new IOException(mf + ": format " + m.get("format") + " is not " + FORMAT);
        }
        Bundle b = new Bundle(dir, m);
        List<String[]> files = new ArrayList<>();
        Map<String, Object> model = Json.obj(m.get("model"));
        files.add(new String[] {(String) model.get("file"), (String) model.get("sha256")});
        for (Object so : b.samples()) {
            Map<String, Object> s = Json.obj(so);
            for (Object e : Json.arr(s.get("inputs"))) {
                Map<String, Object> em = Json.obj(e);
                files.add(new String[] {(String) em.get("file"), (String) em.get("sha256")});
                if (em.containsKey("float_file")) {
                    files.add(new String[] {(String) em.get("float_file"), (String) em.get("float_sha256")});
                }
            }
            for (Object e : Json.arr(s.get("expected"))) {
                Map<String, Object> em = Json.obj(e);
                files.add(new String[] {(String) em.get("file"), (String) em.get("sha256")});
            }
        }
        for (String[] f : files) {
            File file = new File(dir, f[0]);
            if (!file.isFile()) {
                throw new IOException("bundle " + dir + ": " + f[0] + " is missing");
            }
            if (checkHashes && !sha256(file).equals(f[1])) {
                throw new IOException("bundle " + dir + ": " + f[0] + " does not match its sha256 in manifest.json");
            }
        }
        return b;
    }

    public List<Object> samples() {
        return Json.arr(manifest.get("samples"));
    }

    public File modelFile() {
        return new File(dir, (String) Json.obj(manifest.get("model")).get("file"));
    }

    public String modelSha256() {
        return (String) Json.obj(manifest.get("model")).get("sha256");
    }

    public Map<String, Object> thresholds() {
        return Json.obj(manifest.get("thresholds"));
    }

    /** The manifest's timing settings ("warmup", "runs"), or the given default. */
    public int timing(String key, int fallback) {
        Object t = manifest.get("timing");
        Object v = t == null ? null : Json.obj(t).get(key);
        return v == null ? fallback : ((Number) v).intValue();
    }

    private byte[][] files(int sample, String list, String key) throws IOException {
        List<Object> entries = Json.arr(Json.obj(samples().get(sample)).get(list));
        byte[][] out = new byte[entries.size()][];
        for (int k = 0; k < out.length; k++) {
            Object rel = Json.obj(entries.get(k)).get(key);
            out[k] = rel == null ? null : readAll(new File(dir, (String) rel));
        }
        return out;
    }

    /** Sample k's inputs, already quantized (raw bytes in the model's dtype). */
    public byte[][] inputs(int sample) throws IOException {
        return files(sample, "inputs", "file");
    }

    /** Sample k's inputs as float32 before quantization (null entries where the bundle has none). */
    public byte[][] floatInputs(int sample) throws IOException {
        return files(sample, "inputs", "float_file");
    }

    /** The host interpreter's raw outputs for sample k. */
    public byte[][] expected(int sample) throws IOException {
        return files(sample, "expected", "file");
    }

    public String sampleName(int sample) {
        return (String) Json.obj(samples().get(sample)).get("name");
    }

    static byte[] readAll(File f) throws IOException {
        try (InputStream in = new FileInputStream(f)) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] buf = new byte[1 << 16];
            int n;
            while ((n = in.read(buf)) > 0) {
                out.write(buf, 0, n);
            }
            return out.toByteArray();
        }
    }

    static String sha256(File f) throws IOException {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            byte[] d = md.digest(readAll(f));
            StringBuilder b = new StringBuilder();
            for (byte x : d) {
                b.append(String.format("%02x", x & 0xff));
            }
            return b.toString();
        } catch (NoSuchAlgorithmException e) {
            throw new IOException(e);
        }
    }
}

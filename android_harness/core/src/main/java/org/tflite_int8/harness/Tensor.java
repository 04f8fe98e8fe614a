package org.tflite_int8.harness;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Map;

/** One model input or output as the bundle's manifest describes it: shape, dtype, scale(s), zero point(s). */
public final class Tensor {
    public final String name;
    public final String dtype;
    public final int[] shape;
    public final float[] scales;
    public final int[] zeroPoints;
    public final int quantizedDimension;

    public Tensor(String name, String dtype, int[] shape, float[] scales, int[] zeroPoints, int quantizedDimension) {
        this.name = name;
        this.dtype = dtype;
        this.shape = shape;
        this.scales = scales;
        this.zeroPoints = zeroPoints;
        this.quantizedDimension = quantizedDimension;
    }

    static Tensor fromJson(Map<String, Object> m) {
        List<Object> sh = Json.arr(m.get("shape"));
        List<Object> sc = Json.arr(m.get("scale"));
        List<Object> zp = Json.arr(m.get("zero_point"));
        int[] shape = new int[sh.size()];
        for (int k = 0; k < shape.length; k++) {
            shape[k] = ((Number) sh.get(k)).intValue();
        }
        float[] scales = new float[sc.size()];
        int[] zps = new int[zp.size()];
        for (int k = 0; k < scales.length; k++) {
            scales[k] = ((Number) sc.get(k)).floatValue(); // the JSON number is the exact float32 value
        }
        for (int k = 0; k < zps.length; k++) {
            zps[k] = ((Number) zp.get(k)).intValue();
        }
        Object qd = m.get("quantized_dimension");
        return new Tensor((String) m.get("name"), (String) m.get("dtype"), shape, scales, zps,
                qd == null ? 0 : ((Number) qd).intValue());
    }

    public int size() {
        int n = 1;
        for (int d : shape) {
            n *= d;
        }
        return n;
    }

    public int bytesPerElement() {
        switch (dtype) {
            case "int8": case "uint8": return 1;
            case "int16": return 2;
            case "int32": case "float32": return 4;
            default: throw new IllegalArgumentException("tensor '" + name + "': unsupported dtype " + dtype);
        }
    }

    public boolean quantized() {
        return !"float32".equals(dtype) && scales.length > 0;
    }

    /** Which scale/zero point applies to the value at a flat (row-major) index. */
    public int channelOf(int flat) {
        if (scales.length <= 1) {
            return 0;
        }
        int stride = 1;
        for (int k = shape.length - 1; k > quantizedDimension; k--) {
            stride *= shape[k];
        }
        return (flat / stride) % shape[quantizedDimension];
    }

    private void checkLength(byte[] raw) {
        if (raw.length != size() * bytesPerElement()) {
            throw new IllegalArgumentException("tensor '" + name + "': " + raw.length + " bytes, expected "
                    + size() * bytesPerElement());
        }
    }

    /** Raw little-endian integers of this tensor's dtype. */
    public int[] readInts(byte[] raw) {
        checkLength(raw);
        ByteBuffer b = ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN);
        int[] out = new int[size()];
        for (int k = 0; k < out.length; k++) {
            switch (dtype) {
                case "int8": out[k] = b.get(); break;
                case "uint8": out[k] = b.get() & 0xff; break;
                case "int16": out[k] = b.getShort(); break;
                case "int32": out[k] = b.getInt(); break;
                default: throw new IllegalArgumentException("tensor '" + name + "' is " + dtype + ", not integer");
            }
        }
        return out;
    }

    /** Raw little-endian float32 values (a float input before quantization, or a float output). */
    public float[] readFloats(byte[] raw) {
        if (raw.length != size() * 4) {
            throw new IllegalArgumentException("tensor '" + name + "': " + raw.length + " bytes of float32, expected "
                    + size() * 4);
        }
        ByteBuffer b = ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN);
        float[] out = new float[size()];
        for (int k = 0; k < out.length; k++) {
            out[k] = b.getFloat();
        }
        return out;
    }

    public byte[] toBytes(int[] q) {
        ByteBuffer b = ByteBuffer.allocate(q.length * bytesPerElement()).order(ByteOrder.LITTLE_ENDIAN);
        for (int v : q) {
            switch (bytesPerElement()) {
                case 1: b.put((byte) v); break;
                case 2: b.putShort((short) v); break;
                default: b.putInt(v);
            }
        }
        return b.array();
    }

    /** Float input to this tensor's integers with the default runtime's rounding (the adapter's rule). */
    public int[] quantize(float[] x) {
        int[] r = Quant.range(dtype);
        int[] out = new int[x.length];
        for (int k = 0; k < x.length; k++) {
            int c = channelOf(k);
            out[k] = Quant.quantizeXnnpack(x[k], scales[c], zeroPoints[c], r[0], r[1]);
        }
        return out;
    }

    /** Raw output bytes to float values: DEQUANTIZE for integer tensors, as-is for float32. */
    public float[] dequantize(byte[] raw) {
        if (!quantized()) {
            return readFloats(raw);
        }
        int[] q = readInts(raw);
        float[] out = new float[q.length];
        for (int k = 0; k < q.length; k++) {
            int c = channelOf(k);
            out[k] = Quant.dequantize(q[k], scales[c], zeroPoints[c]);
        }
        return out;
    }
}

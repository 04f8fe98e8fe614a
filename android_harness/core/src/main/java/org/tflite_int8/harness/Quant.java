package org.tflite_int8.harness;

/**
 * TFLite's QUANTIZE and DEQUANTIZE on one value, exactly as the Python adapter (tflite_int8/qmath.py).
 *
 * <p>XNNPACK and TFLite's optimized kernels (the default runtime on phones) compute
 * {@code clamp(rint(x * (1/scale)) + zero_point)} in float32: multiply by the float32 inverse, round
 * half to even. The reference kernels compute {@code round(x / scale)} with halves away from zero.
 * Java's {@link Math#round(float)} rounds halves <em>up</em> (-2.5 to -2): it matches neither, so it is
 * never used here. All arithmetic is float (not double), as numpy's float32.
 */
public final class Quant {
    private Quant() {
    }

    /** The integer range of a dtype: {lo, hi}. */
    public static int[] range(String dtype) {
        switch (dtype) {
            case "int8": return new int[] {-128, 127};
            case "uint8": return new int[] {0, 255};
            case "int16": return new int[] {-32768, 32767};
            case "int32": return new int[] {Integer.MIN_VALUE, Integer.MAX_VALUE};
            default: throw new IllegalArgumentException("not an integer dtype: " + dtype);
        }
    }

    /** The default runtime's rule (XNNPACK / optimized kernels): ties to even after x * (1/scale). */
    public static int quantizeXnnpack(float x, float scale, int zeroPoint, int lo, int hi) {
        float inv = 1.0f / scale;
        float q = (float) Math.rint(x * inv); // x * inv is a float32 product; rint of it is exact in float
        return clamp(q + (float) zeroPoint, lo, hi);
    }

    /** TFLite's reference kernels: x / scale, halves away from zero. */
    public static int quantizeReference(float x, float scale, int zeroPoint, int lo, int hi) {
        float v = x / scale;
        float r = Math.signum(v) * (float) Math.floor(Math.abs(v) + 0.5f);
        return clamp(r + (float) zeroPoint, lo, hi);
    }

    /** DEQUANTIZE: (q - zero_point) * scale in float32. */
    public static float dequantize(int q, float scale, int zeroPoint) {
        return (float) (q - zeroPoint) * scale;
    }

    private static int clamp(float v, int lo, int hi) {
        if (v <= lo) {
            return lo;
        }
        if (v >= hi) {
            return hi;
        }
        return (int) v;
    }
}

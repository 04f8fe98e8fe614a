package org.tflite_int8.harness;

/**
 * What runs the model: LiteRT's Interpreter in the app, a replay of recorded outputs in the tests.
 * Inputs and outputs are raw little-endian bytes, in the interpreter's input/output order.
 */
public interface ModelRunner {
    byte[][] run(byte[][] inputs) throws Exception;

    /** Whether XNNPACK (the default delegate) is on: recorded with the timings. */
    boolean xnnpack();

    int threads();
}

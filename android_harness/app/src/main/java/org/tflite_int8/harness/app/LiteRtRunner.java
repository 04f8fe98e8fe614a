package org.tflite_int8.harness.app;

import java.io.File;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.HashMap;
import java.util.Map;
import org.tensorflow.lite.Interpreter;
import org.tflite_int8.harness.Bundle;
import org.tflite_int8.harness.ModelRunner;
import org.tflite_int8.harness.Tensor;

/** The device side of {@link ModelRunner}: LiteRT's Interpreter on raw little-endian buffers. */
public final class LiteRtRunner implements ModelRunner, AutoCloseable {
    private final Interpreter interpreter;
    private final boolean xnnpack;
    private final int threads;
    private final ByteBuffer[] in;
    private final ByteBuffer[] out;

    public LiteRtRunner(Bundle bundle, boolean xnnpack, int threads) {
        this.xnnpack = xnnpack;
        this.threads = threads;
        Interpreter.Options options = new Interpreter.Options().setNumThreads(threads).setUseXNNPACK(xnnpack);
        File model = bundle.modelFile();
        interpreter = new Interpreter(model, options);
        in = new ByteBuffer[bundle.inputs.size()];
        out = new ByteBuffer[bundle.outputs.size()];
        for (int k = 0; k < in.length; k++) {
            Tensor t = bundle.inputs.get(k);
            in[k] = ByteBuffer.allocateDirect(t.size() * t.bytesPerElement()).order(ByteOrder.LITTLE_ENDIAN);
        }
        for (int k = 0; k < out.length; k++) {
            Tensor t = bundle.outputs.get(k);
            out[k] = ByteBuffer.allocateDirect(t.size() * t.bytesPerElement()).order(ByteOrder.LITTLE_ENDIAN);
        }
    }

    @Override
    public byte[][] run(byte[][] inputs) {
        Object[] args = new Object[in.length];
        for (int k = 0; k < in.length; k++) {
            in[k].clear();
            in[k].put(inputs[k]);
            in[k].rewind();
            args[k] = in[k];
        }
        Map<Integer, Object> outputs = new HashMap<>();
        for (int k = 0; k < out.length; k++) {
            out[k].clear();
            outputs.put(k, out[k]);
        }
        interpreter.runForMultipleInputsOutputs(args, outputs);
        byte[][] result = new byte[out.length][];
        for (int k = 0; k < out.length; k++) {
            out[k].rewind();
            result[k] = new byte[out[k].remaining()];
            out[k].get(result[k]);
        }
        return result;
    }

    @Override
    public boolean xnnpack() {
        return xnnpack;
    }

    @Override
    public int threads() {
        return threads;
    }

    @Override
    public void close() {
        interpreter.close();
    }
}

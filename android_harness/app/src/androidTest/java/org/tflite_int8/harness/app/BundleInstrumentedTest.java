package org.tflite_int8.harness.app;

import static org.junit.Assert.assertTrue;

import android.os.Build;
import android.os.Bundle;
import androidx.test.ext.junit.runners.AndroidJUnit4;
import androidx.test.platform.app.InstrumentationRegistry;
import java.io.File;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.Test;
import org.junit.runner.RunWith;
import org.tflite_int8.harness.Harness;
import org.tflite_int8.harness.ModelRunner;

/**
 * Runs a bundle on the phone: `tflite-int8 android run` starts it with
 * {@code am instrument -e bundleDir DIR -e resultsFile FILE -e xnnpack true|false}.
 * The compared outputs come from the first runner (XNNPACK as asked); both runtimes are timed.
 */
@RunWith(AndroidJUnit4.class)
public class BundleInstrumentedTest {
    @Test
    public void runBundle() throws Exception {
        Bundle args = InstrumentationRegistry.getArguments();
        File dir = new File(args.getString("bundleDir", "/data/local/tmp/tflite_int8/bundle"));
        File results = new File(args.getString("resultsFile", new File(dir.getParentFile(), "results.json").getPath()));
        boolean xnnpack = Boolean.parseBoolean(args.getString("xnnpack", "true"));
        int threads = Integer.parseInt(args.getString("threads", "1"));

        org.tflite_int8.harness.Bundle bundle = org.tflite_int8.harness.Bundle.load(dir, true);
        LiteRtRunner first = new LiteRtRunner(bundle, xnnpack, threads);
        LiteRtRunner second = new LiteRtRunner(bundle, !xnnpack, threads);
        List<ModelRunner> runners = new ArrayList<>();
        runners.add(first);
        runners.add(second);
        Map<String, Object> device = new LinkedHashMap<>();
        device.put("runner", "java-core + LiteRT Interpreter");
        device.put("arch", Build.SUPPORTED_ABIS[0]);
        device.put("system", "Android " + Build.VERSION.RELEASE + " (API " + Build.VERSION.SDK_INT + ")");
        device.put("model", Build.MANUFACTURER + " " + Build.MODEL);
        device.put("runtime", "com.google.ai.edge.litert:litert 2.1.0");
        try {
            Map<String, Object> doc = Harness.run(bundle, runners, device);
            Harness.write(doc, results);
        } finally {
            first.close();
            second.close();
        }
        assertTrue("results written to " + results, results.isFile());
    }
}

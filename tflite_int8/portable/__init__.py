"""numpy-only code that also runs on a device: TFLite's quantize/dequantize arithmetic, the bundle and results
formats, the device runner.  Nothing here may import another part of tflite_int8 (arm64-check copies these files
alone into an aarch64 root)."""

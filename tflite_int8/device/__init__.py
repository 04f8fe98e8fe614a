"""The on-device side: Android bundles, phone runs over adb, result comparison, the ARM64 check under qemu."""
